package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/batchtrans/batchtrans/engine/backend"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/engine/llama"
)

// prefixLetterCodec is letterCodec that also reports the shared prefix:
// BOS and every message but the last.
type prefixLetterCodec struct{ letterCodec }

func (c prefixLetterCodec) promptPrefix(req Request) ([]int, int, error) {
	ids, err := c.promptIDs(req)
	last := len(req.Messages[len(req.Messages)-1].Content)
	return ids, len(ids) - last, err
}

func prefixModel(t *testing.T, maxBatch, stepTokens int, cache bool) *Model {
	m, err := newModel(testConfig(), llama.NewCPU(testNet(t, testConfig(), 42)), prefixLetterCodec{}, maxBatch, stepTokens)
	require.NoError(t, err)
	if !cache {
		m.sched.cache = nil
	}
	return m
}

func randText(rng *rand.Rand, lo, hi int) string {
	b := make([]byte, lo+rng.IntN(hi-lo+1))
	for i := range b {
		b[i] = byte('a' + rng.IntN(26))
	}
	return string(b)
}

// sharedPrefixRequests builds n requests over a few system prompts with
// row-specific user texts, greedy and sampled, some with an assistant turn.
func sharedPrefixRequests(n int, systems []string, seed uint64) []Request {
	rng := rand.New(rand.NewPCG(seed, 9))
	reqs := make([]Request, n)
	for i := range reqs {
		msgs := []Message{{Role: "system", Content: systems[rng.IntN(len(systems))]}}
		if i%5 == 4 {
			msgs = append(msgs, Message{Role: "user", Content: "ab"}, Message{Role: "assistant", Content: "cd"})
		}
		msgs = append(msgs, Message{Role: "user", Content: randText(rng, 1, 12)})
		reqs[i] = Request{Messages: msgs, MaxNewTokens: 1 + rng.IntN(20)}
		if i%3 == 1 {
			reqs[i].Temperature, reqs[i].TopP, reqs[i].Seed = 1.1, 0.95, uint64(i)
		}
	}
	return reqs
}

func generateAll(t *testing.T, m *Model, reqs []Request) []Result {
	t.Helper()
	got := make([]Result, len(reqs))
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Go(func() { got[i], errs[i] = m.Generate(t.Context(), req) })
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "request %d", i)
	}
	return got
}

func promptTokens(rs []Result) int64 {
	var n int64
	for _, r := range rs {
		n += int64(len(r.PromptIDs))
	}
	return n
}

// The KV cache a state gets from a prefix snapshot continues exactly as a
// state that ran the whole prompt itself: logits are bitwise equal.
func TestPrefixKVExact(t *testing.T) {
	net := testNet(t, testConfig(), 42)
	rng := rand.New(rand.NewPCG(1, 2))
	prompt := make([]int, 40)
	for i := range prompt {
		prompt[i] = rng.IntN(testVocab)
	}
	var ws llama.Workspace
	whole := net.NewState()
	require.NoError(t, net.Forward(&ws, []llama.Step{{State: whole, Tokens: prompt, Out: backend.Logits}}))
	for _, cut := range []int{1, 7, 25, 39} {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			src := net.NewState()
			require.NoError(t, net.Forward(&ws, []llama.Step{{State: src, Tokens: prompt[:cut]}}))
			p, err := src.Snapshot(cut)
			require.NoError(t, err)
			assert.Equal(t, cut, p.Len())
			// Running src on must not touch the snapshot.
			require.NoError(t, net.Forward(&ws, []llama.Step{{State: src, Tokens: []int{5, 6, 7}}}))
			dst := net.NewState()
			// A reused state: its old contents must not leak in.
			require.NoError(t, net.Forward(&ws, []llama.Step{{State: dst, Tokens: []int{9, 9, 9}}}))
			dst.Reset()
			require.NoError(t, dst.LoadPrefix(p))
			assert.Equal(t, cut, dst.Pos())
			require.NoError(t, net.Forward(&ws, []llama.Step{{State: dst, Tokens: prompt[cut:], Out: backend.Logits}}))
			for i := range whole.Logits() {
				require.Equal(t, math.Float32bits(whole.Logits()[i]), math.Float32bits(dst.Logits()[i]), "logit %d", i)
			}
		})
	}
	t.Run("errors", func(t *testing.T) {
		s := net.NewState()
		_, err := s.Snapshot(1)
		require.Error(t, err)
		require.NoError(t, net.Forward(&ws, []llama.Step{{State: s, Tokens: prompt[:3]}}))
		p, err := s.Snapshot(3)
		require.NoError(t, err)
		require.Error(t, s.LoadPrefix(p), "state not empty")
		other := testNet(t, testConfig(), 43)
		require.Error(t, other.NewState().LoadPrefix(p), "another model")
	})
}

