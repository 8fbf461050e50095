package progress

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLinesWhenNotATerminal(t *testing.T) {
	var buf safeBuffer
	c := NewCounters()
	c.Total.Store(100)
	c.Resumed.Store(10)
	c.Good.Store(20)
	c.Failed.Store(2)
	c.Cut.Store(1)
	c.CompletionTokens.Store(440)
	r := Start(c, Options{Log: slog.New(slog.NewJSONHandler(&buf, nil)), Interval: 10 * time.Millisecond})
	buf.waitFor(t, "\n")
	r.Stop()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.NotEmpty(t, lines)
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &m))
	assert.Equal(t, "progress", m["msg"])
	assert.Equal(t, float64(32), m["done"])
	assert.Equal(t, float64(100), m["total"])
	assert.Equal(t, float64(2), m["failed"])
	assert.Equal(t, float64(1), m["cut"])
	assert.NotEqual(t, "unknown", m["eta"])
}

func TestBarOnATerminal(t *testing.T) {
	var buf safeBuffer
	c := NewCounters()
	c.Total.Store(50)
	c.Good.Store(25)
	r := Start(c, Options{Bar: true, Out: &buf, Interval: 10 * time.Millisecond})
	buf.waitFor(t, "25/50")
	r.Stop()
}

func TestSnapshotETA(t *testing.T) {
	s := Snapshot{Total: 100, Resumed: 50, Good: 10, Elapsed: 10 * time.Second}
	assert.Equal(t, 40*time.Second, s.ETA())
	assert.Equal(t, time.Duration(-1), Snapshot{Total: -1, Good: 3, Elapsed: time.Second}.ETA())
}

// safeBuffer is a writer the reporter's goroutine may write to while the
// test reads it; waitFor blocks until a write makes it contain a string.
type safeBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wrote chan struct{} // a token after each write
}

func (b *safeBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.wrote == nil {
		b.wrote = make(chan struct{}, 1)
	}
	select {
	case b.wrote <- struct{}{}:
	default:
	}
	return b.buf.Write(p)
}

func (b *safeBuffer) waitFor(t *testing.T, s string) {
	t.Helper()
	b.mu.Lock()
	if b.wrote == nil {
		b.wrote = make(chan struct{}, 1)
	}
	wrote := b.wrote
	b.mu.Unlock()
	deadline := time.After(10 * time.Second)
	for !strings.Contains(b.String(), s) {
		select {
		case <-wrote:
		case <-deadline:
			require.FailNow(t, "timed out", "waiting for %q in %q", s, b.String())
		}
	}
}

func (b *safeBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
