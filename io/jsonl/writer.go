package jsonl

import (
	"bufio"
	"fmt"
	"io"

	"github.com/batchtrans/batchtrans/io/dataset"
	"github.com/batchtrans/batchtrans/io/internal/textval"
)

// Writer writes rows as JSON Lines, one object a line with the columns in
// the order given. It is not safe for concurrent use.
type Writer struct {
	w    *bufio.Writer
	cols []dataset.Column
	keys [][]byte // `"name":` per column, precomputed
	buf  []byte
	err  error
}

// NewWriter returns a Writer of rows with the given columns on w.
func NewWriter(w io.Writer, cols []dataset.Column) (*Writer, error) {
	if err := dataset.CheckColumns(cols); err != nil {
		return nil, fmt.Errorf("jsonl writer: %w", err)
	}
	keys := make([][]byte, len(cols))
	for i, c := range cols {
		keys[i] = append(textval.AppendJSONString(nil, c.Name), ':')
	}
	return &Writer{w: bufio.NewWriterSize(w, 64<<10), cols: cols, keys: keys}, nil
}

// Write writes one row; fields must follow the writer's columns.
func (w *Writer) Write(fields []dataset.Field) error {
	if w.err != nil {
		return w.err
	}
	if err := dataset.CheckRow(w.cols, fields); err != nil {
		return fmt.Errorf("jsonl writer: %w", err)
	}
	b := append(w.buf[:0], '{')
	for i, f := range fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, w.keys[i]...)
		var err error
		if b, err = textval.AppendJSON(b, f.Value); err != nil {
			return fmt.Errorf("jsonl writer: field %q: %w", f.Name, err)
		}
	}
	b = append(b, '}', '\n')
	w.buf = b
	if _, err := w.w.Write(b); err != nil {
		w.err = fmt.Errorf("jsonl writer: %w", err)
		return w.err
	}
	return nil
}

// Flush writes buffered rows to the underlying writer.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if err := w.w.Flush(); err != nil {
		w.err = fmt.Errorf("jsonl writer: %w", err)
	}
	return w.err
}

// Close flushes buffered rows; it does not close the underlying writer.
func (w *Writer) Close() error {
	return w.Flush()
}