// Many concurrent requests over a few system prompts give exactly the same
// results with the prefix cache as without, and the cache serves most of
// their prefixes.
func TestPrefixCacheSameResults(t *testing.T) {
	systems := []string{"you translate text", "you are a helpful assistant who answers", "be brief"}
	reqs := sharedPrefixRequests(60, systems, 5)
	for _, shape := range []struct{ batch, step int }{{5, 13}, {8, 64}, {1, 8}} {
		t.Run(fmt.Sprintf("batch%d-step%d", shape.batch, shape.step), func(t *testing.T) {
			off := prefixModel(t, shape.batch, shape.step, false)
			on := prefixModel(t, shape.batch, shape.step, true)
			want := generateAll(t, off, reqs)
			got := generateAll(t, on, reqs)
			require.Equal(t, want, got)

			offStats, onStats := off.PrefillStats(), on.PrefillStats()
			assert.Equal(t, promptTokens(want), offStats.Prefilled)
			assert.Zero(t, offStats.Reused)
			assert.Equal(t, promptTokens(want), onStats.Prefilled+onStats.Reused)
			assert.Greater(t, onStats.Reused, onStats.Prefilled/2, "most prefix tokens come from the cache")
			// One entry per distinct prefix: the three systems alone and
			// with the user/assistant turn.
			assert.Len(t, on.sched.cache.keys(), 6)

			// A second round is served from the cache entirely.
			before := on.PrefillStats()
			again := generateAll(t, on, reqs)
			require.Equal(t, want, again)
			after := on.PrefillStats()
			var rest int64
			for _, req := range reqs {
				rest += int64(len(req.Messages[len(req.Messages)-1].Content))
			}
			assert.Equal(t, rest, after.Prefilled-before.Prefilled, "only the user texts are prefilled")
		})
	}
}

// A prompt that is all prefix (the last message is empty) still runs its
// last token for the first logits, and matches the uncached result.
func TestPrefixCachePromptEqualsPrefix(t *testing.T) {
	sys := "a system prompt of some length"
	reqs := []Request{
		{Messages: []Message{{Role: "system", Content: sys}, {Role: "user", Content: ""}}, MaxNewTokens: 8},
		{Messages: []Message{{Role: "system", Content: sys}, {Role: "user", Content: ""}}, MaxNewTokens: 8, Temperature: 1, Seed: 3},
		{Messages: []Message{{Role: "system", Content: sys}, {Role: "user", Content: "x"}}, MaxNewTokens: 8},
		{Messages: []Message{{Role: "user", Content: ""}}, MaxNewTokens: 4}, // BOS only
	}
	off := prefixModel(t, 4, 16, false)
	on := prefixModel(t, 4, 16, true)
	want := generateAll(t, off, reqs)
	for range 2 {
		got := generateAll(t, on, reqs)
		require.Equal(t, want, got)
	}
	for i, req := range reqs {
		res, err := on.Generate(t.Context(), req)
		require.NoError(t, err)
		require.Equal(t, want[i], res, "request %d alone", i)
	}
}

