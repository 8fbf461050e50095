package safetensors

import (
	"fmt"
	"os"
)

// mapping gives access to a file's bytes: a memory map where the platform
// has one, else positioned reads.
type mapping interface {
	slice(begin, end int64) ([]byte, error)
	release(b []byte)
	close() error
}

// readMapping reads each tensor with ReadAt into a private buffer.
type readMapping struct{ f *os.File }

func (r readMapping) slice(begin, end int64) ([]byte, error) {
	b := make([]byte, end-begin)
	if _, err := r.f.ReadAt(b, begin); err != nil {
		return nil, fmt.Errorf("read bytes [%d, %d): %w", begin, end, err)
	}
	return b, nil
}

func (readMapping) release([]byte) {}

func (r readMapping) close() error { return r.f.Close() }
