package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// IndexFile names the shard index of a sharded checkpoint.
const IndexFile = "model.safetensors.index.json"

// SingleFile names the one file of an unsharded checkpoint.
const SingleFile = "model.safetensors"

// maxIndexBytes caps model.safetensors.index.json.
const maxIndexBytes = 64 << 20

// Set is a checkpoint spread over one or more files. Each tensor name lives
// in exactly one file.
type Set struct {
	files []*File
	where map[string]*File
	names []string
}

// OpenDir opens the checkpoint in a Hugging Face model folder: the shards
// named by model.safetensors.index.json if it exists, else model.safetensors.
func OpenDir(dir string) (*Set, error) {
	idx := filepath.Join(dir, IndexFile)
	raw, err := ReadCapped(idx, maxIndexBytes)
	switch {
	case err == nil:
		return openIndexed(dir, idx, raw)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	single := filepath.Join(dir, SingleFile)
	if _, err := os.Stat(single); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: no %s or %s (only safetensors checkpoints are supported)", dir, SingleFile, IndexFile)
		}
		return nil, fmt.Errorf("open checkpoint: %w", err)
	}
	return OpenFiles(single)
}

// ReadCapped reads a small file whole, refusing one over limit bytes before
// allocating for it. The model folder's JSON files are read this way.
func ReadCapped(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d-byte limit", path, st.Size(), limit)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil && st.Size() > 0 {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

func openIndexed(dir, idx string, raw []byte) (*Set, error) {
	var index struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(raw, &index); err != nil {
		return nil, fmt.Errorf("%s: %w", idx, err)
	}
	if len(index.WeightMap) == 0 {
		return nil, fmt.Errorf("%s: empty or missing weight_map", idx)
	}
	var shards []string
	seen := map[string]bool{}
	names := make([]string, 0, len(index.WeightMap))
	for tensor := range index.WeightMap {
		names = append(names, tensor)
	}
	sort.Strings(names)
	for _, tensor := range names {
		shard := index.WeightMap[tensor]
		if shard == "" || filepath.IsAbs(shard) || strings.Contains(shard, "..") || strings.ContainsAny(shard, `/\`) {
			return nil, fmt.Errorf("%s: tensor %s: shard name %q must be a file in the model folder", idx, tensor, shard)
		}
		if !seen[shard] {
			seen[shard] = true
			shards = append(shards, shard)
		}
	}
	sort.Strings(shards)
	paths := make([]string, len(shards))
	for i, s := range shards {
		paths[i] = filepath.Join(dir, s)
	}
	set, err := OpenFiles(paths...)
	if err != nil {
		return nil, err
	}
	// The index and the shards must agree on where each tensor is.
	listed := make([]string, 0, len(index.WeightMap))
	for tensor := range index.WeightMap {
		listed = append(listed, tensor)
	}
	sort.Strings(listed)
	for _, tensor := range listed {
		shard := index.WeightMap[tensor]
		f, ok := set.where[tensor]
		if !ok {
			set.Close()
			return nil, fmt.Errorf("%s: tensor %s is listed in %s but not present in %s", filepath.Join(dir, shard), tensor, IndexFile, shard)
		}
		if filepath.Base(f.path) != shard {
			set.Close()
			return nil, fmt.Errorf("%s: tensor %s is in %s, not in %s as the index says", idx, tensor, filepath.Base(f.path), shard)
		}
	}
	for _, name := range set.names {
		if _, ok := index.WeightMap[name]; !ok {
			set.Close()
			return nil, fmt.Errorf("%s: tensor %s is not listed in %s", set.where[name].path, name, IndexFile)
		}
	}
	return set, nil
}

// OpenFiles opens the given files as one checkpoint; a tensor name found in
// two files is an error.
func OpenFiles(paths ...string) (*Set, error) {
	s := &Set{where: map[string]*File{}}
	for _, p := range paths {
		f, err := Open(p)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.files = append(s.files, f)
		for _, name := range f.names {
			if other, dup := s.where[name]; dup {
				s.Close()
				return nil, fmt.Errorf("tensor %s is in both %s and %s", name, other.path, f.path)
			}
			s.where[name] = f
			s.names = append(s.names, name)
		}
	}
	sort.Strings(s.names)
	return s, nil
}

// Names lists every tensor of the checkpoint, sorted.
func (s *Set) Names() []string { return append([]string(nil), s.names...) }

// Has reports whether the checkpoint holds a tensor of that name.
func (s *Set) Has(name string) bool { _, ok := s.where[name]; return ok }

// Files lists the paths of the checkpoint's files.
func (s *Set) Files() []string {
	out := make([]string, len(s.files))
	for i, f := range s.files {
		out[i] = f.path
	}
	return out
}

// FileOf is the path of the file holding the tensor, or "" if none does.
func (s *Set) FileOf(name string) string {
	if f, ok := s.where[name]; ok {
		return f.path
	}
	return ""
}

// Info returns a tensor's dtype and shape without touching its data.
func (s *Set) Info(name string) (DType, []int, error) {
	f, ok := s.where[name]
	if !ok {
		return "", nil, fmt.Errorf("checkpoint %s: no tensor %s", strings.Join(s.Files(), ", "), name)
	}
	return f.Info(name)
}

// Tensor returns the named tensor from whichever file holds it.
func (s *Set) Tensor(name string) (Tensor, error) {
	f, ok := s.where[name]
	if !ok {
		return Tensor{}, fmt.Errorf("checkpoint %s: no tensor %s", strings.Join(s.Files(), ", "), name)
	}
	return f.Tensor(name)
}

// Release is File.Release for the file that holds t.
func (s *Set) Release(t Tensor) {
	if f, ok := s.where[t.Name]; ok {
		f.Release(t)
	}
}

// Close closes every file of the set.
func (s *Set) Close() error {
	var errs []error
	for _, f := range s.files {
		if err := f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
