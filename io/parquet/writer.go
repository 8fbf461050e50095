package parquetfile

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/encoding"

	"github.com/batchtrans/batchtrans/io/dataset"
	"github.com/batchtrans/batchtrans/io/internal/textval"
)

// Writer writes rows to a Parquet file with one optional column per
// dataset column, in the given order. It is not safe for concurrent use.
type Writer struct {
	pw       *parquet.Writer
	cols     []dataset.Column
	row      parquet.Row
	rows     []parquet.Row
	buffered int   // rows in the open row group
	bytes    int64 // approximate bytes of values in the open row group
	maxRows  int
	maxBytes int64
	buf      []byte
	err      error
}

// NewWriter starts a Parquet writer on w. Options.Compression picks the
// codec, Options.RowGroupRows and Options.RowGroupBytes bound a row group.
func NewWriter(w io.Writer, cols []dataset.Column, opt dataset.Options) (*Writer, error) {
	if err := dataset.CheckColumns(cols); err != nil {
		return nil, fmt.Errorf("parquet writer: %w", err)
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("parquet writer: no columns")
	}
	codec, err := codecOf(opt.Compression)
	if err != nil {
		return nil, fmt.Errorf("parquet writer: %w", err)
	}
	fields := make([]parquet.Field, len(cols))
	for i, c := range cols {
		var leaf parquet.Node
		switch c.Kind {
		case dataset.String:
			leaf = parquet.String()
		case dataset.JSON:
			leaf = parquet.JSON()
		case dataset.Int:
			leaf = parquet.Int(64)
		case dataset.Float:
			leaf = parquet.Leaf(parquet.DoubleType)
		case dataset.Bool:
			leaf = parquet.Leaf(parquet.BooleanType)
		default:
			return nil, fmt.Errorf("parquet writer: column %q: unknown kind %s", c.Name, c.Kind)
		}
		fields[i] = &field{Node: parquet.Optional(leaf), name: c.Name}
	}
	schema := parquet.NewSchema("batchtrans", orderedGroup(fields))
	maxRows := opt.RowGroupRows
	if maxRows <= 0 {
		maxRows = dataset.DefaultRowGroupRows
	}
	maxBytes := opt.RowGroupBytes
	if maxBytes <= 0 {
		maxBytes = dataset.DefaultRowGroupBytes
	}
	pw := parquet.NewWriter(w, schema,
		parquet.Compression(codec),
		parquet.CreatedBy("batchtrans", "", ""),
		// Flushes are ours; this only stops the library growing a group past them.
		parquet.MaxRowsPerRowGroup(int64(maxRows)),
	)
	return &Writer{
		pw: pw, cols: cols, maxRows: maxRows, maxBytes: maxBytes,
		row: make(parquet.Row, len(cols)), rows: make([]parquet.Row, 1),
	}, nil
}

func codecOf(name string) (compress.Codec, error) {
	switch strings.ToLower(name) {
	case "", "zstd":
		return &parquet.Zstd, nil
	case "snappy":
		return &parquet.Snappy, nil
	case "gzip":
		return &parquet.Gzip, nil
	case "none", "uncompressed":
		return &parquet.Uncompressed, nil
	}
	return nil, fmt.Errorf("unknown compression %q (want zstd, snappy, gzip or none)", name)
}

// Write adds one row; fields must follow the writer's columns. A value of
// the wrong Go type for its column's kind is an error naming the field.
func (w *Writer) Write(fields []dataset.Field) error {
	if w.err != nil {
		return w.err
	}
	if err := dataset.CheckRow(w.cols, fields); err != nil {
		return fmt.Errorf("parquet writer: %w", err)
	}
	var size int64
	w.buf = w.buf[:0] // values of this row are appended one after another
	for i, f := range fields {
		v, n, err := w.value(w.cols[i].Kind, f.Value)
		if err != nil {
			return fmt.Errorf("parquet writer: field %q: %w", f.Name, err)
		}
		size += n
		if v.IsNull() {
			w.row[i] = v.Level(0, 0, i)
		} else {
			w.row[i] = v.Level(0, 1, i)
		}
	}
	w.rows[0] = w.row
	if _, err := w.pw.WriteRows(w.rows); err != nil {
		w.err = fmt.Errorf("parquet writer: %w", err)
		return w.err
	}
	w.buffered++
	w.bytes += size
	if w.buffered >= w.maxRows || w.bytes >= w.maxBytes {
		return w.flush()
	}
	return nil
}

func (w *Writer) flush() error {
	if w.buffered == 0 {
		return nil
	}
	if err := w.pw.Flush(); err != nil {
		w.err = fmt.Errorf("parquet writer: flush row group: %w", err)
		return w.err
	}
	w.buffered, w.bytes = 0, 0
	return nil
}

