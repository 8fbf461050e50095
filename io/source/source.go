package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"gocloud.dev/blob"

	"github.com/batchtrans/batchtrans/io/blobstore"
	"github.com/batchtrans/batchtrans/io/dataset"
)

// ErrNoMatch: a glob in input.path matched no file.
var ErrNoMatch = errors.New("no file matches")

// Input is a job's input files, read in order as one.
type Input struct {
	ctx    context.Context
	Files  []string // local paths or object URLs, sorted
	Format string
	Opt    dataset.Options
}

// Resolve expands paths (local paths or object URLs, each maybe a glob
// with * ? or [...]) into the input's files, sorted by name. A glob that
// matches nothing and a file named twice are errors.
func Resolve(ctx context.Context, paths []string, format string, opt dataset.Options) (*Input, error) {
	var files []string
	for _, p := range paths {
		if !hasMeta(p) {
			files = append(files, p)
			continue
		}
		var m []string
		var err error
		if blobstore.IsURL(p) {
			m, err = globObjects(ctx, p)
		} else {
			m, err = filepath.Glob(p)
		}
		if err != nil {
			return nil, fmt.Errorf("input.path %s: %w", p, err)
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("input.path: %w %s", ErrNoMatch, p)
		}
		files = append(files, m...)
	}
	slices.Sort(files)
	for i := 1; i < len(files); i++ {
		if files[i] == files[i-1] {
			return nil, fmt.Errorf("input.path: %s is named twice", files[i])
		}
	}
	if len(files) == 0 {
		return nil, errors.New("input.path: no files")
	}
	return &Input{ctx: ctx, Files: files, Format: format, Opt: opt}, nil
}

func hasMeta(p string) bool {
	if blobstore.IsURL(p) {
		p, _, _ = strings.Cut(p, "?")
	}
	return strings.ContainsAny(p, "*?[")
}

// globObjects lists the objects whose keys match the URL's key pattern
// (path.Match: * does not cross a /).
func globObjects(ctx context.Context, raw string) ([]string, error) {
	l, err := blobstore.Parse(raw)
	if err != nil {
		return nil, err
	}
	if _, err := path.Match(l.Key, ""); err != nil {
		return nil, err
	}
	b, err := blobstore.OpenBucket(ctx, l.Bucket)
	if err != nil {
		return nil, err
	}
	prefix := l.Key[:strings.IndexAny(l.Key, "*?[")]
	var out []string
	it := b.List(&blob.ListOptions{Prefix: prefix})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", raw, err)
		}
		if ok, _ := path.Match(l.Key, obj.Key); ok && !obj.IsDir {
			out = append(out, blobstore.Loc{Bucket: l.Bucket, Key: obj.Key}.String())
		}
	}
	return out, nil
}

// String names the input for messages: its one file, or the first and
// how many.
func (in *Input) String() string {
	if len(in.Files) == 1 {
		return in.Files[0]
	}
	return fmt.Sprintf("%s and %d more files", in.Files[0], len(in.Files)-1)
}

// Base is the first file's base name (for a one-file input, its name in
// row messages).
func (in *Input) Base() string { return blobstore.Base(in.Files[0]) }

// openSource opens one file of the input as a dataset.Source.
func (in *Input) openSource(name string) (dataset.Source, error) {
	if blobstore.IsURL(name) {
		return blobstore.OpenObject(in.ctx, name)
	}
	return dataset.OpenLocal(name)
}

// Check opens every file once, so that a missing file, bucket or
// credentials fail before any work starts.
func (in *Input) Check() error {
	for _, f := range in.Files {
		src, err := in.openSource(f)
		if err != nil {
			return fmt.Errorf("input.path: %w", err)
		}
		src.Close()
	}
	return nil
}

