package engine

import (
	"context"
	"errors"
	"fmt"
	"github.com/batchtrans/batchtrans/engine/backend"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/engine/kernels"
	"github.com/batchtrans/batchtrans/engine/llama"
	"github.com/batchtrans/batchtrans/engine/sample"
)

const testVocab = 64

// letterCodec is a toy tokenizer over testVocab ids: id i is the letter
// 'A'+i%26 (ids 0-2 are BOS/EOS-like and print as '^', '$', '~'); a prompt
// is BOS then one id per byte of each message.
type letterCodec struct{}

func (letterCodec) promptIDs(req Request) ([]int, error) {
	ids := []int{0}
	for _, m := range req.Messages {
		for _, b := range []byte(m.Content) {
			ids = append(ids, 3+int(b)%(testVocab-3))
		}
	}
	return ids, nil
}

func (letterCodec) decode(ids []int) string {
	var b strings.Builder
	for _, id := range ids {
		switch id {
		case 0:
			b.WriteByte('^')
		case 1:
			b.WriteByte('$')
		case 2:
			b.WriteByte('~')
		default:
			b.WriteByte(byte('A' + id%26))
		}
	}
	return b.String()
}

func testConfig() *llama.Config {
	return &llama.Config{
		Vocab: testVocab, Hidden: 32, Intermediate: 64, Layers: 2,
		Heads: 4, KVHeads: 2, HeadDim: 8, MaxPositions: 96,
		RMSNormEps: 1e-5, RopeTheta: 10000, BOS: 0, EOS: []int{1},
	}
}

// testNet builds a random network of cfg's shape; std 0.5 gives peaked,
// varied logits.
func testNet(t testing.TB, cfg *llama.Config, seed uint64) *llama.Model {
	rng := rand.New(rand.NewPCG(seed, 1))
	mat := func(rows, cols int) *kernels.Matrix {
		d := make([]float32, rows*cols)
		for i := range d {
			d[i] = float32(rng.NormFloat64() * 0.5)
		}
		return kernels.NewF32(rows, cols, d, kernels.F32)
	}
	ones := func(n int) []float32 {
		d := make([]float32, n)
		for i := range d {
			d[i] = 1
		}
		return d
	}
	q, kv := cfg.Heads*cfg.HeadDim, cfg.KVHeads*cfg.HeadDim
	w := &llama.Weights{Embed: mat(cfg.Vocab, cfg.Hidden), Norm: ones(cfg.Hidden), LMHead: mat(cfg.Vocab, cfg.Hidden)}
	for range cfg.Layers {
		w.Layers = append(w.Layers, llama.Layer{
			AttnNorm: ones(cfg.Hidden), MLPNorm: ones(cfg.Hidden),
			Q: mat(q, cfg.Hidden), K: mat(kv, cfg.Hidden), V: mat(kv, cfg.Hidden), O: mat(cfg.Hidden, q),
			Gate: mat(cfg.Intermediate, cfg.Hidden), Up: mat(cfg.Intermediate, cfg.Hidden), Down: mat(cfg.Hidden, cfg.Intermediate),
		})
	}
	net, err := llama.NewModel(cfg, w)
	require.NoError(t, err)
	return net
}

func testModel(t testing.TB, cfg *llama.Config, maxBatch, stepTokens int) *Model {
	m, err := newModel(cfg, llama.NewCPU(testNet(t, cfg, 42)), letterCodec{}, maxBatch, stepTokens)
	require.NoError(t, err)
	return m
}

func userReq(text string, maxNew int) Request {
	return Request{Messages: []Message{{Role: "user", Content: text}}, MaxNewTokens: maxNew}
}

// referenceGenerate runs one request alone, the plain way: whole prompt,
// then one token at a time, with the same sampler.
func referenceGenerate(t *testing.T, net *llama.Model, req Request) []int {
	ids, _ := letterCodec{}.promptIDs(req)
	s := net.NewState()
	var ws llama.Workspace
	sm := sample.New(sample.Params{Temperature: req.Temperature, TopK: req.TopK, TopP: req.TopP}, req.Seed)
	require.NoError(t, net.Forward(&ws, []llama.Step{{State: s, Tokens: ids, Out: backend.Logits}}))
	var out []int
	for {
		tok := sm.Sample(s.Logits())
		out = append(out, tok)
		if tok == 1 || len(out) == req.MaxNewTokens || s.Pos() == net.Config().MaxPositions {
			return out
		}
		require.NoError(t, net.Forward(&ws, []llama.Step{{State: s, Tokens: []int{tok}, Out: backend.Logits}}))
	}
}