// More distinct prefixes than the cache holds: entries are evicted least
// recently used first, within the entry and byte limits, and results stay
// exact.
func TestPrefixCacheEviction(t *testing.T) {
	var systems []string
	for i := range 12 {
		systems = append(systems, fmt.Sprintf("system prompt number %c%c", 'a'+i, 'z'-i))
	}
	reqs := sharedPrefixRequests(48, systems, 11)
	off := prefixModel(t, 4, 24, false)
	on := prefixModel(t, 4, 24, true)
	on.sched.cache = newPrefixCache(3, 1<<20)
	want := generateAll(t, off, reqs)
	require.Equal(t, want, generateAll(t, on, reqs))
	assert.LessOrEqual(t, len(on.sched.cache.keys()), 3)
	assert.Positive(t, on.PrefillStats().Reused)

	t.Run("too large to keep", func(t *testing.T) {
		small := prefixModel(t, 4, 24, true)
		small.sched.cache = newPrefixCache(8, 2*2*4*16*4) // four positions
		require.Equal(t, want, generateAll(t, small, reqs))
		assert.Empty(t, small.sched.cache.keys())
		assert.Zero(t, small.PrefillStats().Reused)
	})
	t.Run("lru", func(t *testing.T) {
		net := testNet(t, testConfig(), 42)
		var ws llama.Workspace
		snap := func(n int) backend.Prefix {
			s := net.NewState()
			require.NoError(t, net.Forward(&ws, []llama.Step{{State: s, Tokens: make([]int, n)}}))
			p, err := s.Snapshot(n)
			require.NoError(t, err)
			return p
		}
		p4 := snap(4)
		size := p4.Bytes()
		assert.Equal(t, 2*2*4*16*4, size) // k and v, 2 layers, 4 positions, 16 kv dims, float32
		c := newPrefixCache(3, 5*size)
		c.put("a", p4)
		c.put("b", p4)
		c.put("c", p4)
		assert.Equal(t, []string{"a", "b", "c"}, c.keys())
		assert.Same(t, p4, c.get("a"))
		c.put("d", p4) // entry cap: b goes
		assert.Equal(t, []string{"c", "a", "d"}, c.keys())
		assert.Nil(t, c.get("b"))
		c.put("e", snap(12)) // 3 sizes: the byte cap drops c
		assert.Equal(t, []string{"a", "d", "e"}, c.keys())
		assert.Equal(t, 5*size, c.bytes)
		c.put("d", p4) // replacing keeps the count right
		assert.Equal(t, []string{"a", "e", "d"}, c.keys())
		assert.Equal(t, 5*size, c.bytes)
		c.put("f", snap(8)) // 2 sizes: the entry cap drops a, the byte cap e
		assert.Equal(t, []string{"d", "f"}, c.keys())
		assert.Equal(t, 3*size, c.bytes)
		c.put("huge", snap(24)) // over the whole cap: not kept
		assert.Equal(t, []string{"d", "f"}, c.keys())
	})
}

// cancelAfter is a context whose Err reports cancellation from its n-th
// call on: a request cancelled at a known point of the step loop.
type cancelAfter struct {
	context.Context
	n    atomic.Int32
	once sync.Once
	done chan struct{}
}

func newCancelAfter(n int32) *cancelAfter {
	c := &cancelAfter{Context: context.Background(), done: make(chan struct{})}
	c.n.Store(n)
	return c
}

func (c *cancelAfter) Err() error {
	if c.n.Add(-1) <= 0 {
		c.once.Do(func() { close(c.done) })
		return context.Canceled
	}
	return nil
}

func (c *cancelAfter) Done() <-chan struct{} { return c.done }

// Cancelling the request that is building a prefix entry does not strand
// the ones waiting for it: the next one takes the build over.
func TestPrefixCacheBuilderCancelled(t *testing.T) {
	sys := "shared system prompt that is long enough to take chunks"
	reqs := sharedPrefixRequests(12, []string{sys}, 17)
	for i := range reqs {
		reqs[i].Messages = reqs[i].Messages[len(reqs[i].Messages)-1:]
		reqs[i].Messages = append([]Message{{Role: "system", Content: sys}}, reqs[i].Messages...)
	}
	want := generateAll(t, prefixModel(t, 6, 8, false), reqs)

	on := prefixModel(t, 6, 8, true)
	sc := on.sched
	queued := func(n int) func() bool {
		return func() bool { sc.mu.Lock(); defer sc.mu.Unlock(); return len(sc.queue) == n }
	}
	// Hold the loop off so that the queue order is known: the builder
	// first. Its context is checked in Generate, at admission and at the
	// first step's start, and reads cancelled at the second step's start,
	// after one prefill chunk.
	sc.mu.Lock()
	sc.running = true
	sc.mu.Unlock()
	builderErr := make(chan error, 1)
	go func() {
		_, err := on.Generate(newCancelAfter(4), reqs[0])
		builderErr <- err
	}()
	require.Eventually(t, queued(1), 5*time.Second, time.Millisecond)
	got := make([]Result, len(reqs))
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Go(func() { got[i], errs[i] = on.Generate(t.Context(), req) })
	}
	require.Eventually(t, queued(1+len(reqs)), 5*time.Second, time.Millisecond)
	sc.mu.Lock()
	go sc.loop()
	sc.mu.Unlock()
	wg.Wait()
	require.ErrorIs(t, <-builderErr, context.Canceled)
	for i, err := range errs {
		require.NoError(t, err, "request %d", i)
	}
	require.Equal(t, want, got)
	st := on.PrefillStats()
	assert.Equal(t, promptTokens(want)+8, st.Prefilled+st.Reused, "the cancelled builder ran one chunk of 8")
	assert.Len(t, sc.cache.keys(), 1)
}

