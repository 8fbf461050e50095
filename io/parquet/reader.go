package parquetfile

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/batchtrans/batchtrans/io/dataset"
)

// Limits on what one file may ask of memory.
const (
	// MaxFooterBytes is the largest footer (file metadata) read.
	MaxFooterBytes = 64 << 20
	// readBatch is how many rows one library call decodes.
	readBatch = 256
)

func init() {
	dataset.Register(dataset.Format{
		Name:       "parquet",
		Extensions: []string{".parquet"},
		Open: func(path string, opt dataset.Options) (dataset.Reader, error) {
			return Open(path)
		},
		OpenSource: func(src dataset.Source, opt dataset.Options) (dataset.Reader, error) {
			return NewReader(src.Name(), src, src.Size())
		},
		NewWriter: func(w io.Writer, cols []dataset.Column, opt dataset.Options) (dataset.Writer, error) {
			return NewWriter(w, cols, opt)
		},
	})
}

// conv turns one non-null parquet value into a dataset value.
type conv func(v parquet.Value) (any, error)

// Reader streams the rows of one Parquet file, one row group at a time. It
// is not safe for concurrent use.
type Reader struct {
	name   string
	closer io.Closer
	ra     io.ReaderAt
	hdrBuf []byte
	file   *parquet.File
	cols   []dataset.Column
	convs  []conv
	groups []parquet.RowGroup
	group  int           // index of the row group being read
	rows   parquet.Rows  // open rows of groups[group], nil between groups
	buf    []parquet.Row // decoded batch
	pos    int           // next row of buf to return
	n      int           // rows in buf
	index  int64
	err    error
}

// Open opens a Parquet file and reads its footer and schema. The Reader
// owns the file.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	r, err := NewReader(path, f, st.Size())
	if err != nil {
		f.Close()
		return nil, err
	}
	r.closer = f
	return r, nil
}

// NewReader reads the Parquet file in r, of size bytes, naming it name in
// errors. Close does not close r.
func NewReader(name string, r io.ReaderAt, size int64) (rd *Reader, err error) {
	defer func() {
		if p := recover(); p != nil {
			rd, err = nil, fmt.Errorf("read %s: corrupt parquet file: %v", name, p)
		}
	}()
	if err := checkFooter(r, size); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	file, err := parquet.OpenFile(r, size,
		parquet.SkipPageIndex(true),
		parquet.SkipBloomFilters(true),
		parquet.ReadBufferSize(64<<10),
	)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if err := checkChunks(file, size); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	rd = &Reader{name: name, ra: r, file: file, groups: file.RowGroups(), buf: make([]parquet.Row, readBatch)}
	for _, f := range file.Schema().Fields() {
		col, cv, err := columnOf(f)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		rd.cols = append(rd.cols, col)
		rd.convs = append(rd.convs, cv)
	}
	if len(file.Schema().Columns()) != len(rd.cols) {
		return nil, fmt.Errorf("read %s: schema has %d leaf columns for %d fields", name, len(file.Schema().Columns()), len(rd.cols))
	}
	return rd, nil
}

// checkFooter reads the trailer itself so that the footer length is
// checked against the file before anything is allocated for it.
func checkFooter(r io.ReaderAt, size int64) error {
	if size < 12 {
		return fmt.Errorf("not a parquet file (or truncated): %d bytes", size)
	}
	var tail [8]byte
	if _, err := r.ReadAt(tail[:], size-8); err != nil {
		return fmt.Errorf("read trailer: %w", err)
	}
	if string(tail[4:]) != "PAR1" {
		return errors.New("not a parquet file (or truncated): no PAR1 trailer")
	}
	n := int64(binary.LittleEndian.Uint32(tail[:4]))
	if n > size-12 {
		return fmt.Errorf("corrupt or truncated parquet file: footer of %d bytes in a file of %d", n, size)
	}
	if n > MaxFooterBytes {
		return fmt.Errorf("parquet footer of %d bytes is over the %d-byte limit", n, MaxFooterBytes)
	}
	return nil
}

// checkChunks refuses column chunks that claim bytes outside the file.
func checkChunks(file *parquet.File, size int64) error {
	md := file.Metadata()
	for g, rg := range md.RowGroups {
		if rg.NumRows < 0 {
			return fmt.Errorf("row group %d: negative row count", g)
		}
		for c, cc := range rg.Columns {
			m := cc.MetaData
			start := m.DataPageOffset
			if m.DictionaryPageOffset > 0 && m.DictionaryPageOffset < start {
				start = m.DictionaryPageOffset
			}
			if start < 4 || m.TotalCompressedSize < 0 || start > size || m.TotalCompressedSize > size-start {
				return fmt.Errorf("corrupt parquet file: row group %d column %d lies outside the file", g, c)
			}
		}
	}
	return nil
}