func TestGenerateMatchesReference(t *testing.T) {
	m := testModel(t, testConfig(), 4, 16)
	cases := []Request{
		userReq("hello world", 20),
		{Messages: []Message{{Role: "user", Content: "sampled text"}}, MaxNewTokens: 25, Temperature: 0.9, TopK: 20, TopP: 0.9, Seed: 7},
		userReq(strings.Repeat("a long prompt over several chunks ", 2), 10),
	}
	for i, req := range cases {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			res, err := m.Generate(t.Context(), req)
			require.NoError(t, err)
			want := referenceGenerate(t, m.net.(*llama.CPU).Model(), req)
			assert.Equal(t, want, res.OutputIDs)
			prompt, _ := letterCodec{}.promptIDs(req)
			assert.Equal(t, prompt, res.PromptIDs)
		})
	}
}

func TestGenerateConcurrent(t *testing.T) {
	cfg := testConfig()
	rng := rand.New(rand.NewPCG(3, 4))
	reqs := make([]Request, 40)
	for i := range reqs {
		n := 1 + rng.IntN(50)
		b := make([]byte, n)
		for j := range b {
			b[j] = byte('a' + rng.IntN(26))
		}
		reqs[i] = userReq(string(b), 1+rng.IntN(30))
		if i%3 == 1 {
			reqs[i].Temperature, reqs[i].TopP, reqs[i].Seed = 1.1, 0.95, uint64(i)
		}
	}
	// Alone: one request at a time on a batch of one.
	alone := testModel(t, cfg, 1, 8)
	want := make([]Result, len(reqs))
	for i, req := range reqs {
		var err error
		want[i], err = alone.Generate(t.Context(), req)
		require.NoError(t, err)
	}
	// Together: every request at once, batches of up to 5, small prefill
	// chunks so prefills and decodes share steps.
	m := testModel(t, cfg, 5, 13)
	got := make([]Result, len(reqs))
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Go(func() {
			var err error
			got[i], err = m.Generate(t.Context(), req)
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	for i := range reqs {
		assert.Equal(t, want[i], got[i], "request %d", i)
	}
	sawLength, sawStop := false, false
	for _, r := range got {
		sawLength = sawLength || r.FinishReason == FinishLength
		sawStop = sawStop || r.FinishReason == FinishStop
	}
	assert.True(t, sawLength, "some request must hit max_new_tokens")
	assert.Eventually(t, func() bool {
		m.sched.mu.Lock()
		defer m.sched.mu.Unlock()
		return !m.sched.running
	}, 10*time.Second, time.Millisecond, "the step loop stops when idle")
}

func TestGenerateStops(t *testing.T) {
	cfg := testConfig()
	m := testModel(t, cfg, 4, 32)
	req := userReq("the quick brown fox", 40)
	full, err := m.Generate(t.Context(), req)
	require.NoError(t, err)
	require.Equal(t, FinishLength, full.FinishReason, "pick a prompt that runs to the limit: %q", full.Text)
	require.Len(t, full.OutputIDs, 40)
	assert.Equal(t, letterCodec{}.decode(full.OutputIDs), full.Text)

	t.Run("stop string", func(t *testing.T) {
		stop := full.Text[10:12]
		first := strings.Index(full.Text, stop)
		r := req
		r.Stop = []string{"not there", stop}
		res, err := m.Generate(t.Context(), r)
		require.NoError(t, err)
		assert.Equal(t, FinishStop, res.FinishReason)
		assert.Equal(t, full.Text[:first], res.Text)
		assert.Equal(t, full.OutputIDs[:first+2], res.OutputIDs, "ids up to the token that completes the stop string")
	})
	t.Run("eos", func(t *testing.T) {
		// Make the 8th generated token an EOS id of a model with the same
		// weights.
		eosCfg := *cfg
		eosCfg.EOS = []int{1, full.OutputIDs[7]}
		first := 0
		for full.OutputIDs[first] != full.OutputIDs[7] {
			first++
		}
		m2, err := newModel(&eosCfg, llama.NewCPU(testNet(t, &eosCfg, 42)), letterCodec{}, 4, 32)
		require.NoError(t, err)
		res, err := m2.Generate(t.Context(), req)
		require.NoError(t, err)
		assert.Equal(t, FinishStop, res.FinishReason)
		assert.Equal(t, full.OutputIDs[:first+1], res.OutputIDs, "output ends with the EOS id")
		assert.Equal(t, full.Text[:first], res.Text, "EOS is not text")
	})
	t.Run("max new tokens", func(t *testing.T) {
		r := req
		r.MaxNewTokens = 5
		res, err := m.Generate(t.Context(), r)
		require.NoError(t, err)
		assert.Equal(t, FinishLength, res.FinishReason)
		assert.Equal(t, full.OutputIDs[:5], res.OutputIDs)
	})
	t.Run("context full", func(t *testing.T) {
		noEOS := *cfg
		noEOS.EOS = nil
		m3, err := newModel(&noEOS, llama.NewCPU(testNet(t, &noEOS, 42)), letterCodec{}, 4, 32)
		require.NoError(t, err)
		r := req
		r.Messages = []Message{{Role: "user", Content: strings.Repeat("x", cfg.MaxPositions-4)}} // + BOS
		r.MaxNewTokens = 100
		res, err := m3.Generate(t.Context(), r)
		require.NoError(t, err)
		assert.Equal(t, FinishLength, res.FinishReason)
		assert.Len(t, res.OutputIDs, 4, "generation stops when the cache is full")
	})
}

func TestGenerateErrors(t *testing.T) {
	cfg := testConfig()
	m := testModel(t, cfg, 4, 32)
	long := userReq(strings.Repeat("y", cfg.MaxPositions), 4) // BOS makes it one too many
	_, err := m.Generate(t.Context(), long)
	require.Error(t, err)
	assert.True(t, errors.Is(err, ErrPromptTooLong))
	assert.Contains(t, err.Error(), "prompt has 97 tokens, context holds 96")
	var re interface{ RowError() bool }
	require.ErrorAs(t, err, &re, "a request's own failure is marked as such")
	assert.True(t, re.RowError())

	bad := []struct {
		name string
		req  Request
		want string
	}{
		{"no max tokens", userReq("x", 0), "max_new_tokens 0"},
		{"no messages", Request{MaxNewTokens: 3}, "no messages"},
		{"top_p", Request{Messages: []Message{{Content: "x"}}, MaxNewTokens: 3, TopP: 2}, "top_p"},
		{"empty stop", Request{Messages: []Message{{Content: "x"}}, MaxNewTokens: 3, Stop: []string{""}}, "empty stop"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Generate(t.Context(), tc.req)
			require.Error(t, err)
			assert.True(t, errors.Is(err, ErrBadRequest))
			assert.Contains(t, err.Error(), tc.want)
			var re *RequestError
			assert.ErrorAs(t, err, &re)
		})
	}
	// A bad request does not disturb the good ones running beside it: they
	// give what they give alone.
	alone, err := m.Generate(t.Context(), userReq("fine", 5))
	require.NoError(t, err)
	require.NotEmpty(t, alone.OutputIDs)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if i%2 == 0 {
				_, err := m.Generate(t.Context(), long)
				assert.ErrorIs(t, err, ErrPromptTooLong)
				return
			}
			res, err := m.Generate(t.Context(), userReq("fine", 5))
			assert.NoError(t, err)
			assert.Equal(t, alone.OutputIDs, res.OutputIDs)
		})
	}
	wg.Wait()
}

