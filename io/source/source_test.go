package source_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/internal/s3test"
	"github.com/batchtrans/batchtrans/io/blobstore"
	"github.com/batchtrans/batchtrans/io/dataset"
	_ "github.com/batchtrans/batchtrans/io/formats"
	"github.com/batchtrans/batchtrans/io/internal/datatest"
	"github.com/batchtrans/batchtrans/io/source"
)

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	return p
}

func TestResolveSortsGlobsAndLists(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"part-2.csv", "part-10.csv", "part-1.csv", "other.csv", "sub/part-3.csv"} {
		write(t, dir, n, "text\nx\n")
	}
	j := func(n string) string { return filepath.Join(dir, n) }
	tests := []struct {
		name  string
		paths []string
		want  []string
		err   string
	}{
		{"one file", []string{j("other.csv")}, []string{j("other.csv")}, ""},
		{"glob sorted by name", []string{j("part-*.csv")}, []string{j("part-1.csv"), j("part-10.csv"), j("part-2.csv")}, ""},
		{"list sorted", []string{j("part-2.csv"), j("other.csv")}, []string{j("other.csv"), j("part-2.csv")}, ""},
		{"list of globs", []string{j("sub/*.csv"), j("part-1*.csv")}, []string{j("part-1.csv"), j("part-10.csv"), j("sub/part-3.csv")}, ""},
		{"glob matching nothing", []string{j("nope-*.csv")}, nil, "no file matches " + j("nope-*.csv")},
		{"file named twice", []string{j("part-1.csv"), j("part-[1].csv")}, nil, "named twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := source.Resolve(t.Context(), tt.paths, "csv", dataset.Options{})
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, in.Files)
		})
	}
}

func TestManyFilesReadAsOne(t *testing.T) {
	tests := []struct {
		name, format string
		files        map[string]string
		badFile      string
		badLine      int64
	}{
		{"jsonl", "jsonl", map[string]string{
			"a.jsonl": `{"id":1,"text":"a1"}` + "\n" + `{"id":2,"text":"a2"}` + "\n",
			"b.jsonl": `{"id":3,"text":"b1"}` + "\n" + `{"id":4,` + "\n" + `{"id":5,"text":"b3","x":true}` + "\n",
			"c.jsonl": `{"id":6,"text":"c1"}` + "\n",
		}, "b.jsonl", 2},
		{"csv", "csv", map[string]string{
			"a.csv": "id,text\n1,a1\n2,a2\n",
			"b.csv": "id,text\n3,b1\n4,\"unterminated\n",
			"c.csv": "id,text\n6,c1\n",
		}, "b.csv", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for n, body := range tt.files {
				write(t, dir, n, body)
			}
			in, err := source.Resolve(t.Context(), []string{filepath.Join(dir, "*."+tt.format)}, tt.format, dataset.Options{})
			require.NoError(t, err)
			rd, err := in.Open()
			require.NoError(t, err)
			defer rd.Close()
			recs := datatest.ReadAll(t, rd)
			var bad *dataset.Record
			for i := range recs {
				assert.Equal(t, int64(i), recs[i].Index, "row numbers run on across files")
				if recs[i].Err != nil {
					bad = &recs[i]
				}
			}
			require.NotNil(t, bad, "the bad row is a record with its error")
			assert.Equal(t, filepath.Join(dir, tt.badFile), bad.File)
			assert.Equal(t, tt.badLine, bad.Line, "the line is the file's own")
			n, err := in.Count(t.Context())
			require.NoError(t, err)
			assert.Equal(t, int64(len(recs)), n)
		})
	}
}

func TestDigestCoversEveryFile(t *testing.T) {
	dir := t.TempDir()
	a := write(t, dir, "a.jsonl", `{"text":"a"}`+"\n")
	write(t, dir, "b.jsonl", `{"text":"b"}`+"\n")
	digest := func() string {
		in, err := source.Resolve(t.Context(), []string{filepath.Join(dir, "*.jsonl")}, "jsonl", dataset.Options{})
		require.NoError(t, err)
		d, err := in.Digest()
		require.NoError(t, err)
		return d
	}
	d0 := digest()
	assert.True(t, strings.HasPrefix(d0, "2 files:"), d0)
	write(t, dir, "b.jsonl", `{"text":"B"}`+"\n")
	d1 := digest()
	assert.NotEqual(t, d0, d1, "a change to the second file changes the digest")
	write(t, dir, "c.jsonl", `{"text":"c"}`+"\n")
	assert.NotEqual(t, d1, digest(), "a new file changes the digest")
	require.NoError(t, os.Remove(a))
	assert.NotEqual(t, d1, digest())
}

func TestColumnKindsMustAgree(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.jsonl", `{"id":1,"text":"a"}`+"\n")
	write(t, dir, "b.jsonl", `{"id":"x","text":"b","more":1}`+"\n")
	in, err := source.Resolve(t.Context(), []string{filepath.Join(dir, "*.jsonl")}, "jsonl", dataset.Options{})
	require.NoError(t, err)
	_, err = in.Columns()
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"id"`)
	assert.Contains(t, err.Error(), "b.jsonl")
}

func TestObjectGlobOnS3(t *testing.T) {
	srv := s3test.Start(t, "bucket")
	for _, k := range []string{"data/part-2.jsonl", "data/part-1.jsonl", "data/x/part-9.jsonl", "other.jsonl"} {
		b, key, err := blobstore.Open(t.Context(), srv.URL(k))
		require.NoError(t, err)
		require.NoError(t, b.WriteAll(t.Context(), key, []byte(`{"text":"`+k+`"}`+"\n"), nil))
	}
	in, err := source.Resolve(t.Context(), []string{srv.URL("data/part-*.jsonl")}, "jsonl", dataset.Options{})
	require.NoError(t, err)
	assert.Equal(t, []string{srv.URL("data/part-1.jsonl"), srv.URL("data/part-2.jsonl")}, in.Files)
	rd, err := in.Open()
	require.NoError(t, err)
	recs := datatest.ReadAll(t, rd)
	rd.Close()
	require.Len(t, recs, 2)
	assert.Equal(t, "data/part-1.jsonl", recs[0].Fields[0].Value)
	assert.Equal(t, srv.URL("data/part-2.jsonl"), recs[1].File)

	_, err = source.Resolve(t.Context(), []string{srv.URL("data/none-*.jsonl")}, "jsonl", dataset.Options{})
	assert.ErrorIs(t, err, source.ErrNoMatch)
}