// value converts a dataset value to a parquet value of the column's kind
// and reports its approximate size. Byte-array values alias w.buf or the
// string, which the library copies in WriteRows.
func (w *Writer) value(kind dataset.Kind, x any) (parquet.Value, int64, error) {
	if x == nil {
		return parquet.NullValue(), 0, nil
	}
	switch kind {
	case dataset.String:
		switch s := x.(type) {
		case string:
			return parquet.ByteArrayValue([]byte(s)), int64(len(s)), nil
		case []byte:
			return parquet.ByteArrayValue(s), int64(len(s)), nil
		case json.RawMessage:
			return parquet.ByteArrayValue(s), int64(len(s)), nil
		}
		return w.text(x)
	case dataset.JSON:
		start := len(w.buf)
		b, err := textval.AppendJSON(w.buf, x)
		if err != nil {
			return parquet.Value{}, 0, err
		}
		w.buf = b
		return parquet.ByteArrayValue(b[start:]), int64(len(b) - start), nil
	case dataset.Int:
		switch n := x.(type) {
		case int64:
			return parquet.Int64Value(n), 8, nil
		case int:
			return parquet.Int64Value(int64(n)), 8, nil
		case int32:
			return parquet.Int64Value(int64(n)), 8, nil
		case uint32:
			return parquet.Int64Value(int64(n)), 8, nil
		case uint64:
			if n > math.MaxInt64 {
				return parquet.Value{}, 0, fmt.Errorf("value %d does not fit int64", n)
			}
			return parquet.Int64Value(int64(n)), 8, nil
		case float64:
			if n == math.Trunc(n) && n >= math.MinInt64 && n < math.MaxInt64 {
				return parquet.Int64Value(int64(n)), 8, nil
			}
		}
	case dataset.Float:
		switch n := x.(type) {
		case float64:
			return parquet.DoubleValue(n), 8, nil
		case float32:
			return parquet.DoubleValue(float64(n)), 8, nil
		case int64:
			return parquet.DoubleValue(float64(n)), 8, nil
		case int:
			return parquet.DoubleValue(float64(n)), 8, nil
		}
	case dataset.Bool:
		if b, ok := x.(bool); ok {
			return parquet.BooleanValue(b), 1, nil
		}
	}
	return parquet.Value{}, 0, fmt.Errorf("%T value in a %s column", x, kind)
}

// text spells a non-string value for a String column as the text writers do.
func (w *Writer) text(x any) (parquet.Value, int64, error) {
	start := len(w.buf)
	b, err := textval.AppendText(w.buf, x)
	if err != nil {
		return parquet.Value{}, 0, err
	}
	w.buf = b
	return parquet.ByteArrayValue(b[start:]), int64(len(b) - start), nil
}

// Close flushes the last row group and writes the footer; it does not
// close the underlying writer.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if err := w.pw.Close(); err != nil {
		w.err = fmt.Errorf("parquet writer: close: %w", err)
		return w.err
	}
	w.err = fmt.Errorf("parquet writer: closed")
	return nil
}

// orderedGroup is a parquet group node that keeps its fields in the order
// given; parquet.Group sorts them by name, which would reorder the
// user's columns.
type orderedGroup []parquet.Field

func (g orderedGroup) ID() int                     { return 0 }
func (g orderedGroup) String() string              { return parquet.Group(g.asMap()).String() }
func (g orderedGroup) Type() parquet.Type          { return parquet.Group{}.Type() }
func (g orderedGroup) Optional() bool              { return false }
func (g orderedGroup) Repeated() bool              { return false }
func (g orderedGroup) Required() bool              { return true }
func (g orderedGroup) Leaf() bool                  { return false }
func (g orderedGroup) Fields() []parquet.Field     { return g }
func (g orderedGroup) Encoding() encoding.Encoding { return nil }
func (g orderedGroup) Compression() compress.Codec { return nil }
func (g orderedGroup) GoType() reflect.Type        { return parquet.Group(g.asMap()).GoType() }
func (g orderedGroup) asMap() map[string]parquet.Node {
	m := make(map[string]parquet.Node, len(g))
	for _, f := range g {
		m[f.Name()] = f
	}
	return m
}

// field names a node inside an orderedGroup.
type field struct {
	parquet.Node
	name string
}

func (f *field) Name() string { return f.name }

// Value is only used when writing Go structs or maps, which this package
// does not do; it looks the name up in a map like parquet.Group does.
func (f *field) Value(base reflect.Value) reflect.Value {
	if base.Kind() == reflect.Map {
		return base.MapIndex(reflect.ValueOf(f.name))
	}
	return reflect.Value{}
}
