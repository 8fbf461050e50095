package blobstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/azureblob" // azblob://
	"gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/gcsblob" // gs://
	_ "gocloud.dev/blob/memblob" // mem://
	_ "gocloud.dev/blob/s3blob"  // s3://
	"gocloud.dev/gcerrors"
)

// schemes are the URL schemes that name object storage.
var schemes = []string{"s3", "gs", "azblob", "file", "mem"}

// IsURL reports whether p is an object-storage URL rather than a local path.
func IsURL(p string) bool {
	scheme, _, ok := strings.Cut(p, "://")
	if !ok {
		return false
	}
	for _, s := range schemes {
		if scheme == s {
			return true
		}
	}
	return false
}

// Loc is an object's place: the bucket's URL (scheme, bucket and query
// parameters) and the key inside it.
type Loc struct {
	Bucket string
	Key    string
}

// Parse splits an object URL into its bucket URL and key:
// s3://b/dir/x.jsonl?region=r is bucket s3://b?region=r, key dir/x.jsonl.
// A file:// URL's bucket is the file system's root.
func Parse(raw string) (Loc, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Loc{}, fmt.Errorf("parse %s: %w", raw, err)
	}
	if !IsURL(raw) {
		return Loc{}, fmt.Errorf("%s is not an object-storage URL (want one of %s://)", raw, strings.Join(schemes, "://, "))
	}
	key := strings.TrimPrefix(u.Path, "/")
	b := url.URL{Scheme: u.Scheme, Host: u.Host, RawQuery: u.RawQuery}
	if u.Scheme == "file" {
		b.Path = "/"
	}
	return Loc{Bucket: b.String(), Key: key}, nil
}

// String is the object's URL.
func (l Loc) String() string {
	u, err := url.Parse(l.Bucket)
	if err != nil {
		return l.Bucket + "/" + l.Key
	}
	u.Path = "/" + l.Key
	return u.String()
}

// WithSuffix appends s to a local path, or to an object URL's key (before
// its query): WithSuffix("s3://b/o.jsonl?region=r", ".ckpt") is
// "s3://b/o.jsonl.ckpt?region=r".
func WithSuffix(p, s string) string {
	if !IsURL(p) {
		return p + s
	}
	l, err := Parse(p)
	if err != nil {
		return p + s
	}
	l.Key += s
	return l.String()
}

// Base is the last element of a local path or of an object URL's key.
func Base(p string) string {
	if !IsURL(p) {
		return filepath.Base(p)
	}
	l, err := Parse(p)
	if err != nil {
		return p
	}
	return path.Base(l.Key)
}

var (
	bucketsMu sync.Mutex
	buckets   = map[string]*blob.Bucket{}
)

// OpenBucket opens (once per process) the bucket at a bucket URL.
func OpenBucket(ctx context.Context, bucketURL string) (*blob.Bucket, error) {
	bucketsMu.Lock()
	defer bucketsMu.Unlock()
	if b, ok := buckets[bucketURL]; ok {
		return b, nil
	}
	b, err := blob.OpenBucket(ctx, bucketURL)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", bucketURL, err)
	}
	buckets[bucketURL] = b
	return b, nil
}

// Open opens the bucket of an object URL and returns it with the key.
func Open(ctx context.Context, raw string) (*blob.Bucket, string, error) {
	l, err := Parse(raw)
	if err != nil {
		return nil, "", err
	}
	b, err := OpenBucket(ctx, l.Bucket)
	if err != nil {
		return nil, "", err
	}
	return b, l.Key, nil
}

// OpenDir opens a folder as a bucket: for a local path, the folder itself
// (created if missing; objects are written to a temporary file beside
// their final name and renamed into place), which the caller closes; for
// an object URL, its bucket under the URL's key as a prefix ("KEY/"),
// shared and kept open like OpenBucket's.
func OpenDir(ctx context.Context, dir string) (*blob.Bucket, error) {
	if !IsURL(dir) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create folder: %w", err)
		}
		b, err := fileblob.OpenBucket(dir, &fileblob.Options{NoTempDir: true, Metadata: fileblob.MetadataDontWrite})
		if err != nil {
			return nil, fmt.Errorf("open folder %s: %w", dir, err)
		}
		return b, nil
	}
	l, err := Parse(dir)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(l.Bucket)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", dir, err)
	}
	q := u.Query()
	q.Set("prefix", strings.TrimSuffix(l.Key, "/")+"/")
	u.RawQuery = q.Encode()
	return OpenBucket(ctx, u.String())
}

// IsNotFound reports whether err says an object or bucket does not exist.
func IsNotFound(err error) bool {
	return gcerrors.Code(err) == gcerrors.NotFound || errors.Is(err, os.ErrNotExist)
}

// Cause names, for a person, why a request to bucket b failed: no such
// bucket, no such object, no credentials, access denied, or the store
// unreachable.
func Cause(ctx context.Context, b *blob.Bucket, err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "get credentials") || strings.Contains(msg, "could not find default credentials") ||
		strings.Contains(msg, "DefaultAzureCredential"):
		return "no credentials found (AWS: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile or a role; GCS: application default credentials; Azure: AZURE_STORAGE_ACCOUNT with a key, SAS token or identity)"
	case gcerrors.Code(err) == gcerrors.PermissionDenied:
		return "access denied"
	case gcerrors.Code(err) == gcerrors.NotFound:
		if ok, aerr := b.IsAccessible(ctx); aerr == nil && !ok {
			return "the bucket does not exist"
		}
		return "no such object"
	case strings.Contains(msg, "connection refused") || strings.Contains(msg, "exceeded maximum number of attempts") ||
		strings.Contains(msg, "no such host") || strings.Contains(msg, "EOF"):
		return "the store did not answer"
	}
	return "request failed"
}