func TestGenerateCancel(t *testing.T) {
	cfg := testConfig()
	cfg.MaxPositions = 4096
	cfg.EOS = nil // nothing ends the long request but the cancel
	m := testModel(t, cfg, 4, 32)
	// Cancelled at a known point: its context reports cancellation from
	// the 12th check on (admission, then once a step), well into decoding.
	ctx := newCancelAfter(12)
	var wg sync.WaitGroup
	var cancelled error
	wg.Go(func() {
		_, cancelled = m.Generate(ctx, userReq("runs for a long time", 4000))
	})
	others := make([]Result, 3)
	for i := range others {
		wg.Go(func() {
			var err error
			others[i], err = m.Generate(t.Context(), userReq(fmt.Sprint("other ", i), 30))
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	assert.ErrorIs(t, cancelled, context.Canceled)
	for i, r := range others {
		assert.NotEmpty(t, r.OutputIDs, "request %d", i)
	}
	// The cancelled sequence leaves the loop: it goes idle.
	require.Eventually(t, func() bool {
		m.sched.mu.Lock()
		defer m.sched.mu.Unlock()
		return !m.sched.running
	}, 10*time.Second, 10*time.Millisecond)

	// An already-cancelled context never starts.
	_, err := m.Generate(ctx, userReq("x", 3))
	assert.ErrorIs(t, err, context.Canceled)
}

// panicCodec fails inside the step loop (decode runs there) while armed.
type panicCodec struct {
	letterCodec
	armed *atomic.Bool
}

func (p panicCodec) decode(ids []int) string {
	if p.armed.Load() {
		panic("decoder bug")
	}
	return p.letterCodec.decode(ids)
}

func TestGenerateSurvivesLoopPanic(t *testing.T) {
	cfg := testConfig()
	m := testModel(t, cfg, 4, 32)
	req := userReq("the quick brown fox", 6)
	full, err := m.Generate(t.Context(), req)
	require.NoError(t, err)

	var armed atomic.Bool
	armed.Store(true)
	bad, err := newModel(m.cfg, m.net, panicCodec{armed: &armed}, 4, 32)
	require.NoError(t, err)
	_, err = bad.Generate(t.Context(), req)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "internal error in the step loop: decoder bug")
	// The loop starts afresh for the next request.
	armed.Store(false)
	res, err := bad.Generate(t.Context(), req)
	require.NoError(t, err)
	assert.Equal(t, full.OutputIDs, res.OutputIDs)
}
