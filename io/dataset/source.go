package dataset

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
)

// Source is one input file wherever it lives (a local file, an object in
// a bucket): a fresh stream from its start on each Open, reads at any
// offset (Parquet reads its footer and column chunks that way), and a
// digest of its content for the job's fingerprint. Readers made from a
// Source never hold it whole in memory.
type Source interface {
	Name() string // for messages: the path or URL
	Size() int64
	Open() (io.ReadCloser, error)
	io.ReaderAt
	// Digest identifies the content: "size:sha256hex" for a local file.
	Digest() (string, error)
	Close() error
}

// LocalFile is a Source over a file on disk.
type LocalFile struct {
	path string
	f    *os.File
	size int64
}

var _ Source = (*LocalFile)(nil)

// OpenLocal opens a local file as a Source; the caller closes it.
func OpenLocal(path string) (*LocalFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if st.IsDir() {
		f.Close()
		return nil, fmt.Errorf("open %s: a folder, not a file", path)
	}
	return &LocalFile{path: path, f: f, size: st.Size()}, nil
}

// Name is the file's path.
func (l *LocalFile) Name() string { return l.path }

// Size is the file's size when it was opened.
func (l *LocalFile) Size() int64 { return l.size }

// Open opens the file again for a stream from its start.
func (l *LocalFile) Open() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", l.path, err)
	}
	return f, nil
}

// ReadAt reads at an offset.
func (l *LocalFile) ReadAt(p []byte, off int64) (int, error) { return l.f.ReadAt(p, off) }

// Digest is "size:sha256hex" of the file's content, streamed.
func (l *LocalFile) Digest() (string, error) { return FileDigest(l.path) }

// FileDigest is "size:sha256hex" of a file's content, streamed.
func FileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return fmt.Sprintf("%d:%s", n, hex.EncodeToString(h.Sum(nil))), nil
}

// CountRows reads rd to its end and counts its records, bad ones
// included: from the footer where the reader knows it (Parquet's
// NumRows), else by reading, until ctx ends.
func CountRows(ctx context.Context, rd Reader) (int64, error) {
	if nr, ok := rd.(interface{ NumRows() int64 }); ok {
		return nr.NumRows(), nil
	}
	var n int64
	for {
		if n%4096 == 0 && ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if _, err := rd.Read(); errors.Is(err, io.EOF) {
			return n, nil
		} else if err != nil {
			return 0, fmt.Errorf("read input: %w", err)
		}
		n++
	}
}

// Close closes the file.
func (l *LocalFile) Close() error { return l.f.Close() }

// OpenSource opens a reader over src in the given format, or by the
// source's name's extension when format is "". The reader does not close
// src.
func OpenSource(src Source, format string, opt Options) (Reader, error) {
	f, err := lookup(src.Name(), format)
	if err != nil {
		return nil, err
	}
	if f.OpenSource == nil {
		return nil, fmt.Errorf("format %s cannot read %s: %w", f.Name, src.Name(), ErrUnknownFormat)
	}
	return f.OpenSource(src, opt)
}
