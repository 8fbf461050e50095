package blobstore_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/internal/s3test"
	"github.com/batchtrans/batchtrans/io/blobstore"
)

func TestURLs(t *testing.T) {
	tests := []struct {
		name, in       string
		isURL          bool
		suffixed, base string
		bucket, key    string
	}{
		{"local path", "/data/out.jsonl", false, "/data/out.jsonl.ckpt", "out.jsonl", "", ""},
		{"relative path with colon", "a:b/x.csv", false, "a:b/x.csv.ckpt", "x.csv", "", ""},
		{"s3 with query", "s3://b/dir/out.jsonl?region=eu-west-1", true, "s3://b/dir/out.jsonl.ckpt?region=eu-west-1", "out.jsonl", "s3://b?region=eu-west-1", "dir/out.jsonl"},
		{"gs", "gs://b/x.parquet", true, "gs://b/x.parquet.ckpt", "x.parquet", "gs://b", "x.parquet"},
		{"azblob", "azblob://c/k", true, "azblob://c/k.ckpt", "k", "azblob://c", "k"},
		{"file", "file:///tmp/d/x.csv", true, "file:///tmp/d/x.csv.ckpt", "x.csv", "file:///", "tmp/d/x.csv"},
		{"unknown scheme is a path", "http://h/x", false, "http://h/x.ckpt", "x", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.isURL, blobstore.IsURL(tt.in))
			assert.Equal(t, tt.suffixed, blobstore.WithSuffix(tt.in, ".ckpt"))
			assert.Equal(t, tt.base, blobstore.Base(tt.in))
			if !tt.isURL {
				return
			}
			l, err := blobstore.Parse(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.bucket, l.Bucket)
			assert.Equal(t, tt.key, l.Key)
			assert.Equal(t, tt.in, l.String())
		})
	}
}

// stores are the same code on each kind of store: a folder through
// file://, memory, and a real S3-compatible server over HTTP.
func stores(t *testing.T) map[string]func(key string) string {
	dir := t.TempDir()
	srv := s3test.Start(t, "bucket")
	return map[string]func(string) string{
		"file": func(k string) string { return "file://" + filepath.ToSlash(filepath.Join(dir, k)) },
		"mem":  func(k string) string { return "mem://" + strings.ReplaceAll(t.Name(), "/", "-") + "/" + k },
		"s3":   srv.URL,
	}
}

func put(t *testing.T, url string, data []byte) {
	t.Helper()
	b, key, err := blobstore.Open(t.Context(), url)
	require.NoError(t, err)
	require.NoError(t, b.WriteAll(t.Context(), key, data, nil))
}

func TestObjectReads(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<12) // 64 KiB
	for name, url := range stores(t) {
		t.Run(name, func(t *testing.T) {
			u := url("dir/obj.bin")
			put(t, u, data)
			o, err := blobstore.OpenObject(t.Context(), u)
			require.NoError(t, err)
			defer o.Close()
			assert.Equal(t, int64(len(data)), o.Size())
			rc, err := o.Open()
			require.NoError(t, err)
			all, err := io.ReadAll(rc)
			rc.Close()
			require.NoError(t, err)
			assert.Equal(t, data, all)

			// Interleaved sequential reads at several offsets, as a Parquet
			// reader walking column chunks makes them.
			offs := []int64{0, 30000, 60000}
			for step := 0; step < 8; step++ {
				for _, o0 := range offs {
					off := o0 + int64(step)*100
					p := make([]byte, 100)
					n, err := o.ReadAt(p, off)
					require.NoError(t, err)
					assert.Equal(t, data[off:off+int64(n)], p[:n])
				}
			}
			p := make([]byte, 10)
			n, err := o.ReadAt(p, int64(len(data))-4)
			assert.ErrorIs(t, err, io.EOF)
			assert.Equal(t, 4, n)

			d, err := o.Digest()
			require.NoError(t, err)
			put(t, u, append(data, 'x'))
			o2, err := blobstore.OpenObject(t.Context(), u)
			require.NoError(t, err)
			d2, err := o2.Digest()
			require.NoError(t, err)
			assert.NotEqual(t, d, d2, "a changed object has another digest")
		})
	}
}

func TestMissingObjectAndBucket(t *testing.T) {
	srv := s3test.Start(t, "bucket")
	tests := []struct {
		name, url string
	}{
		{"missing object", srv.URL("nope.jsonl")},
		{"missing bucket", strings.Replace(srv.URL("x.jsonl"), "s3://"+srv.Bucket+"/", "s3://nobucket/", 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := blobstore.OpenObject(t.Context(), tt.url)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.url)
			assert.True(t, blobstore.IsNotFound(err), "%v", err)
		})
	}
}

func TestOpenDirLocalAndPrefix(t *testing.T) {
	ctx := context.Background()
	local := filepath.Join(t.TempDir(), "a", "b")
	b, err := blobstore.OpenDir(ctx, local)
	require.NoError(t, err)
	require.NoError(t, b.WriteAll(ctx, "x.part", []byte("hi"), nil))
	require.NoError(t, b.Close())
	got, err := os.ReadFile(filepath.Join(local, "x.part"))
	require.NoError(t, err)
	assert.Equal(t, "hi", string(got))
	entries, err := os.ReadDir(local)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no attribute side files")

	srv := s3test.Start(t, "bucket")
	d, err := blobstore.OpenDir(ctx, srv.URL("job/out.ckpt.shards"))
	require.NoError(t, err)
	require.NoError(t, d.WriteAll(ctx, "plan.json", []byte("{}"), nil))
	bk, _, err := blobstore.Open(ctx, srv.URL("x"))
	require.NoError(t, err)
	ok, err := bk.Exists(ctx, "job/out.ckpt.shards/plan.json")
	require.NoError(t, err)
	assert.True(t, ok)
}

// TestEndpointFromEnvironment: the AWS SDK's AWS_ENDPOINT_URL_S3 points
// s3:// URLs at an S3-compatible store without an endpoint parameter.
func TestEndpointFromEnvironment(t *testing.T) {
	srv := s3test.Start(t, "bucket")
	put(t, srv.URL("env/x.txt"), []byte("hello"))
	t.Setenv("AWS_ENDPOINT_URL_S3", srv.Endpoint)
	o, err := blobstore.OpenObject(t.Context(), "s3://"+srv.Bucket+"/env/x.txt?use_path_style=true&response_checksum_validation=when_required")
	require.NoError(t, err)
	defer o.Close()
	assert.Equal(t, int64(5), o.Size())
}
