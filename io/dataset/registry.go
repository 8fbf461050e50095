package dataset

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Format is one file format as a format package registers it: its name as a
// job file spells it, the file extensions that select it when no name is
// given, and its constructors.
type Format struct {
	Name       string   // "jsonl", "csv", "parquet"
	Extensions []string // lower case with the dot, e.g. ".jsonl"; compound ones such as ".jsonl.gz" allowed
	// Open opens the file at path for reading. The Reader owns the file and
	// closes it in Close.
	Open func(path string, opt Options) (Reader, error)
	// OpenSource opens a Source (a local file or an object) for reading.
	// The Reader does not close the Source.
	OpenSource func(src Source, opt Options) (Reader, error)
	// NewWriter starts a writer of rows with the given columns on w. The
	// Writer's Close writes the format's trailer and does not close w.
	NewWriter func(w io.Writer, cols []Column, opt Options) (Writer, error)
}

var (
	registryMu sync.RWMutex
	registry   []Format
)

// Register makes a format known to Open, NewWriter and FormatOf. The format
// packages call it from init; a program gets all of them by importing
// github.com/batchtrans/batchtrans/io/formats. Registering a name twice
// replaces the earlier entry. Register is safe for concurrent use.
func Register(f Format) {
	registryMu.Lock()
	defer registryMu.Unlock()
	for i := range registry {
		if registry[i].Name == f.Name {
			registry[i] = f
			return
		}
	}
	registry = append(registry, f)
}

// FormatOf returns the format name for a file: format itself when it is
// not empty (it must be registered), else the format whose extension ends
// path (case-insensitive; the longest match wins, so ".jsonl.gz" beats
// ".gz"). An unknown name or extension gives an error wrapping
// ErrUnknownFormat.
func FormatOf(path, format string) (string, error) {
	f, err := lookup(path, format)
	if err != nil {
		return "", err
	}
	return f.Name, nil
}

// Formats returns the registered format names, sorted.
func Formats() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for _, f := range registry {
		names = append(names, f.Name)
	}
	slices.Sort(names)
	return names
}

// Open opens path for streaming reads in the given format, or by its
// extension when format is "". Columns() is known when Open returns.
func Open(path, format string, opt Options) (Reader, error) {
	f, err := lookup(path, format)
	if err != nil {
		return nil, err
	}
	return f.Open(path, opt)
}

// NewWriter starts a writer of the named format ("jsonl", "csv", "parquet")
// on w with the given columns.
func NewWriter(w io.Writer, format string, cols []Column, opt Options) (Writer, error) {
	if format == "" {
		return nil, fmt.Errorf("new writer: no format named: %w", ErrUnknownFormat)
	}
	f, err := lookup("", format)
	if err != nil {
		return nil, err
	}
	return f.NewWriter(w, cols, opt)
}

func lookup(path, format string) (Format, error) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	if len(registry) == 0 {
		return Format{}, fmt.Errorf("no dataset formats registered (import github.com/batchtrans/batchtrans/io/formats): %w", ErrUnknownFormat)
	}
	if format != "" {
		name := strings.ToLower(format)
		for _, f := range registry {
			if f.Name == name {
				return f, nil
			}
		}
		return Format{}, fmt.Errorf("format %q (known: %s): %w", format, strings.Join(namesLocked(), ", "), ErrUnknownFormat)
	}
	base := strings.ToLower(filepath.Base(path))
	best, bestLen := -1, 0
	for i, f := range registry {
		for _, ext := range f.Extensions {
			if strings.HasSuffix(base, ext) && len(ext) > bestLen {
				best, bestLen = i, len(ext)
			}
		}
	}
	if best < 0 {
		return Format{}, fmt.Errorf("file %s: no format for extension %q (name one of %s with format:): %w",
			path, filepath.Ext(base), strings.Join(namesLocked(), ", "), ErrUnknownFormat)
	}
	return registry[best], nil
}

func namesLocked() []string {
	names := make([]string, 0, len(registry))
	for _, f := range registry {
		names = append(names, f.Name)
	}
	slices.Sort(names)
	return names
}

// CheckColumns reports an empty or duplicate column name, as every writer
// needs distinct names.
func CheckColumns(cols []Column) error {
	seen := make(map[string]bool, len(cols))
	for i, c := range cols {
		if c.Name == "" {
			return fmt.Errorf("column %d has no name", i)
		}
		if seen[c.Name] {
			return fmt.Errorf("duplicate column %q", c.Name)
		}
		seen[c.Name] = true
	}
	return nil
}

// CheckRow reports fields that do not follow cols one for one by name.
func CheckRow(cols []Column, fields []Field) error {
	if len(fields) != len(cols) {
		return fmt.Errorf("row has %d fields, want %d (the writer's columns)", len(fields), len(cols))
	}
	for i := range fields {
		if fields[i].Name != cols[i].Name {
			return fmt.Errorf("field %d is %q, want %q", i, fields[i].Name, cols[i].Name)
		}
	}
	return nil
}
