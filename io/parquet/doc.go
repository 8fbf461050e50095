// Package parquetfile reads and writes Parquet datasets with
// github.com/parquet-go/parquet-go. It implements io/dataset's Reader and
// Writer and registers the format "parquet" (extension .parquet). The
// folder is io/parquet; the package is named parquetfile so as not to
// clash with the library.
//
// Reading: any schema whose top-level columns are flat (no groups, lists
// or maps; those are refused at Open with an error naming the column).
// Kinds from the schema: BOOLEAN is Bool; INT32 and INT64 (plain or
// integer logical types) are Int; FLOAT and DOUBLE are Float; byte arrays
// (STRING, ENUM or no logical type) are String and must hold UTF-8; JSON
// byte arrays are JSON (json.RawMessage, which must be valid JSON);
// DATE, TIMESTAMP and TIME columns are String in ISO 8601; UUID is String
// in its canonical form. Other types (DECIMAL, INT96, FLOAT16, BSON as
// bytes, ...) are refused at Open naming the column. Every column may be
// null. Rows are read row group by row group through a bounded buffer of
// rows; the file is never read whole. Record.Line is Index+1; errors name
// a row by its 0-based Index ("file row 6"), as the runner does.
//
// Hostile files: Open checks the footer length against the file size and
// MaxFooterBytes before the library allocates for it, and checks that
// every column chunk lies inside the file. Before a row group is read, its
// page headers are walked (decoded from a bounded buffer): a page larger
// than what is left of its column chunk, or over MaxPageBytes
// uncompressed, is refused, so the library never sizes a page buffer from
// an unchecked number. A panic inside the library on a corrupt file is
// recovered at this package's API and returned as an error naming the
// file. Not bounded here: counts inside a page (values, dictionary
// entries), which the library trusts within the page's checked size.
//
// Writing: one optional (nullable) column per dataset column: String as
// BYTE_ARRAY STRING, Int as INT64, Float as DOUBLE, Bool as BOOLEAN, JSON
// as BYTE_ARRAY JSON holding the compact JSON text (so kinds survive a
// round trip); compressed with zstd
// (default), snappy, gzip or none; a row group is flushed every
// Options.RowGroupRows rows or when Options.RowGroupBytes of values are
// buffered, whichever comes first.
//
// This package imports only io/dataset, io/internal packages and parquet-go.
package parquetfile
