package csvfile

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"unicode/utf8"

	"github.com/batchtrans/batchtrans/io/dataset"
	"github.com/batchtrans/batchtrans/io/internal/textval"
)

// MaxRowBytes is the most bytes one CSV row may span; a longer row is an
// error for the file.
const MaxRowBytes = 64 << 20

func init() {
	dataset.Register(dataset.Format{
		Name:       "csv",
		Extensions: []string{".csv"},
		Open: func(path string, opt dataset.Options) (dataset.Reader, error) {
			return Open(path, opt)
		},
		OpenSource: func(src dataset.Source, opt dataset.Options) (dataset.Reader, error) {
			rc, err := src.Open()
			if err != nil {
				return nil, err
			}
			r, err := newReader(src.Name(), rc, opt, MaxRowBytes)
			if err != nil {
				rc.Close()
				return nil, err
			}
			r.closer = rc
			return r, nil
		},
		NewWriter: func(w io.Writer, cols []dataset.Column, opt dataset.Options) (dataset.Writer, error) {
			return NewWriter(w, cols, opt)
		},
	})
}

// Reader streams the rows of one CSV file. It is not safe for concurrent use.
type Reader struct {
	name   string
	closer io.Closer
	cr     *csv.Reader
	limit  *limitReader
	cols   []dataset.Column
	index  int64
	err    error
}

// Open opens a CSV file and reads its header. The Reader owns the file.
func Open(path string, opt dataset.Options) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	r, err := newReader(path, f, opt, MaxRowBytes)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.closer = f
	return r, nil
}

// NewReader reads CSV from r, naming it name in errors, and reads the
// header. Close does not close r.
func NewReader(name string, r io.Reader, opt dataset.Options) (*Reader, error) {
	return newReader(name, r, opt, MaxRowBytes)
}

func newReader(name string, r io.Reader, opt dataset.Options, maxRow int) (*Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if bom, err := br.Peek(3); err == nil && bytes.Equal(bom, []byte("\xEF\xBB\xBF")) {
		br.Discard(3)
	}
	limit := &limitReader{r: br, max: int64(maxRow)}
	cr := csv.NewReader(limit)
	if opt.Delimiter != 0 {
		cr.Comma = opt.Delimiter
	}
	cr.FieldsPerRecord = -1 // counted here, so that a bad row is a bad row
	cr.ReuseRecord = true
	rd := &Reader{name: name, cr: cr, limit: limit}
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read %s: no header row", name)
		}
		return nil, rd.fatal(err)
	}
	seen := make(map[string]bool, len(header))
	for i, h := range header {
		switch {
		case !utf8.ValidString(h):
			return nil, fmt.Errorf("read %s line 1: header column %d: invalid UTF-8", name, i+1)
		case h == "":
			return nil, fmt.Errorf("read %s line 1: header column %d has no name", name, i+1)
		case seen[h]:
			return nil, fmt.Errorf("read %s line 1: duplicate header name %q", name, h)
		}
		seen[h] = true
		rd.cols = append(rd.cols, dataset.Column{Name: h, Kind: dataset.String})
	}
	return rd, nil
}

func (r *Reader) fatal(err error) error {
	if errors.Is(err, errRowTooLong) {
		line, _ := r.cr.FieldPos(0)
		return fmt.Errorf("read %s after line %d: a row longer than %d bytes: %w", r.name, line, r.limit.max, err)
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("read %s line %d: %w", r.name, pe.StartLine, pe.Err)
	}
	return fmt.Errorf("read %s: %w", r.name, err)
}

// Columns returns the header's names, all of Kind String.
func (r *Reader) Columns() []dataset.Column { return slices.Clone(r.cols) }

