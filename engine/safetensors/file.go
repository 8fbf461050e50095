package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/batchtrans/batchtrans/internal/parallel"
)

// MaxHeaderBytes caps the JSON header; the reference implementation uses the
// same 100 MB limit. A longer header is refused before it is read.
const MaxHeaderBytes = 100 << 20

// maxDims caps the rank of a tensor: nothing in a language model needs more.
const maxDims = 8

// Tensor is one tensor of a file. Data aliases the file's mapping (or a
// private copy where files are not mapped): it is read-only and valid until
// the File is closed.
type Tensor struct {
	Name  string
	File  string // path of the file that holds the tensor
	DType DType
	Shape []int
	Data  []byte // little-endian elements, len = NumElements * DType.Size()
}

// NumElements is the product of the shape (1 for a scalar).
func (t Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// F32Into writes the tensor's values as float32 to dst, which must hold
// exactly NumElements values. F32, F16 and BF16 convert exactly.
func (t Tensor) F32Into(dst []float32) error {
	if len(dst) != t.NumElements() {
		return fmt.Errorf("%s: tensor %s: %d values into a buffer of %d", t.File, t.Name, t.NumElements(), len(dst))
	}
	size := t.DType.Size()
	var err error
	var once sync.Once
	// Each element converts alone: chunks on every core give the same values.
	parallel.For(len(dst), convertChunk, func(lo, hi int) {
		if e := convert(dst[lo:hi], t.Data[lo*size:hi*size], t.DType); e != nil {
			once.Do(func() { err = e })
		}
	})
	if err != nil {
		return fmt.Errorf("%s: tensor %s: %w", t.File, t.Name, err)
	}
	return nil
}

// convertChunk is the elements F32Into converts on one core at a time.
const convertChunk = 1 << 20

// F32 returns the tensor's values as a new float32 slice.
func (t Tensor) F32() ([]float32, error) {
	dst := make([]float32, t.NumElements())
	if err := t.F32Into(dst); err != nil {
		return nil, err
	}
	return dst, nil
}

// BF16Into copies the raw bfloat16 elements of a BF16 tensor to dst (len
// NumElements) without any conversion.
func (t Tensor) BF16Into(dst []uint16) error {
	if t.DType != BF16 {
		return fmt.Errorf("%s: tensor %s: dtype %s, want BF16", t.File, t.Name, t.DType)
	}
	if len(dst) != t.NumElements() {
		return fmt.Errorf("%s: tensor %s: %d values into a buffer of %d", t.File, t.Name, t.NumElements(), len(dst))
	}
	if u := asU16(t.Data); u != nil {
		copy(dst, u)
		return nil
	}
	for i := range dst {
		dst[i] = binary.LittleEndian.Uint16(t.Data[2*i:])
	}
	return nil
}

// BF16View returns the raw bfloat16 elements of a BF16 tensor in place,
// aliasing Data (read-only, valid as long as Data is), or nil where they
// cannot be viewed without a copy (another dtype, an odd address, a
// big-endian host); BF16Into copies them then.
func (t Tensor) BF16View() []uint16 {
	if t.DType != BF16 || len(t.Data) != 2*t.NumElements() {
		return nil
	}
	return asU16(t.Data)
}

// entry is a checked header record.
type entry struct {
	dtype      DType
	shape      []int
	begin, end int64 // offsets into the data area
}

// File is one open safetensors file. Close releases it; Tensor values taken
// from it must not be used afterwards.
type File struct {
	path     string
	size     int64
	dataOff  int64 // start of the data area in the file
	entries  map[string]entry
	names    []string // sorted
	metadata map[string]string
	m        mapping
}

// Open opens and checks one safetensors file.
func Open(path string) (*File, error) { return open(path, true) }

func open(path string, useMmap bool) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open safetensors: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open safetensors %s: %w", path, err)
	}
	sf := &File{path: path, size: st.Size()}
	if err := sf.readHeader(f); err != nil {
		f.Close()
		return nil, err
	}
	m, err := newMapping(f, sf.size, useMmap)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open safetensors %s: %w", path, err)
	}
	sf.m = m
	return sf, nil
}

// Path is the file's path as given to Open.
func (f *File) Path() string { return f.path }

// Names lists the tensors in the file, sorted.
func (f *File) Names() []string { return append([]string(nil), f.names...) }

// Has reports whether the file holds a tensor of that name.
func (f *File) Has(name string) bool { _, ok := f.entries[name]; return ok }

// Metadata is the header's __metadata__ map (may be nil).
func (f *File) Metadata() map[string]string { return f.metadata }

// Info returns a tensor's dtype and shape without touching its data.
func (f *File) Info(name string) (DType, []int, error) {
	e, ok := f.entries[name]
	if !ok {
		return "", nil, fmt.Errorf("%s: no tensor %s", f.path, name)
	}
	return e.dtype, append([]int(nil), e.shape...), nil
}

// Tensor returns the named tensor. On mapped files it copies nothing.
func (f *File) Tensor(name string) (Tensor, error) {
	e, ok := f.entries[name]
	if !ok {
		return Tensor{}, fmt.Errorf("%s: no tensor %s", f.path, name)
	}
	if f.m == nil {
		return Tensor{}, fmt.Errorf("%s: tensor %s: file is closed", f.path, name)
	}
	data, err := f.m.slice(f.dataOff+e.begin, f.dataOff+e.end)
	if err != nil {
		return Tensor{}, fmt.Errorf("%s: tensor %s: %w", f.path, name, err)
	}
	return Tensor{Name: name, File: f.path, DType: e.dtype, Shape: append([]int(nil), e.shape...), Data: data}, nil
}

