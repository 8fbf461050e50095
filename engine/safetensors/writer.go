package safetensors

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
)

// Spec describes one tensor to write.
type Spec struct {
	Name  string
	DType DType
	Shape []int
}

// Writer streams a safetensors file: the header is written first from the
// specs, then the tensors' bytes in spec order through Write, so a file of
// any size is written without holding it in memory.
type Writer struct {
	path    string
	f       *os.File
	bw      *bufio.Writer
	want    int64
	written int64
}

// Create starts a safetensors file at path holding the given tensors, laid
// out back to back in the order given. metadata may be nil.
func Create(path string, specs []Spec, metadata map[string]string) (*Writer, error) {
	hdr := map[string]any{}
	if metadata != nil {
		hdr["__metadata__"] = metadata
	}
	var off int64
	for _, s := range specs {
		if s.DType.Size() == 0 {
			return nil, fmt.Errorf("create %s: tensor %s: unknown dtype %q", path, s.Name, s.DType)
		}
		if _, dup := hdr[s.Name]; dup || s.Name == "" {
			return nil, fmt.Errorf("create %s: tensor name %q is empty or repeated", path, s.Name)
		}
		n := int64(s.DType.Size())
		for _, d := range s.Shape {
			if d < 0 {
				return nil, fmt.Errorf("create %s: tensor %s: negative dimension in %v", path, s.Name, s.Shape)
			}
			n *= int64(d)
		}
		shape := s.Shape
		if shape == nil {
			shape = []int{}
		}
		hdr[s.Name] = map[string]any{"dtype": s.DType, "shape": shape, "data_offsets": [2]int64{off, off + n}}
		off += n
	}
	js, err := json.Marshal(hdr)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	// Pad with spaces so the data area starts 8-byte aligned, as the
	// reference writer does.
	for (8+len(js))%8 != 0 {
		js = append(js, ' ')
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create safetensors: %w", err)
	}
	w := &Writer{path: path, f: f, bw: bufio.NewWriterSize(f, 1<<20), want: off}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(js)))
	w.bw.Write(lenBuf[:])
	if _, err := w.bw.Write(js); err != nil {
		f.Close()
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return w, nil
}

// Write appends tensor bytes (little-endian) to the data area.
func (w *Writer) Write(p []byte) (int, error) {
	if w.written+int64(len(p)) > w.want {
		return 0, fmt.Errorf("write %s: %d bytes past the %d the header declares", w.path, w.written+int64(len(p))-w.want, w.want)
	}
	n, err := w.bw.Write(p)
	w.written += int64(n)
	if err != nil {
		return n, fmt.Errorf("write %s: %w", w.path, err)
	}
	return n, nil
}

// Close flushes the file and checks that every declared byte was written.
func (w *Writer) Close() error {
	ferr := w.bw.Flush()
	cerr := w.f.Close()
	switch {
	case ferr != nil:
		return fmt.Errorf("write %s: %w", w.path, ferr)
	case cerr != nil:
		return fmt.Errorf("close %s: %w", w.path, cerr)
	case w.written != w.want:
		return fmt.Errorf("write %s: %d of %d data bytes written", w.path, w.written, w.want)
	}
	return nil
}