// Digest identifies the input's content for the fingerprint: a one-file
// input's file digest ("size:sha256hex" on disk; size and the store's MD5
// or ETag in object storage), else a SHA-256 over every file's base name
// and digest, in order.
func (in *Input) Digest() (string, error) {
	if len(in.Files) == 1 {
		return in.digestOf(in.Files[0])
	}
	h := sha256.New()
	for _, f := range in.Files {
		d, err := in.digestOf(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%s\n", blobstore.Base(f), d)
	}
	return fmt.Sprintf("%d files:%s", len(in.Files), hex.EncodeToString(h.Sum(nil))), nil
}

func (in *Input) digestOf(name string) (string, error) {
	src, err := in.openSource(name)
	if err != nil {
		return "", err
	}
	defer src.Close()
	return src.Digest()
}

// Count counts the input's rows, bad ones included: from the footer for
// Parquet, else by reading.
func (in *Input) Count(ctx context.Context) (int64, error) {
	var total int64
	for _, f := range in.Files {
		rd, src, err := in.openFile(f)
		if err != nil {
			return 0, err
		}
		n, err := dataset.CountRows(ctx, rd)
		rd.Close()
		src.Close()
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

func (in *Input) openFile(name string) (dataset.Reader, dataset.Source, error) {
	src, err := in.openSource(name)
	if err != nil {
		return nil, nil, err
	}
	rd, err := dataset.OpenSource(src, in.Format, in.Opt)
	if err != nil {
		src.Close()
		return nil, nil, err
	}
	return rd, src, nil
}

// Open starts reading the input from its first row.
func (in *Input) Open() (dataset.Reader, error) {
	r := &reader{in: in}
	if err := r.next(); err != nil {
		return nil, err
	}
	return r, nil
}

// reader reads the files one after another; Index runs on across files,
// Line is the record's own file's, and File (for more than one file)
// names it as resolved: its path or URL.
type reader struct {
	in    *Input
	file  int // index into in.Files of the open reader
	rd    dataset.Reader
	src   dataset.Source
	index int64 // rows before the open file
	n     int64 // rows read from the open file
	cols  []dataset.Column
	err   error // sticky: the files' columns disagree
}

func (r *reader) next() error {
	if r.rd != nil {
		r.rd.Close()
		r.src.Close()
		r.rd, r.src = nil, nil
		r.file++
		r.index += r.n
		r.n = 0
	}
	if r.file >= len(r.in.Files) {
		return io.EOF
	}
	name := r.in.Files[r.file]
	rd, src, err := r.in.openFile(name)
	if err != nil {
		return err
	}
	r.rd, r.src = rd, src
	return nil
}

// Columns is the union of the files' columns in first-seen order; a
// column whose kind differs between files is an error (reported by Read
// as a fatal error, since Columns cannot fail).
func (r *reader) Columns() []dataset.Column {
	if r.cols == nil {
		if len(r.in.Files) == 1 {
			r.cols = r.rd.Columns()
		} else if r.cols, r.err = r.in.Columns(); r.err != nil {
			r.cols = []dataset.Column{}
		}
	}
	return slices.Clone(r.cols)
}

// Columns reads every file's schema and returns their union.
func (in *Input) Columns() ([]dataset.Column, error) {
	var cols []dataset.Column
	from := map[string]string{}
	for _, f := range in.Files {
		rd, src, err := in.openFile(f)
		if err != nil {
			return nil, err
		}
		fc := rd.Columns()
		rd.Close()
		src.Close()
		for _, c := range fc {
			i := slices.IndexFunc(cols, func(x dataset.Column) bool { return x.Name == c.Name })
			if i < 0 {
				cols = append(cols, c)
				from[c.Name] = f
				continue
			}
			if cols[i].Kind != c.Kind {
				return nil, fmt.Errorf("input field %q is %s in %s but %s in %s", c.Name, cols[i].Kind, from[c.Name], c.Kind, f)
			}
		}
	}
	return cols, nil
}

func (r *reader) Read() (dataset.Record, error) {
	for {
		if r.err != nil {
			return dataset.Record{}, r.err
		}
		if r.rd == nil {
			return dataset.Record{}, io.EOF
		}
		rec, err := r.rd.Read()
		if errors.Is(err, io.EOF) {
			if err := r.next(); err != nil {
				return dataset.Record{}, err
			}
			continue
		}
		if err != nil {
			return dataset.Record{}, err
		}
		r.n++
		rec.Index += r.index
		if len(r.in.Files) > 1 {
			rec.File = r.in.Files[r.file]
		}
		return rec, nil
	}
}

func (r *reader) Close() error {
	if r.rd == nil {
		return nil
	}
	err := r.rd.Close()
	r.src.Close()
	r.rd, r.src = nil, nil
	return err
}
