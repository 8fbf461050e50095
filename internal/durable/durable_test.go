package durable

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFileAppearsWholeOnCommit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out[1].jsonl")
	stale := filepath.Join(dir, ".out[1].jsonl.tmp-123")
	require.NoError(t, os.WriteFile(stale, []byte("left by a killed run"), 0o644))
	require.NoError(t, os.WriteFile(path, []byte("old"), 0o644))

	f, err := Create(path)
	require.NoError(t, err)
	_, err = os.Stat(stale)
	assert.True(t, os.IsNotExist(err), "a killed writer's temporary file is removed")
	var points []string
	f.Hook = func(p string) {
		points = append(points, p)
		if p == "before-rename" {
			old, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, "old", string(old), "the old file stays until the rename")
		}
	}
	_, err = f.Writer().Write([]byte("new"))
	require.NoError(t, err)
	require.NoError(t, f.Commit())
	f.Abort() // after Commit, a deferred Abort changes nothing
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "new", string(got))
	assert.Equal(t, []string{"before-rename", "after-rename"}, points)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "nothing but the file is left")
}

func TestAbortLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	f, err := Create(filepath.Join(dir, "out.jsonl"))
	require.NoError(t, err)
	_, err = f.Writer().Write([]byte("half"))
	require.NoError(t, err)
	f.Abort()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries)
}
