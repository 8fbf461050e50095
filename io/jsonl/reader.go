package jsonl

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/batchtrans/batchtrans/io/dataset"
)

// Limits on what one file may ask of memory.
const (
	// MaxLineBytes is the longest line read; a longer one is a bad row.
	MaxLineBytes = 64 << 20
	// MaxColumns is the most distinct field names a file may use; more is
	// an error for the file.
	MaxColumns = 10_000
)

func init() {
	dataset.Register(dataset.Format{
		Name:       "jsonl",
		Extensions: []string{".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz"},
		Open: func(path string, opt dataset.Options) (dataset.Reader, error) {
			return Open(path)
		},
		OpenSource: func(src dataset.Source, opt dataset.Options) (dataset.Reader, error) {
			return OpenSource(src)
		},
		NewWriter: func(w io.Writer, cols []dataset.Column, opt dataset.Options) (dataset.Writer, error) {
			return NewWriter(w, cols)
		},
	})
}

// Reader streams the records of one JSONL file. It is not safe for
// concurrent use.
type Reader struct {
	name    string
	closer  io.Closer
	lines   lineReader
	cols    []dataset.Column
	colIdx  map[string]int
	index   int64
	err     error // sticky fatal error
	pairs   []pair
	maxLine int
}

// Open opens a JSONL file (gzip-compressed when its name ends in .gz),
// scans it once for its columns and returns a Reader positioned at the
// first record. The Reader owns the file.
func Open(path string) (*Reader, error) {
	return openWith(path, func() (io.ReadCloser, error) { return openFile(path) })
}

// OpenSource is Open for a Source (a local file or an object): it streams
// the source twice, once for the columns and once for the records.
func OpenSource(src dataset.Source) (*Reader, error) {
	name := src.Name()
	return openWith(name, func() (io.ReadCloser, error) {
		rc, err := src.Open()
		if err != nil {
			return nil, err
		}
		return gunzip(name, rc)
	})
}

func openWith(path string, open func() (io.ReadCloser, error)) (*Reader, error) {
	rc, err := open()
	if err != nil {
		return nil, err
	}
	cols, err := scanColumns(path, rc, MaxLineBytes)
	rc.Close()
	if err != nil {
		return nil, err
	}
	rc, err = open()
	if err != nil {
		return nil, err
	}
	return newReader(path, rc, rc, cols, MaxLineBytes), nil
}

// NewReader reads JSONL from r, naming it name in errors. It scans r once
// for the columns, then seeks back to the start. Close does not close r.
func NewReader(name string, r io.ReadSeeker) (*Reader, error) {
	return newReaderLimit(name, r, MaxLineBytes)
}

func newReaderLimit(name string, r io.ReadSeeker, maxLine int) (*Reader, error) {
	cols, err := scanColumns(name, r, maxLine)
	if err != nil {
		return nil, err
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("read %s: rewind: %w", name, err)
	}
	return newReader(name, r, nil, cols, maxLine), nil
}

func newReader(name string, r io.Reader, closer io.Closer, cols []dataset.Column, maxLine int) *Reader {
	idx := make(map[string]int, len(cols))
	for i, c := range cols {
		idx[c.Name] = i
	}
	return &Reader{
		name:    name,
		closer:  closer,
		lines:   lineReader{br: bufio.NewReaderSize(r, 64<<10), max: maxLine},
		cols:    cols,
		colIdx:  idx,
		maxLine: maxLine,
	}
}

type gzipFile struct {
	*gzip.Reader
	f io.Closer
}

func (g gzipFile) Close() error {
	err := g.Reader.Close()
	return errors.Join(err, g.f.Close())
}

func openFile(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return gunzip(path, f)
}

// gunzip decompresses rc when name ends in .gz.
func gunzip(name string, rc io.ReadCloser) (io.ReadCloser, error) {
	if !strings.HasSuffix(strings.ToLower(name), ".gz") {
		return rc, nil
	}
	zr, err := gzip.NewReader(bufio.NewReader(rc))
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("open %s: gzip: %w", name, err)
	}
	return gzipFile{Reader: zr, f: rc}, nil
}

// Columns returns the file's fields in first-seen order with their kinds.
func (r *Reader) Columns() []dataset.Column { return slices.Clone(r.cols) }

