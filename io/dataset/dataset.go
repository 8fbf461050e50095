// Package dataset declares what every input and output format offers the
// runner: a streaming reader of records and a streaming writer of results.
// The format packages (io/jsonl, io/csv, io/parquet) implement it and
// register themselves; Open and NewWriter pick one by format name or file
// extension (import io/formats to get all of them).
package dataset

import (
	"errors"
	"fmt"
)

// Kind is a column's value type. Values in Field.Value are, by kind:
// String: string; Int: int64; Float: float64; Bool: bool; JSON: a
// json.RawMessage (nested objects or arrays, or a JSONL field whose type
// varies between rows). Any kind may hold nil (null / missing).
type Kind int

// The kinds.
const (
	String Kind = iota
	Int
	Float
	Bool
	JSON
)

// String returns the kind's name as messages spell it.
func (k Kind) String() string {
	switch k {
	case String:
		return "string"
	case Int:
		return "int"
	case Float:
		return "float"
	case Bool:
		return "bool"
	case JSON:
		return "json"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Column names a field and its kind.
type Column struct {
	Name string
	Kind Kind
}

// Field is one named value of a record.
type Field struct {
	Name  string
	Value any
}

// Record is one input row.
type Record struct {
	Index int64 // 0-based row number in the input, counting bad rows too
	Line  int64 // 1-based line in the file (JSONL, CSV: the row's first line); Index+1 for Parquet
	// Fields are in the file's column order. CSV and Parquet records hold
	// every column (Parquet nulls as nil Values); a JSONL record holds only
	// the fields present on its line (a JSON null as a nil Value), so a
	// missing field has no Field at all.
	Fields []Field
	// File names the file the record came from when the input is several
	// files read as one (dataset readers of one file leave it empty).
	File string
	// Err is set for a row that could not be parsed; Fields may then be
	// empty. It gives the reason only ("malformed JSON: ..."): Line and
	// Index say where, and the caller names the file the way its user
	// wrote it. A bad row is data, not a fatal error.
	Err error
}

// Reader streams records. Read returns io.EOF after the last record; any
// other error is fatal for the file (unreadable, truncated footer, ...).
type Reader interface {
	Columns() []Column
	Read() (Record, error)
	Close() error
}

// Writer streams output rows; each row's fields follow the columns given
// when it was made. Close flushes the format's trailer; it does not close
// the underlying file.
type Writer interface {
	Write(fields []Field) error
	Close() error
}

// Options tune the formats.
type Options struct {
	Delimiter rune // CSV only; 0 means ','

	// Compression is the Parquet writer's codec: "zstd" (the default when
	// empty), "snappy", "gzip" or "none".
	Compression string
	// RowGroupRows is the most rows the Parquet writer buffers before it
	// flushes a row group; 0 means DefaultRowGroupRows. The writer also
	// flushes when the buffered values pass RowGroupBytes.
	RowGroupRows int
	// RowGroupBytes bounds the bytes of values the Parquet writer buffers
	// before it flushes a row group; 0 means DefaultRowGroupBytes.
	RowGroupBytes int64
}

// Defaults for Options.
const (
	DefaultRowGroupRows  = 10_000
	DefaultRowGroupBytes = 64 << 20
)

// ErrUnknownFormat is returned for a format name or extension no package handles.
var ErrUnknownFormat = errors.New("unknown format")