// Read returns the next row, or io.EOF after the last.
func (r *Reader) Read() (dataset.Record, error) {
	if r.err != nil {
		return dataset.Record{}, r.err
	}
	r.limit.reset()
	rec, err := r.cr.Read()
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) && !errors.Is(err, errRowTooLong) {
			out := dataset.Record{Index: r.index, Line: int64(pe.StartLine)}
			r.index++
			out.Err = pe.Err
			return out, nil
		}
		if err == io.EOF {
			r.err = io.EOF
		} else {
			r.err = r.fatal(err)
		}
		return dataset.Record{}, r.err
	}
	line, _ := r.cr.FieldPos(0)
	out := dataset.Record{Index: r.index, Line: int64(line)}
	r.index++
	if len(rec) != len(r.cols) {
		out.Err = fmt.Errorf("row has %d fields, the header has %d", len(rec), len(r.cols))
		return out, nil
	}
	out.Fields = make([]dataset.Field, len(rec))
	for i, v := range rec {
		if !utf8.ValidString(v) {
			out.Fields = nil
			out.Err = fmt.Errorf("field %q: invalid UTF-8", r.cols[i].Name)
			return out, nil
		}
		out.Fields[i] = dataset.Field{Name: r.cols[i].Name, Value: v}
	}
	return out, nil
}

// Close releases the file.
func (r *Reader) Close() error {
	if r.err == nil {
		r.err = errors.New("reader closed")
	}
	if r.closer == nil {
		return nil
	}
	c := r.closer
	r.closer = nil
	return c.Close()
}

var errRowTooLong = errors.New("row too long")

// limitReader fails once more than max bytes were read since the last
// reset, which bounds what encoding/csv buffers for one row (give or take
// its read-ahead).
type limitReader struct {
	r    io.Reader
	max  int64
	read int64
}

func (l *limitReader) reset() { l.read = 0 }

func (l *limitReader) Read(p []byte) (int, error) {
	if l.read > l.max {
		return 0, errRowTooLong
	}
	n, err := l.r.Read(p)
	l.read += int64(n)
	return n, err
}

// Writer writes rows as CSV with a header row. It is not safe for
// concurrent use.
type Writer struct {
	cw   *csv.Writer
	bw   *bufio.Writer
	cols []dataset.Column
	rec  []string
	buf  []byte
	err  error
}

// NewWriter writes the header row of cols to w and returns a Writer.
func NewWriter(w io.Writer, cols []dataset.Column, opt dataset.Options) (*Writer, error) {
	if err := dataset.CheckColumns(cols); err != nil {
		return nil, fmt.Errorf("csv writer: %w", err)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	cw := csv.NewWriter(bw)
	if opt.Delimiter != 0 {
		cw.Comma = opt.Delimiter
	}
	wr := &Writer{cw: cw, bw: bw, cols: cols, rec: make([]string, len(cols))}
	for i, c := range cols {
		wr.rec[i] = c.Name
	}
	if err := cw.Write(wr.rec); err != nil {
		return nil, fmt.Errorf("csv writer: header: %w", err)
	}
	return wr, nil
}

// Write writes one row; fields must follow the writer's columns.
func (w *Writer) Write(fields []dataset.Field) error {
	if w.err != nil {
		return w.err
	}
	if err := dataset.CheckRow(w.cols, fields); err != nil {
		return fmt.Errorf("csv writer: %w", err)
	}
	for i, f := range fields {
		if s, ok := f.Value.(string); ok {
			w.rec[i] = s
			continue
		}
		var err error
		w.buf, err = textval.AppendText(w.buf[:0], f.Value)
		if err != nil {
			return fmt.Errorf("csv writer: field %q: %w", f.Name, err)
		}
		w.rec[i] = string(w.buf)
	}
	if len(w.rec) == 1 && w.rec[0] == "" {
		// encoding/csv would write an empty line, which readers skip.
		w.cw.Flush()
		if _, err := w.bw.WriteString("\"\"\n"); err != nil {
			w.err = fmt.Errorf("csv writer: %w", err)
			return w.err
		}
		return nil
	}
	if err := w.cw.Write(w.rec); err != nil {
		w.err = fmt.Errorf("csv writer: %w", err)
		return w.err
	}
	return nil
}

// Close flushes buffered rows; it does not close the underlying writer.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	w.cw.Flush()
	if err := w.cw.Error(); err != nil {
		w.err = fmt.Errorf("csv writer: %w", err)
		return w.err
	}
	if err := w.bw.Flush(); err != nil {
		w.err = fmt.Errorf("csv writer: %w", err)
	}
	return w.err
}
