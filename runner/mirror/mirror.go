// Package mirror keeps a checkpoint in object storage, which has no
// durable append: the run appends to a local copy as usual, and Push
// uploads the bytes synced since the last push as one sealed segment
// object, named by its byte offset (seg-0000000000001a2f). At start Pull
// downloads the segments in order into the local copy, so a run resumes
// on any machine from the last push; when they have become many, it folds
// them into one base object (base-END, the log's first END bytes) and
// deletes them, so that a long shard does not restart by reading
// thousands of objects. A machine that dies loses the rows
// finished since its last push (checkpoint.sync_every) and never doubles
// one: a segment ends on a record boundary, and the segments tile the log
// exactly, so the resumed log is a prefix of the lost one.
//
// Segments are written only if absent where the store can tell, so a
// second run writing the same checkpoint at the same offset is refused
// rather than interleaved. It imports io/blobstore; nothing of the runner.
package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/batchtrans/batchtrans/io/blobstore"
)

// ErrConflict: another run wrote a segment this one meant to write.
var ErrConflict = errors.New("another run is writing this checkpoint")

// Object names: a segment is named by the offset of its first byte in
// the log, a base (the log's first bytes, folded from segments) by its
// end.
const (
	segPrefix  = "seg-"
	basePrefix = "base-"
)

// Mirror is one object-storage checkpoint and its local copy. Push is
// safe to call from one goroutine at a time while the log is appended by
// another (it reads only bytes the log has synced).
type Mirror struct {
	url   string
	b     *blob.Bucket // the checkpoint URL as a prefix
	local string

	mu       sync.Mutex
	uploaded int64
	// Segments counts the segments in the store.
	Segments int
}

// LocalPath is where the local copy of the checkpoint at url lives: a
// file in the system's temporary folder (TMPDIR) named after the URL.
func LocalPath(url string) string {
	h := sha256.Sum256([]byte(url))
	return filepath.Join(os.TempDir(), "batchtrans-ckpt-"+hex.EncodeToString(h[:8]), "checkpoint")
}

// Open opens the mirror of the checkpoint at url with its local copy at
// local (its folder is created). Nothing is transferred yet.
func Open(ctx context.Context, url, local string) (*Mirror, error) {
	b, err := blobstore.OpenDir(ctx, url)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
		return nil, fmt.Errorf("create folder for the checkpoint's local copy: %w", err)
	}
	return &Mirror{url: url, b: b, local: local}, nil
}

// segURL is a segment's URL, for messages.
func (m *Mirror) segURL(key string) string { return blobstore.WithSuffix(m.url, "/"+key) }

// Local is the local copy's path.
func (m *Mirror) Local() string { return m.local }

// URL is the checkpoint's URL.
func (m *Mirror) URL() string { return m.url }

type segment struct {
	key  string
	off  int64 // a segment's first byte; a base's end
	size int64
}

// list lists the stored bases and segments, each sorted by offset
// (listing returns keys sorted, and fixed-width hex offsets sort
// numerically).
func (m *Mirror) list(ctx context.Context) (bases, segs []segment, err error) {
	it := m.b.List(nil)
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return bases, segs, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("list checkpoint %s: %w", m.url, err)
		}
		for _, k := range []struct {
			prefix string
			to     *[]segment
		}{{segPrefix, &segs}, {basePrefix, &bases}} {
			if rest, ok := strings.CutPrefix(obj.Key, k.prefix); ok {
				if off, err := strconv.ParseInt(rest, 16, 64); err == nil && off >= 0 {
					*k.to = append(*k.to, segment{key: obj.Key, off: off, size: obj.Size})
				}
			}
		}
	}
}

// pieces are the objects whose concatenation is the stored log: the
// largest base, then the segments from its end on, which must tile the
// log exactly. folded are the objects the base makes redundant.
func (m *Mirror) pieces(ctx context.Context) (pieces, folded []segment, err error) {
	bases, segs, err := m.list(ctx)
	if err != nil {
		return nil, nil, err
	}
	var size int64
	if n := len(bases); n > 0 {
		pieces, folded, size = bases[n-1:], bases[:n-1], bases[n-1].off
	}
	for _, s := range segs {
		switch {
		case s.off < size:
			folded = append(folded, s)
		case s.off == size:
			pieces = append(pieces, s)
			size += s.size
		default:
			return nil, nil, fmt.Errorf("checkpoint %s: segment %s does not follow the %d bytes before it; the checkpoint is damaged (rerun with --restart)", m.url, s.key, size)
		}
	}
	return pieces, folded, nil
}

