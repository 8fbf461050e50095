// Package csvfile reads and writes CSV datasets (RFC 4180, through
// encoding/csv). It implements io/dataset's Reader and Writer and
// registers the format "csv" (extension .csv). The folder is io/csv; the
// package is named csvfile so as not to shadow encoding/csv.
//
// Reading: the first row is the header and is required; its names must be
// non-empty and distinct. Every column is of Kind String. A UTF-8 byte
// order mark before the header is dropped. Quoted fields may hold the
// delimiter, doubled quotes and newlines; Record.Line is the line where
// the row starts. A row with the wrong number of fields, a quoting error
// or invalid UTF-8 is a Record with Err naming the file and line; reading
// goes on with the next row. A row longer than MaxRowBytes is an error for
// the file (the reader cannot tell where such a row ends). Empty lines are
// skipped, as encoding/csv does.
//
// Writing: a header row of the column names, then one row per Write.
// Values are written as text: strings as they are, nil as an empty field
// (CSV cannot tell null from ""), numbers and booleans as JSON spells
// them, JSON values compact.
//
// This package imports only io/dataset and io/internal packages.
package csvfile
