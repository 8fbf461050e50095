//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package safetensors

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmapMapping is a read-only shared mapping of the whole file.
type mmapMapping struct {
	data []byte
	f    *os.File
}

func newMapping(f *os.File, size int64, useMmap bool) (mapping, error) {
	if !useMmap || size == 0 || int64(int(size)) != size {
		return readMapping{f}, nil
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		// Some filesystems cannot be mapped; reading still works.
		return readMapping{f}, nil
	}
	return &mmapMapping{data: data, f: f}, nil
}

func (m *mmapMapping) slice(begin, end int64) ([]byte, error) {
	return m.data[begin:end:end], nil
}

// release drops the pages wholly inside b from this process's resident set.
// The file's pages stay in the page cache, and a later read faults them back.
func (m *mmapMapping) release(b []byte) {
	page := uintptr(os.Getpagesize())
	base := uintptr(unsafe.Pointer(unsafe.SliceData(m.data)))
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b))) - base
	end := start + uintptr(len(b))
	start = (start + page - 1) &^ (page - 1)
	end &^= page - 1
	if end <= start || end > uintptr(len(m.data)) {
		return
	}
	_ = unix.Madvise(m.data[start:end], unix.MADV_DONTNEED)
}

func (m *mmapMapping) close() error {
	err := unix.Munmap(m.data)
	m.data = nil
	if cerr := m.f.Close(); err == nil {
		err = cerr
	}
	return err
}