func columnOf(f parquet.Field) (dataset.Column, conv, error) {
	name := f.Name()
	if !f.Leaf() {
		return dataset.Column{}, nil, fmt.Errorf("column %q: nested parquet type (group, list or map) is not supported", name)
	}
	if f.Repeated() {
		return dataset.Column{}, nil, fmt.Errorf("column %q: repeated parquet column is not supported", name)
	}
	t := f.Type()
	var lt any
	if l := t.LogicalType(); l != nil {
		lt = l.Value
	}
	unsupported := func() (dataset.Column, conv, error) {
		return dataset.Column{}, nil, fmt.Errorf("column %q: parquet type %s is not supported", name, t)
	}
	col := func(k dataset.Kind, c conv) (dataset.Column, conv, error) {
		return dataset.Column{Name: name, Kind: k}, c, nil
	}
	switch t.Kind() {
	case parquet.Boolean:
		return col(dataset.Bool, func(v parquet.Value) (any, error) { return v.Boolean(), nil })
	case parquet.Float:
		return col(dataset.Float, func(v parquet.Value) (any, error) { return float64(v.Float()), nil })
	case parquet.Double:
		return col(dataset.Float, func(v parquet.Value) (any, error) { return v.Double(), nil })
	case parquet.Int32:
		switch l := lt.(type) {
		case nil:
			return col(dataset.Int, func(v parquet.Value) (any, error) { return int64(v.Int32()), nil })
		case *format.IntType:
			if !l.IsSigned {
				return col(dataset.Int, func(v parquet.Value) (any, error) { return int64(uint32(v.Int32())), nil })
			}
			return col(dataset.Int, func(v parquet.Value) (any, error) { return int64(v.Int32()), nil })
		case *format.DateType:
			return col(dataset.String, func(v parquet.Value) (any, error) {
				return time.Unix(int64(v.Int32())*86400, 0).UTC().Format(time.DateOnly), nil
			})
		case *format.TimeType:
			return col(dataset.String, func(v parquet.Value) (any, error) {
				return time.UnixMilli(int64(v.Int32())).UTC().Format("15:04:05.000"), nil
			})
		}
		return unsupported()
	case parquet.Int64:
		switch l := lt.(type) {
		case nil:
			return col(dataset.Int, func(v parquet.Value) (any, error) { return v.Int64(), nil })
		case *format.IntType:
			if !l.IsSigned && l.BitWidth == 64 {
				return col(dataset.Int, func(v parquet.Value) (any, error) {
					if u := uint64(v.Int64()); u > math.MaxInt64 {
						return nil, fmt.Errorf("value %d does not fit int64", u)
					}
					return v.Int64(), nil
				})
			}
			return col(dataset.Int, func(v parquet.Value) (any, error) { return v.Int64(), nil })
		case *format.TimestampType:
			unit, ok := unitOf(l.Unit)
			if !ok {
				return unsupported()
			}
			layout := "2006-01-02T15:04:05.999999999"
			if l.IsAdjustedToUTC {
				layout += "Z07:00"
			}
			return col(dataset.String, func(v parquet.Value) (any, error) {
				return timeOf(v.Int64(), unit).Format(layout), nil
			})
		case *format.TimeType:
			unit, ok := unitOf(l.Unit)
			if !ok {
				return unsupported()
			}
			return col(dataset.String, func(v parquet.Value) (any, error) {
				return timeOf(v.Int64(), unit).Format("15:04:05.999999999"), nil
			})
		}
		return unsupported()
	case parquet.ByteArray:
		switch lt.(type) {
		case *format.JsonType:
			return col(dataset.JSON, func(v parquet.Value) (any, error) {
				b := v.ByteArray()
				if !json.Valid(b) {
					return nil, errors.New("invalid JSON")
				}
				return json.RawMessage(bytes.Clone(b)), nil
			})
		case nil, *format.StringType, *format.EnumType:
			return col(dataset.String, func(v parquet.Value) (any, error) {
				b := v.ByteArray()
				if !utf8.Valid(b) {
					return nil, errors.New("invalid UTF-8")
				}
				return string(b), nil
			})
		}
		return unsupported()
	case parquet.FixedLenByteArray:
		if _, ok := lt.(*format.UUIDType); ok && t.Length() == 16 {
			return col(dataset.String, func(v parquet.Value) (any, error) {
				b := v.ByteArray()
				if len(b) != 16 {
					return nil, fmt.Errorf("uuid of %d bytes", len(b))
				}
				return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
			})
		}
		return unsupported()
	}
	return unsupported()
}