// With the real tokenizer and chat template: the prefix stops before the
// last message's content (row texts that could merge with the header's
// whitespace included), is the same for rows sharing a system prompt, and
// results are identical with the cache and without.
func TestPrefixCacheRealTemplate(t *testing.T) {
	doc, model, _ := readRef(t, "tiny-a")
	on, err := Load(Options{ModelDir: model, DType: "f32"})
	require.NoError(t, err)
	off, err := Load(Options{ModelDir: model, DType: "f32", NoPrefixCache: true})
	require.NoError(t, err)
	require.Nil(t, off.sched.cache)

	systems := []string{"Translate the user's text to German. Reply with the translation only.", "Be terse."}
	users := []string{"Hello", "\n\nHello", "  leading spaces", "The cat sat on the mat.", "", "<|eot_id|> not markup", "x"}
	var reqs []Request
	for _, sys := range systems {
		for _, u := range users {
			reqs = append(reqs, Request{
				Messages:     []Message{{Role: "system", Content: sys}, {Role: "user", Content: u}},
				Date:         doc.Date,
				MaxNewTokens: 6,
			})
		}
	}
	c := on.codec.(prefixCodec)
	for _, sys := range systems {
		var first []int
		for _, u := range users {
			req := Request{Messages: []Message{{Role: "system", Content: sys}, {Role: "user", Content: u}}, Date: doc.Date}
			ids, prefix, err := c.promptPrefix(req)
			require.NoError(t, err)
			plain, err := on.codec.promptIDs(req)
			require.NoError(t, err)
			require.Equal(t, plain, ids)
			require.Positive(t, prefix)
			require.Less(t, prefix, len(ids))
			// The content's own tokens are not in the prefix.
			if u != "" {
				assert.NotEqual(t, on.Tokenizer().Encode(u), ids[prefix-len(on.Tokenizer().Encode(u)):prefix])
			}
			if first == nil {
				first = ids[:prefix]
			}
			// Rows share the prefix up to the shorter one (BPE at the
			// boundary may shorten a row's prefix, never change it).
			n := min(len(first), prefix)
			require.Equal(t, first[:n], ids[:n], "user %q", u)
			if u != "" {
				assert.GreaterOrEqual(t, n, len(first)-1, "user %q", u)
			}
			// An empty last content has no range: the prefix then ends
			// before the last content that has one (the system prompt).
		}
	}
	want := generateAll(t, off, reqs)
	for range 2 {
		require.Equal(t, want, generateAll(t, on, reqs))
	}
	assert.Positive(t, on.PrefillStats().Reused)
	assert.Zero(t, off.PrefillStats().Reused)
}

// BenchmarkPrefixCacheExample runs the demo translation job's requests
// (examples/translate-de.yaml: every row behind the same system prompt) with
// the prefix cache on and off, 16 at a time, and reports the prompt tokens
// each way actually ran through the network.
func BenchmarkPrefixCacheExample(b *testing.B) {
	const dir = "../examples"
	f, err := os.Open(filepath.Join(dir, "data", "heldout-de.jsonl"))
	require.NoError(b, err)
	var texts []string
	dec := json.NewDecoder(f)
	for dec.More() {
		var row struct{ En string }
		require.NoError(b, dec.Decode(&row))
		texts = append(texts, row.En)
	}
	f.Close()
	sys := "Translate the user's text from English to German. Reply with the translation only."
	for _, off := range []bool{false, true} {
		b.Run(fmt.Sprintf("cache=%v", !off), func(b *testing.B) {
			m, err := Load(Options{
				ModelDir:   filepath.Join(dir, "models", "tiny-translator", "base"),
				AdapterDir: filepath.Join(dir, "models", "tiny-translator", "adapter-de"),
				DType:      "bf16", NoPrefixCache: off,
			})
			require.NoError(b, err)
			rows := 0
			for b.Loop() {
				work := make(chan string)
				var wg sync.WaitGroup
				for range 16 {
					wg.Go(func() {
						for text := range work {
							_, err := m.Generate(b.Context(), Request{
								Messages: []Message{{Role: "system", Content: sys}, {Role: "user", Content: text}},
								Date:     "25 Nov 2026", MaxNewTokens: 96,
							})
							if err != nil {
								b.Error(err)
							}
						}
					})
				}
				for _, text := range texts {
					work <- text
				}
				close(work)
				wg.Wait()
				rows += len(texts)
			}
			st := m.PrefillStats()
			b.ReportMetric(float64(st.Prefilled)/float64(b.N), "prefilled/op")
			b.ReportMetric(float64(st.Reused)/float64(b.N), "reused/op")
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
