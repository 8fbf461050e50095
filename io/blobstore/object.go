package blobstore

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"sync"

	"gocloud.dev/blob"
)

// Object is one object opened for reading: a fresh stream from its start
// whenever asked (Open), and reads at any offset (ReadAt) served by a few
// sequential range reads kept open, so a Parquet reader that walks several
// column chunks at once streams each of them instead of issuing a request
// per page. Nothing is copied whole into memory. It is safe for concurrent
// use.
type Object struct {
	ctx    context.Context
	bucket *blob.Bucket
	url    string
	key    string
	attrs  *blob.Attributes

	mu      sync.Mutex
	cursors []*cursor // most recently used last
}

// maxCursors bounds the range reads an Object keeps open.
const maxCursors = 8

type cursor struct {
	r   *blob.Reader
	off int64
}

// OpenObject looks an object up (its size and checksum) and returns it
// ready to read. A missing object or bucket is an error naming the URL.
func OpenObject(ctx context.Context, raw string) (*Object, error) {
	b, key, err := Open(ctx, raw)
	if err != nil {
		return nil, err
	}
	return NewObject(ctx, b, key, raw)
}

// NewObject is OpenObject for a key of an open bucket; name labels errors.
func NewObject(ctx context.Context, b *blob.Bucket, key, name string) (*Object, error) {
	a, err := b.Attributes(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("open %s: %s: %w", name, Cause(ctx, b, err), err)
	}
	return &Object{ctx: ctx, bucket: b, url: name, key: key, attrs: a}, nil
}

// Name is the object's URL.
func (o *Object) Name() string { return o.url }

// Size is the object's size in bytes.
func (o *Object) Size() int64 { return o.attrs.Size }

// Digest identifies the object's content without reading it: its size and
// the store's MD5 where it keeps one, else its ETag (S3, GCS and Azure
// change the ETag whenever the content changes).
func (o *Object) Digest() (string, error) {
	if len(o.attrs.MD5) > 0 {
		return fmt.Sprintf("%d:md5:%s", o.attrs.Size, hex.EncodeToString(o.attrs.MD5)), nil
	}
	if o.attrs.ETag != "" {
		return fmt.Sprintf("%d:etag:%s", o.attrs.Size, o.attrs.ETag), nil
	}
	return fmt.Sprintf("%d:mtime:%d", o.attrs.Size, o.attrs.ModTime.UnixNano()), nil
}

// Open starts a stream of the object from its start.
func (o *Object) Open() (io.ReadCloser, error) {
	r, err := o.bucket.NewReader(o.ctx, o.key, nil)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", o.url, err)
	}
	return r, nil
}

// ReadAt reads len(p) bytes at off.
func (o *Object) ReadAt(p []byte, off int64) (int, error) {
	if off >= o.attrs.Size {
		return 0, io.EOF
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	c, err := o.cursorAt(off)
	if err != nil {
		return 0, err
	}
	n, err := io.ReadFull(c.r, p)
	c.off += int64(n)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	if err != nil {
		c.r.Close() // at the end, or broken: not kept
		if err != io.EOF {
			err = fmt.Errorf("read %s at %d: %w", o.url, off, err)
		}
		return n, err
	}
	o.cursors = append(o.cursors, c) // most recently used
	return n, nil
}

// cursorAt takes the open range read positioned at off out of the list,
// or opens one.
func (o *Object) cursorAt(off int64) (*cursor, error) {
	for i, c := range o.cursors {
		if c.off == off {
			o.cursors = append(o.cursors[:i], o.cursors[i+1:]...)
			return c, nil
		}
	}
	if len(o.cursors) >= maxCursors {
		o.cursors[0].r.Close()
		o.cursors = o.cursors[1:]
	}
	r, err := o.bucket.NewRangeReader(o.ctx, o.key, off, -1, nil)
	if err != nil {
		return nil, fmt.Errorf("read %s at %d: %w", o.url, off, err)
	}
	return &cursor{r: r, off: off}, nil
}

// Close closes the open range reads.
func (o *Object) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, c := range o.cursors {
		c.r.Close()
	}
	o.cursors = nil
	return nil
}