// Read returns the next record, or io.EOF after the last. A bad line is a
// record with Err set; any other error is fatal for the file.
func (r *Reader) Read() (dataset.Record, error) {
	if r.err != nil {
		return dataset.Record{}, r.err
	}
	for {
		line, tooLong, err := r.lines.next()
		if err != nil {
			if err != io.EOF {
				err = fmt.Errorf("read %s line %d: %w", r.name, r.lines.n, err)
			}
			r.err = err
			return dataset.Record{}, err
		}
		rec := dataset.Record{Index: r.index, Line: r.lines.n}
		if tooLong {
			r.index++
			rec.Err = fmt.Errorf("line longer than %d bytes", r.maxLine)
			return rec, nil
		}
		if isBlank(line) {
			continue
		}
		r.index++
		rec.Fields, rec.Err = r.parse(line)
		if rec.Err != nil {
			rec.Fields = nil
		}
		return rec, nil
	}
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

func (r *Reader) parse(line []byte) ([]dataset.Field, error) {
	pairs, err := splitObject(line, r.pairs[:0])
	r.pairs = pairs[:0]
	if err != nil {
		return nil, err
	}
	fields := make([]dataset.Field, 0, len(pairs))
	order := make([]int, 0, len(pairs))
	for _, p := range pairs {
		i, ok := r.colIdx[p.key]
		if !ok {
			return nil, fmt.Errorf("field %q was not seen when the file was scanned (file changed while reading?)", p.key)
		}
		v, err := convert(p.raw, r.cols[i].Kind)
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", p.key, err)
		}
		fields = append(fields, dataset.Field{Name: p.key, Value: v})
		order = append(order, i)
	}
	if !slices.IsSorted(order) {
		perm := make([]int, len(order))
		for i := range perm {
			perm[i] = i
		}
		slices.SortFunc(perm, func(a, b int) int { return order[a] - order[b] })
		sorted := make([]dataset.Field, len(fields))
		for i, p := range perm {
			sorted[i] = fields[p]
		}
		fields = sorted
	}
	return fields, nil
}

// convert turns a raw JSON value into the Go value its column's kind asks for.
func convert(raw []byte, kind dataset.Kind) (any, error) {
	k := kindOf(raw)
	if k == kindNull {
		return nil, nil
	}
	switch kind {
	case dataset.String:
		if k == kindString {
			return unquote(raw)
		}
	case dataset.Bool:
		if k == kindBool {
			return raw[0] == 't', nil
		}
	case dataset.Int:
		if k == kindInt {
			return strconv.ParseInt(string(raw), 10, 64)
		}
	case dataset.Float:
		if k == kindInt || k == kindFloat {
			return strconv.ParseFloat(string(raw), 64)
		}
	case dataset.JSON:
		return json.RawMessage(bytes.Clone(raw)), nil
	}
	return nil, fmt.Errorf("%s value in a %s column (file changed while reading?)", k, kind)
}

func unquote(raw []byte) (string, error) {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", err
	}
	return s, nil
}

func isBlank(line []byte) bool {
	return len(bytes.TrimSpace(line)) == 0
}

// valueKind is the JSON type of one value, with numbers split by what
// holds them exactly.
type valueKind int

const (
	kindNull valueKind = iota
	kindString
	kindBool
	kindInt      // integer literal that fits int64
	kindFloat    // other number that fits float64
	kindBigNum   // number that fits neither
	kindCompound // object or array
)

func (k valueKind) String() string {
	return [...]string{"null", "string", "bool", "integer", "number", "out-of-range number", "object/array"}[k]
}

