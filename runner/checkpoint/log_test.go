package checkpoint

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func text(s string) *string { return &s }

func writeRows(t *testing.T, path string, n int) {
	t.Helper()
	l, err := Create(path, Header{Fingerprint: map[string]string{"a": "1"}, Date: "25 Nov 2026"})
	require.NoError(t, err)
	require.NoError(t, l.StartSession(time.Unix(100, 0)))
	for i := range n {
		r := Row{Index: int64(n - 1 - i), ID: fmt.Sprint(i), Text: text(fmt.Sprintf("t%d", i)), PromptTokens: 3, CompletionTokens: 2}
		if i%5 == 4 {
			r.Text, r.Err = nil, "bad row"
		}
		require.NoError(t, l.Append(r))
		require.NoError(t, l.Sync())
	}
	require.NoError(t, l.Close())
}

func TestOpenReadsBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.ckpt")
	writeRows(t, path, 10)
	l, err := Open(path)
	require.NoError(t, err)
	defer l.Close()
	assert.Equal(t, "25 Nov 2026", l.Header().Date)
	assert.Equal(t, "1", l.Header().Fingerprint["a"])
	st := l.Stats()
	assert.Equal(t, int64(10), st.Done)
	assert.Equal(t, int64(2), st.Failed)
	assert.Equal(t, int64(30), st.PromptTokens)
	assert.Zero(t, l.TornBytes)

	require.NoError(t, l.Append(Row{Index: 3, Text: text("again")}), "a finished row is not stored twice")
	assert.Equal(t, int64(10), l.Stats().Done)

	x, err := l.Index()
	require.NoError(t, err)
	defer x.Close()
	for i := range int64(10) {
		r, ok, err := x.Get(i)
		require.NoError(t, err)
		require.True(t, ok, "row %d", i)
		assert.Equal(t, i, r.Index)
	}
	r, _, _ := x.Get(9)
	assert.Equal(t, "t0", *r.Text, "the first record of a row wins")
	_, ok, err := x.Get(10)
	require.NoError(t, err)
	assert.False(t, ok)
}

// TestTornTailAtEveryByte cuts the file at every length and checks Open
// keeps exactly the whole records before the cut and can append after it.
func TestTornTailAtEveryByte(t *testing.T) {
	dir := t.TempDir()
	full := filepath.Join(dir, "full.ckpt")
	writeRows(t, full, 6)
	data, err := os.ReadFile(full)
	require.NoError(t, err)

	// The offsets at which each whole record ends.
	var ends []int64
	{
		l, err := Open(full)
		require.NoError(t, err)
		require.NoError(t, l.Close())
		off := int64(len(magic))
		for off < int64(len(data)) {
			n := int64(data[off]) | int64(data[off+1])<<8 | int64(data[off+2])<<16 | int64(data[off+3])<<24
			off += 8 + n
			ends = append(ends, off)
		}
	}
	// ends[0] is the header, ends[1] the session, then one per row.
	for cut := 0; cut <= len(data); cut++ {
		p := filepath.Join(dir, fmt.Sprintf("cut%d.ckpt", cut))
		require.NoError(t, os.WriteFile(p, data[:cut], 0o644))
		l, err := Open(p)
		if int64(cut) < ends[0] {
			assert.ErrorIs(t, err, ErrNoCheckpoint, "cut %d: no whole header", cut)
			continue
		}
		require.NoError(t, err, "cut %d", cut)
		want := int64(0)
		for _, e := range ends[2:] {
			if e <= int64(cut) {
				want++
			}
		}
		assert.Equal(t, want, l.Stats().Done, "cut %d", cut)
		require.NoError(t, l.Append(Row{Index: 100, Text: text("after")}))
		require.NoError(t, l.Close())
		l, err = Open(p)
		require.NoError(t, err)
		assert.Equal(t, want+1, l.Stats().Done, "cut %d: appends after a truncated tail read back", cut)
		assert.Zero(t, l.TornBytes)
		l.Close()
	}
}

func TestCorruptRecordStopsTheScan(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.ckpt")
	writeRows(t, path, 4)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	data[len(data)-3] ^= 0xff // inside the last row's payload
	require.NoError(t, os.WriteFile(path, data, 0o644))
	l, err := Open(path)
	require.NoError(t, err)
	defer l.Close()
	assert.Equal(t, int64(3), l.Stats().Done)
	assert.Positive(t, l.TornBytes)
}

func TestNotACheckpoint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.ckpt")
	require.NoError(t, os.WriteFile(path, []byte("hello, this is not a checkpoint"), 0o644))
	_, err := Open(path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not a batchtrans checkpoint")
	_, err = Open(filepath.Join(t.TempDir(), "missing"))
	assert.ErrorIs(t, err, ErrNoCheckpoint)
}

func TestLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.lock")
	a, err := Acquire(path)
	require.NoError(t, err)
	_, err = Acquire(path)
	require.ErrorIs(t, err, ErrLocked)
	assert.Contains(t, err.Error(), fmt.Sprint(os.Getpid()))
	require.NoError(t, a.Release())
	b, err := Acquire(path)
	require.NoError(t, err, "a released lock is free")
	require.NoError(t, b.Release())
}

func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	p := filepath.Join(dir, "seed.ckpt")
	l, _ := Create(p, Header{Date: "x"})
	l.Append(Row{Index: 1, Text: text("a")})
	l.Close()
	seed, _ := os.ReadFile(p)
	f.Add(seed)
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "f.ckpt")
		os.WriteFile(p, data, 0o644)
		if l, err := Open(p); err == nil {
			if x, err := l.Index(); err == nil {
				x.Get(1)
				x.Close()
			}
			l.Close()
		}
	})
}

// TestFinishReasonKept: a row's finish reason survives a reopen and the
// index, and cut rows are counted apart from failed ones.
func TestFinishReasonKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.ckpt")
	l, err := Create(path, Header{Date: "25 Nov 2026"})
	require.NoError(t, err)
	require.NoError(t, l.Append(
		Row{Index: 0, Text: text("whole"), Finish: "stop"},
		Row{Index: 1, Text: text("half a"), Finish: FinishLength},
		Row{Index: 2, Err: "bad row"},
	))
	require.NoError(t, l.Close())

	l, err = Open(path)
	require.NoError(t, err)
	defer l.Close()
	st := l.Stats()
	assert.Equal(t, int64(3), st.Done)
	assert.Equal(t, int64(1), st.Failed)
	assert.Equal(t, int64(1), st.Cut)
	x, err := l.Index()
	require.NoError(t, err)
	defer x.Close()
	for i, want := range []string{"stop", FinishLength, ""} {
		r, ok, err := x.Get(int64(i))
		require.NoError(t, err)
		require.True(t, ok)
		assert.Equal(t, want, r.Finish, "row %d", i)
		assert.Equal(t, want == FinishLength, r.Cut(), "row %d", i)
	}
}

// TestOlderFormatRefused: a checkpoint made before finish reasons were
// recorded cannot give a fresh run's output, so Open asks for --restart.
func TestOlderFormatRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.ckpt")
	f, err := os.Create(path)
	require.NoError(t, err)
	l := &Log{path: path, f: f, w: bufio.NewWriter(f)}
	_, err = l.w.WriteString(magic)
	require.NoError(t, err)
	require.NoError(t, l.appendJSON('H', Header{Version: 1, Date: "25 Nov 2026"}))
	require.NoError(t, l.Close())

	_, err = Open(path)
	require.ErrorContains(t, err, "format version 1")
	assert.ErrorContains(t, err, "--restart")
}

// Index.Get reads the table a block of slots at a time and a record with
// its header at once: rows over several blocks, asked in order and out of
// it, unfinished rows between finished ones, and records longer than the
// first read all come back as written.
func TestIndexBlocksAndLongRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.ckpt")
	l, err := Create(path, Header{Date: "25 Nov 2026"})
	require.NoError(t, err)
	require.NoError(t, l.StartSession(time.Unix(100, 0)))
	const n = 3*slotsPerBlock + 7
	want := map[int64]string{}
	for i := int64(n - 1); i >= 0; i-- {
		if i%3 == 1 {
			continue // unfinished
		}
		s := fmt.Sprintf("t%d", i)
		if i%50 == 0 {
			s = strings.Repeat("long ", 2000) + s // past the 4 KiB first read
		}
		want[i] = s
		require.NoError(t, l.Append(Row{Index: i, Text: text(s)}))
	}
	x, err := l.Index()
	require.NoError(t, err)
	defer x.Close()
	order := make([]int64, 0, 2*n+2)
	for i := range int64(n + 2) {
		order = append(order, i)
	}
	for i := int64(n + 1); i >= 0; i -= 7 { // back and forth across blocks
		order = append(order, i)
	}
	for _, i := range order {
		r, ok, err := x.Get(i)
		require.NoError(t, err, "row %d", i)
		s, finished := want[i]
		require.Equal(t, finished, ok, "row %d", i)
		if ok {
			assert.Equal(t, i, r.Index)
			assert.Equal(t, s, *r.Text, "row %d", i)
		}
	}
}