func unitOf(u format.TimeUnit) (time.Duration, bool) {
	switch u.Value.(type) {
	case *format.MilliSeconds:
		return time.Millisecond, true
	case *format.MicroSeconds:
		return time.Microsecond, true
	case *format.NanoSeconds:
		return time.Nanosecond, true
	}
	return 0, false
}

func timeOf(n int64, unit time.Duration) time.Time {
	switch unit {
	case time.Millisecond:
		return time.UnixMilli(n).UTC()
	case time.Microsecond:
		return time.UnixMicro(n).UTC()
	}
	return time.Unix(0, n).UTC()
}

// Columns returns the schema's columns with their kinds.
func (r *Reader) Columns() []dataset.Column { return slices.Clone(r.cols) }

// NumRows returns the row count the footer declares.
func (r *Reader) NumRows() int64 { return r.file.NumRows() }

// Read returns the next row, or io.EOF after the last. A value that cannot
// be converted (invalid UTF-8, an unsigned value over int64) makes a
// record with Err; a corrupt page is an error for the file.
func (r *Reader) Read() (rec dataset.Record, err error) {
	if r.err != nil {
		return dataset.Record{}, r.err
	}
	defer func() {
		if p := recover(); p != nil {
			r.err = fmt.Errorf("read %s row group %d: corrupt parquet file: %v", r.name, r.group, p)
			rec, err = dataset.Record{}, r.err
		}
	}()
	for r.pos >= r.n {
		if err := r.fill(); err != nil {
			r.err = err
			return dataset.Record{}, err
		}
	}
	row := r.buf[r.pos]
	r.pos++
	rec = dataset.Record{Index: r.index, Line: r.index + 1}
	r.index++
	if len(row) != len(r.cols) {
		r.err = fmt.Errorf("read %s row %d: %d values for %d columns: corrupt parquet file", r.name, rec.Index, len(row), len(r.cols))
		return dataset.Record{}, r.err
	}
	rec.Fields = make([]dataset.Field, len(r.cols))
	for _, v := range row {
		i := v.Column()
		if i < 0 || i >= len(r.cols) {
			r.err = fmt.Errorf("read %s row %d: value for column %d of %d: corrupt parquet file", r.name, rec.Index, i, len(r.cols))
			return dataset.Record{}, r.err
		}
		f := dataset.Field{Name: r.cols[i].Name}
		if !v.IsNull() {
			f.Value, err = r.convs[i](v)
			if err != nil {
				rec.Fields = nil
				rec.Err = fmt.Errorf("field %q: %w", r.cols[i].Name, err)
				return rec, nil
			}
		}
		rec.Fields[i] = f
	}
	return rec, nil
}

// fill decodes the next batch of rows, moving to the next row group when
// this one is done. It returns io.EOF after the last group.
func (r *Reader) fill() error {
	if r.rows == nil {
		if r.group >= len(r.groups) {
			return io.EOF
		}
		if err := checkPages(r.ra, r.file.Metadata().RowGroups[r.group], &r.hdrBuf); err != nil {
			return fmt.Errorf("read %s row group %d: %w", r.name, r.group, err)
		}
		r.rows = r.groups[r.group].Rows()
	}
	n, err := r.rows.ReadRows(r.buf)
	r.pos, r.n = 0, n
	if err == nil || errors.Is(err, io.EOF) {
		if errors.Is(err, io.EOF) || n == 0 {
			cerr := r.rows.Close()
			r.rows = nil
			r.group++
			if cerr != nil {
				return fmt.Errorf("read %s row group %d: %w", r.name, r.group-1, cerr)
			}
		}
		return nil
	}
	return fmt.Errorf("read %s row group %d: %w", r.name, r.group, err)
}

// Close releases the file.
func (r *Reader) Close() (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("close %s: corrupt parquet file: %v", r.name, p)
		}
	}()
	if r.err == nil {
		r.err = errors.New("reader closed")
	}
	if r.rows != nil {
		err = r.rows.Close()
		r.rows = nil
	}
	if r.closer != nil {
		err = errors.Join(err, r.closer.Close())
		r.closer = nil
	}
	return err
}