func kindOf(raw []byte) valueKind {
	switch raw[0] {
	case 'n':
		return kindNull
	case '"':
		return kindString
	case 't', 'f':
		return kindBool
	case '{', '[':
		return kindCompound
	}
	s := string(raw)
	if !strings.ContainsAny(s, ".eE") {
		if _, err := strconv.ParseInt(s, 10, 64); err == nil {
			return kindInt
		}
		return kindBigNum // an integer float64 would round
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsInf(f, 0) {
		return kindFloat
	}
	return kindBigNum
}

// merge folds one value's JSON type into a column's kind; first reports
// whether the column had no non-null value yet.
func merge(col dataset.Kind, first bool, k valueKind) dataset.Kind {
	var want dataset.Kind
	switch k {
	case kindString:
		want = dataset.String
	case kindBool:
		want = dataset.Bool
	case kindInt:
		want = dataset.Int
	case kindFloat:
		want = dataset.Float
	default:
		return dataset.JSON
	}
	if first || col == want {
		return want
	}
	if (col == dataset.Int && want == dataset.Float) || (col == dataset.Float && want == dataset.Int) {
		return dataset.Float
	}
	return dataset.JSON
}

type pair struct {
	key string
	raw []byte
}

// splitObject splits one line holding a JSON object into its members, in
// line order. raw values alias line. A valid line takes splitValid's
// scan; any other, and any that scan declines, the decoder's
// (splitDecoded), which names what is wrong.
func splitObject(line []byte, out []pair) ([]pair, error) {
	if utf8.Valid(line) && json.Valid(line) {
		if pairs, ok := splitValid(line, out); ok {
			return pairs, nil
		}
	}
	return splitDecoded(line, out[:0])
}

// splitValid splits a line that json.Valid accepts by scanning its bytes:
// the top level must be an object whose keys hold no escapes, none of them
// empty or repeated (ok is false otherwise, and the decoder's path gives
// the error or the decoded key). A value runs from its first byte to its
// last, as the decoder's offsets give it.
func splitValid(line []byte, out []pair) (pairs []pair, ok bool) {
	i := skipSpace(line, 0)
	if i >= len(line) || line[i] != '{' {
		return out, false
	}
	i = skipSpace(line, i+1)
	if line[i] == '}' {
		return out, true
	}
	for {
		// A key: a string (valid JSON, so it closes).
		end := stringEnd(line, i)
		key := line[i+1 : end-1]
		if len(key) == 0 || bytes.IndexByte(key, '\\') >= 0 {
			return out, false
		}
		for _, p := range out {
			if p.key == string(key) {
				return out, false
			}
		}
		i = skipSpace(line, skipSpace(line, end)+1) // past the colon
		start := i
		i = valueEnd(line, i)
		out = append(out, pair{key: string(key), raw: line[start:i]})
		i = skipSpace(line, i)
		if line[i] == '}' {
			return out, true
		}
		i = skipSpace(line, i+1) // past the comma
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// stringEnd returns the index past the closing quote of the string whose
// opening quote is at i.
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// valueEnd returns the index past the value that starts at i: a string,
// an object or array (to its matching bracket, strings skipped), or a
// number or literal (to the next delimiter).
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\r' && b[i] != '\n' {
		i++
	}
	return i
}

// splitDecoded is splitObject through encoding/json's decoder.
func splitDecoded(line []byte, out []pair) ([]pair, error) {
	if !utf8.Valid(line) {
		return out, errors.New("invalid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return out, fmt.Errorf("malformed JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return out, fmt.Errorf("want a JSON object, found %s", describe(tok))
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return out, fmt.Errorf("malformed JSON: %w", err)
		}
		key, ok := tok.(string)
		if !ok {
			return out, fmt.Errorf("malformed JSON: object key %v", tok)
		}
		start := dec.InputOffset()
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return out, fmt.Errorf("malformed JSON: field %q: %w", key, err)
		}
		// The raw value is the input between the colon and the value's end;
		// slice it from line instead of keeping the decoder's copy.
		raw := bytes.TrimLeft(line[start:dec.InputOffset()], " \t\r\n:")
		if key == "" {
			return out, errors.New("field with an empty name")
		}
		for _, p := range out {
			if p.key == key {
				return out, fmt.Errorf("duplicate field %q", key)
			}
		}
		out = append(out, pair{key: key, raw: raw})
	}
	if _, err := dec.Token(); err != nil {
		return out, fmt.Errorf("malformed JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return out, errors.New("malformed JSON: data after the object")
	}
	return out, nil
}

func describe(tok json.Token) string {
	switch tok.(type) {
	case json.Delim:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}

// scanColumns is the pre-pass: it reads every line once and returns the
// columns. Bad lines are skipped here; Read reports them.
func scanColumns(name string, r io.Reader, maxLine int) ([]dataset.Column, error) {
	lr := lineReader{br: bufio.NewReaderSize(r, 64<<10), max: maxLine}
	var cols []dataset.Column
	seen := map[string]int{}
	nonNull := []bool{}
	var pairs []pair
	for {
		line, tooLong, err := lr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s line %d: %w", name, lr.n, err)
		}
		if tooLong || isBlank(line) {
			continue
		}
		pairs, err = splitObject(line, pairs[:0])
		if err != nil {
			continue
		}
		for _, p := range pairs {
			i, ok := seen[p.key]
			if !ok {
				if len(cols) == MaxColumns {
					return nil, fmt.Errorf("read %s line %d: more than %d distinct fields", name, lr.n, MaxColumns)
				}
				i = len(cols)
				seen[p.key] = i
				cols = append(cols, dataset.Column{Name: p.key, Kind: dataset.String})
				nonNull = append(nonNull, false)
			}
			k := kindOf(p.raw)
			if k == kindNull {
				continue
			}
			cols[i].Kind = merge(cols[i].Kind, !nonNull[i], k)
			nonNull[i] = true
		}
	}
	return cols, nil
}

// lineReader yields lines without their end-of-line bytes, holding at most
// max bytes of one line in memory.
type lineReader struct {
	br  *bufio.Reader
	max int
	buf []byte
	n   int64 // 1-based number of the line last returned
}

// next returns the next line (valid until the following call). tooLong
// reports a line over the limit, whose bytes were discarded.
func (l *lineReader) next() (line []byte, tooLong bool, err error) {
	l.buf = l.buf[:0]
	read := 0
	for {
		chunk, err := l.br.ReadSlice('\n')
		read += len(chunk)
		switch {
		case tooLong:
		case len(l.buf)+len(chunk) > l.max+2: // allow for the "\r\n"
			tooLong = true
			l.buf = l.buf[:0]
		case err == nil && len(l.buf) == 0:
			line = chunk // whole line in the buffer: no copy
		default:
			l.buf = append(l.buf, chunk...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			if read == 0 {
				return nil, false, io.EOF
			}
		} else if err != nil {
			return nil, false, err
		}
		l.n++
		if line == nil {
			line = l.buf
		}
		line = bytes.TrimSuffix(line, []byte{'\n'})
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if !tooLong && len(line) > l.max {
			tooLong = true
		}
		return line, tooLong, nil
	}
}
