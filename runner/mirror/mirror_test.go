package mirror_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"

	"github.com/batchtrans/batchtrans/internal/s3test"
	"github.com/batchtrans/batchtrans/io/blobstore"
	"github.com/batchtrans/batchtrans/runner/checkpoint"
	"github.com/batchtrans/batchtrans/runner/mirror"
)

func appendRows(t *testing.T, l *checkpoint.Log, from, to int64) {
	t.Helper()
	for i := from; i < to; i++ {
		text := fmt.Sprint("t", i)
		require.NoError(t, l.Append(checkpoint.Row{Index: i, ID: fmt.Sprint(i), Text: &text}))
	}
	require.NoError(t, l.Sync())
}

// TestKilledBetweenPushes: a machine that dies after its last push loses
// the rows since then and no others; the next machine resumes from the
// segments, and doubles nothing.
func TestKilledBetweenPushes(t *testing.T) {
	srv := s3test.Start(t, "bucket")
	ctx := t.Context()
	url := srv.URL("job/out.ckpt")

	// Machine A.
	m, err := mirror.Open(ctx, url, filepath.Join(t.TempDir(), "a", "checkpoint"))
	require.NoError(t, err)
	n, err := m.Pull(ctx)
	require.NoError(t, err)
	assert.Zero(t, n, "no checkpoint yet")
	l, err := checkpoint.Create(m.Local(), checkpoint.Header{Date: "d", Created: time.Now()})
	require.NoError(t, err)
	appendRows(t, l, 0, 10)
	require.NoError(t, m.Push(ctx, l.SyncedSize()))
	appendRows(t, l, 10, 25)
	require.NoError(t, m.Push(ctx, l.SyncedSize()))
	appendRows(t, l, 25, 40) // never pushed: A dies here
	l.Close()

	// Machine B.
	b, err := mirror.Open(ctx, url, filepath.Join(t.TempDir(), "b", "checkpoint"))
	require.NoError(t, err)
	_, err = b.Pull(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, b.Segments)
	lb, err := checkpoint.Open(b.Local())
	require.NoError(t, err)
	assert.Equal(t, int64(25), lb.Stats().Done, "rows up to the last push survive; the rest are lost")
	appendRows(t, lb, 20, 40) // redoing 20-24 does not store them twice
	assert.Equal(t, int64(40), lb.Stats().Done)
	require.NoError(t, b.Push(ctx, lb.SyncedSize()))
	lb.Close()

	// Machine A again, late: its stale push at B's offset is refused.
	assert.ErrorIs(t, m.Push(ctx, 1<<20), mirror.ErrConflict)

	c, err := mirror.Open(ctx, url, filepath.Join(t.TempDir(), "c", "checkpoint"))
	require.NoError(t, err)
	_, err = c.Pull(ctx)
	require.NoError(t, err)
	_, st, err := checkpoint.Inspect(c.Local())
	require.NoError(t, err)
	assert.Equal(t, int64(40), st.Done)

	require.NoError(t, c.Reset(ctx))
	ok, err := c.Exists(ctx)
	require.NoError(t, err)
	assert.False(t, ok, "reset deletes every segment")
}

func TestPullRefusesAGap(t *testing.T) {
	srv := s3test.Start(t, "bucket")
	ctx := t.Context()
	url := srv.URL("gap.ckpt")
	m, err := mirror.Open(ctx, url, filepath.Join(t.TempDir(), "checkpoint"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(m.Local(), []byte("0123456789"), 0o644))
	require.NoError(t, m.Push(ctx, 4))
	require.NoError(t, m.Push(ctx, 10))
	// Lose the first segment behind the mirror's back.
	b, _, err := blobstore.Open(ctx, url)
	require.NoError(t, err)
	require.NoError(t, b.Delete(ctx, "gap.ckpt/seg-0000000000000000"))
	m2, err := mirror.Open(ctx, url, filepath.Join(t.TempDir(), "m2"))
	require.NoError(t, err)
	_, err = m2.Pull(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "does not follow")
}

// TestManySegmentsFoldIntoABase: a pull that finds many segments folds
// them into one base; the log read back is the same bytes before and
// after, and pushes go on from its end.
func TestManySegmentsFoldIntoABase(t *testing.T) {
	srv := s3test.Start(t, "bucket")
	ctx := t.Context()
	url := srv.URL("many.ckpt")
	m, err := mirror.Open(ctx, url, filepath.Join(t.TempDir(), "a", "checkpoint"))
	require.NoError(t, err)
	_, err = m.Pull(ctx)
	require.NoError(t, err)
	l, err := checkpoint.Create(m.Local(), checkpoint.Header{Date: "d", Created: time.Now()})
	require.NoError(t, err)
	for i := int64(0); i < 50; i++ {
		appendRows(t, l, i*3, i*3+3)
		require.NoError(t, m.Push(ctx, l.SyncedSize()))
	}
	l.Close()
	want, err := os.ReadFile(m.Local())
	require.NoError(t, err)

	objects := func() []string {
		b, key, err := blobstore.Open(ctx, url)
		require.NoError(t, err)
		var keys []string
		it := b.List(&blob.ListOptions{Prefix: key + "/"})
		for {
			o, err := it.Next(ctx)
			if err == io.EOF {
				return keys
			}
			require.NoError(t, err)
			keys = append(keys, strings.TrimPrefix(o.Key, key+"/"))
		}
	}
	require.Len(t, objects(), 50)

	b, err := mirror.Open(ctx, url, filepath.Join(t.TempDir(), "b", "checkpoint"))
	require.NoError(t, err)
	n, err := b.Pull(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(len(want)), n)
	got, err := os.ReadFile(b.Local())
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.Equal(t, []string{fmt.Sprintf("base-%016x", len(want))}, objects(), "the segments are folded into one base")

	lb, err := checkpoint.Open(b.Local())
	require.NoError(t, err)
	appendRows(t, lb, 150, 160)
	require.NoError(t, b.Push(ctx, lb.SyncedSize()))
	lb.Close()
	want, err = os.ReadFile(b.Local())
	require.NoError(t, err)
	var streamed bytes.Buffer
	require.NoError(t, b.Stream(ctx, &streamed))
	assert.Equal(t, want, streamed.Bytes(), "base then segments make the log")
	_, st, err := checkpoint.Inspect(b.Local())
	require.NoError(t, err)
	assert.Equal(t, int64(160), st.Done)
	require.NoError(t, b.Reset(ctx))
	assert.Empty(t, objects())
}