// Release tells the platform that the tensor's bytes will not be read again
// soon, so its pages can leave this process's resident memory. It is a hint:
// the tensor stays readable. Loaders call it after copying a tensor so that
// the checkpoint and its in-memory copy are not resident at the same time.
func (f *File) Release(t Tensor) {
	if f.m != nil && len(t.Data) > 0 {
		f.m.release(t.Data)
	}
}

// Close unmaps and closes the file.
func (f *File) Close() error {
	if f.m == nil {
		return nil
	}
	err := f.m.close()
	f.m = nil
	if err != nil {
		return fmt.Errorf("close %s: %w", f.path, err)
	}
	return nil
}

// rawEntry is a header record as it appears in JSON.
type rawEntry struct {
	DType       string  `json:"dtype"`
	Shape       []int64 `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

func (f *File) readHeader(r io.ReaderAt) error {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%s: invalid safetensors header: %s", f.path, fmt.Sprintf(format, a...))
	}
	if f.size < 8 {
		return fail("file is %d bytes, shorter than the 8-byte header length", f.size)
	}
	var lenBuf [8]byte
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return fmt.Errorf("%s: read header length: %w", f.path, err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeaderBytes {
		return fail("header length %d exceeds the %d-byte limit", n, MaxHeaderBytes)
	}
	if int64(n) > f.size-8 {
		return fail("header length %d runs past the end of the %d-byte file (truncated?)", n, f.size)
	}
	if n < 2 {
		return fail("header length %d is too short for a JSON object", n)
	}
	hdr := make([]byte, n)
	if _, err := r.ReadAt(hdr, 8); err != nil {
		return fmt.Errorf("%s: read header: %w", f.path, err)
	}
	f.dataOff = 8 + int64(n)
	dataLen := f.size - f.dataOff

	dec := json.NewDecoder(bytes.NewReader(hdr))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return fail("not a JSON object")
	}
	f.entries = map[string]entry{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fail("bad JSON: %v", err)
		}
		name, _ := tok.(string)
		if _, dup := f.entries[name]; dup || (name == "__metadata__" && f.metadata != nil) {
			return fail("tensor %q appears twice", name)
		}
		if name == "__metadata__" {
			var md map[string]string
			if err := dec.Decode(&md); err != nil {
				return fail("__metadata__ is not a map of strings: %v", err)
			}
			if md == nil {
				md = map[string]string{}
			}
			f.metadata = md
			continue
		}
		if name == "" {
			return fail("tensor with an empty name")
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fail("tensor %s: bad JSON: %v", name, err)
		}
		e, err := checkEntry(raw, dataLen)
		if err != nil {
			return fail("tensor %s: %v", name, err)
		}
		f.entries[name] = e
	}
	if _, err := dec.Token(); err != nil {
		return fail("bad JSON: %v", err)
	}
	// Only padding may follow the object.
	rest, _ := io.ReadAll(dec.Buffered())
	if len(strings.TrimRight(string(rest), " \t\r\n\x00")) > 0 {
		return fail("trailing bytes after the JSON object")
	}

	f.names = make([]string, 0, len(f.entries))
	for name := range f.entries {
		f.names = append(f.names, name)
	}
	sort.Strings(f.names)
	// No two tensors may share bytes.
	byStart := append([]string(nil), f.names...)
	sort.SliceStable(byStart, func(i, j int) bool {
		a, b := f.entries[byStart[i]], f.entries[byStart[j]]
		if a.begin != b.begin {
			return a.begin < b.begin
		}
		return a.end < b.end
	})
	for i := 1; i < len(byStart); i++ {
		prev, cur := f.entries[byStart[i-1]], f.entries[byStart[i]]
		if cur.begin < prev.end {
			return fail("tensors %s [%d, %d) and %s [%d, %d) overlap", byStart[i-1], prev.begin, prev.end, byStart[i], cur.begin, cur.end)
		}
	}
	return nil
}

func checkEntry(raw json.RawMessage, dataLen int64) (entry, error) {
	var re rawEntry
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&re); err != nil {
		return entry{}, fmt.Errorf("bad record: %w", err)
	}
	d := DType(re.DType)
	if d.Size() == 0 {
		return entry{}, fmt.Errorf("unknown dtype %q", re.DType)
	}
	if re.Shape == nil {
		return entry{}, errors.New("missing shape")
	}
	if len(re.Shape) > maxDims {
		return entry{}, fmt.Errorf("%d dimensions (at most %d)", len(re.Shape), maxDims)
	}
	if len(re.DataOffsets) != 2 {
		return entry{}, fmt.Errorf("data_offsets has %d values, want 2", len(re.DataOffsets))
	}
	begin, end := re.DataOffsets[0], re.DataOffsets[1]
	if begin < 0 || end < begin {
		return entry{}, fmt.Errorf("data_offsets [%d, %d] are not an increasing pair", begin, end)
	}
	if end > dataLen {
		return entry{}, fmt.Errorf("data_offsets [%d, %d] run past the %d-byte data area (truncated file?)", begin, end, dataLen)
	}
	shape := make([]int, len(re.Shape))
	numel := uint64(1)
	for i, dim := range re.Shape {
		if dim < 0 {
			return entry{}, fmt.Errorf("negative dimension %d in shape %v", dim, re.Shape)
		}
		hi, lo := bits.Mul64(numel, uint64(dim))
		if hi != 0 || lo > math.MaxInt64/8 {
			return entry{}, fmt.Errorf("shape %v overflows", re.Shape)
		}
		numel = lo
		shape[i] = int(dim)
	}
	want := numel * uint64(d.Size())
	if uint64(end-begin) != want {
		return entry{}, fmt.Errorf("shape %v of %s needs %d bytes, data_offsets [%d, %d] hold %d", re.Shape, d, want, begin, end, end-begin)
	}
	return entry{dtype: d, shape: shape, begin: begin, end: end}, nil
}