// Pull replaces the local copy with the stored log. It returns the bytes
// pulled; 0 means no checkpoint yet. When the log has come to many
// segments, Pull folds them into one base object (uploaded, then the
// segments deleted), so a long shard's next start reads a few objects.
func (m *Mirror) Pull(ctx context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	pieces, folded, err := m.pieces(ctx)
	if err != nil {
		return 0, err
	}
	f, err := os.OpenFile(m.local, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, fmt.Errorf("create the checkpoint's local copy: %w", err)
	}
	defer f.Close()
	size, err := m.download(ctx, pieces, f)
	if err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("sync the checkpoint's local copy: %w", err)
	}
	m.uploaded, m.Segments = size, len(pieces)
	if len(pieces) > compactAfter || len(folded) > 0 {
		m.compact(ctx, f, size, pieces, folded)
	}
	return size, nil
}

// compactAfter is how many stored pieces Pull folds into one base.
const compactAfter = 32

// compact uploads the log's first size bytes as a base, then deletes what
// it makes redundant. It is best effort: a failure leaves the segments,
// which still make the same log.
func (m *Mirror) compact(ctx context.Context, f *os.File, size int64, pieces, folded []segment) {
	if len(pieces) > compactAfter {
		key := fmt.Sprintf("%s%016x", basePrefix, size)
		err := m.b.Upload(ctx, key, io.NewSectionReader(f, 0, size), &blob.WriterOptions{IfNotExist: true, ContentType: "application/octet-stream"})
		if c := gcerrors.Code(err); c != gcerrors.OK && c != gcerrors.FailedPrecondition && c != gcerrors.AlreadyExists {
			return
		}
		folded = append(folded, pieces...)
		m.Segments = 1
	}
	for _, s := range folded {
		if s.key != fmt.Sprintf("%s%016x", basePrefix, size) {
			m.b.Delete(ctx, s.key)
		}
	}
}

func (m *Mirror) download(ctx context.Context, pieces []segment, w io.Writer) (int64, error) {
	var size int64
	for _, s := range pieces {
		r, err := m.b.NewReader(ctx, s.key, nil)
		if err != nil {
			return 0, fmt.Errorf("read checkpoint %s: %w", m.segURL(s.key), err)
		}
		n, err := io.Copy(w, r)
		r.Close()
		if err != nil {
			return 0, fmt.Errorf("read checkpoint %s: %w", m.segURL(s.key), err)
		}
		size += n
	}
	return size, nil
}

// Push uploads the local copy's bytes from the last push up to upto (the
// log's synced size) as one segment. Nothing to push is not an error.
func (m *Mirror) Push(ctx context.Context, upto int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if upto <= m.uploaded {
		return nil
	}
	f, err := os.Open(m.local)
	if err != nil {
		return fmt.Errorf("read the checkpoint's local copy: %w", err)
	}
	defer f.Close()
	key := fmt.Sprintf("%s%016x", segPrefix, m.uploaded)
	err = m.b.Upload(ctx, key, io.NewSectionReader(f, m.uploaded, upto-m.uploaded), &blob.WriterOptions{IfNotExist: true, ContentType: "application/octet-stream"})
	switch gcerrors.Code(err) {
	case gcerrors.OK:
	case gcerrors.FailedPrecondition, gcerrors.AlreadyExists:
		return fmt.Errorf("upload checkpoint %s: %w", m.segURL(key), ErrConflict)
	default:
		return fmt.Errorf("upload checkpoint %s: %w", m.segURL(key), err)
	}
	m.uploaded = upto
	m.Segments++
	return nil
}

// Uploaded is how many bytes of the log the store holds.
func (m *Mirror) Uploaded() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.uploaded
}

// Reset deletes every segment and base (a run started over with
// --restart).
func (m *Mirror) Reset(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	bases, segs, err := m.list(ctx)
	if err != nil {
		return err
	}
	for _, s := range append(bases, segs...) {
		if err := m.b.Delete(ctx, s.key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			return fmt.Errorf("delete checkpoint %s: %w", m.segURL(s.key), err)
		}
	}
	m.uploaded, m.Segments = 0, 0
	return nil
}

// Exists reports whether the store holds any of the log.
func (m *Mirror) Exists(ctx context.Context) (bool, error) {
	bases, segs, err := m.list(ctx)
	return len(bases)+len(segs) > 0, err
}

// Stream streams the stored log to w without touching the local copy:
// for status.
func (m *Mirror) Stream(ctx context.Context, w io.Writer) error {
	pieces, _, err := m.pieces(ctx)
	if err != nil {
		return err
	}
	_, err = m.download(ctx, pieces, w)
	return err
}
