// Package durable owns the project's crash-safe file writes: fsyncing a
// folder after a create or rename, and a file that appears at its path
// whole or not at all (temporary name in the same folder, write, fsync,
// close, rename, fsync of the folder). The runner's output and the
// checkpoint use it; it imports nothing of the project.
package durable

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// SyncDir fsyncs a folder so a create or rename in it is durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open folder %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("sync folder %s: %w", dir, err)
	}
	return nil
}

// File is written under a temporary name in its final folder and renamed
// into place by Commit once synced. It is owned by one goroutine.
type File struct {
	path string
	f    *os.File
	w    *bufio.Writer
	done bool
	// Hook, when set, is called with "before-rename" and "after-rename"
	// so crash tests can stop the process at those moments.
	Hook func(point string)
}

// Create starts a File for path (mode 0644). Temporary files that a
// killed writer left for the same path are removed first: the caller must
// be the only writer of path (the runner holds the job's lock).
func Create(path string) (*File, error) {
	if stale, err := filepath.Glob(filepath.Join(filepath.Dir(path), "."+globEscape(filepath.Base(path))+".tmp-*")); err == nil {
		for _, s := range stale {
			os.Remove(s)
		}
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("create output: %w", err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("create output: %w", err)
	}
	return &File{path: path, f: f, w: bufio.NewWriterSize(f, 1<<16)}, nil
}

// Writer is where the file's bytes go (buffered).
func (a *File) Writer() io.Writer { return a.w }

// Commit flushes, fsyncs and closes the file, renames it into place and
// fsyncs its folder.
func (a *File) Commit() error {
	if err := a.w.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", a.path, err)
	}
	if err := a.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", a.path, err)
	}
	if err := a.f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", a.path, err)
	}
	a.hook("before-rename")
	if err := os.Rename(a.f.Name(), a.path); err != nil {
		return fmt.Errorf("rename output into place: %w", err)
	}
	a.done = true
	a.hook("after-rename")
	return SyncDir(filepath.Dir(a.path))
}

// Abort removes the temporary file unless Commit renamed it; it is safe
// to defer.
func (a *File) Abort() {
	if !a.done {
		a.f.Close()
		os.Remove(a.f.Name())
	}
}

func (a *File) hook(point string) {
	if a.Hook != nil {
		a.Hook(point)
	}
}

// globEscape quotes the pattern characters in a file name.
func globEscape(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', '\\':
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return string(b)
}
