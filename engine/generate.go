package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batchtrans/batchtrans/engine/backend"
	"github.com/batchtrans/batchtrans/engine/sample"
)

// Errors a request can fail with; each is wrapped with the numbers.
var (
	// ErrPromptTooLong: the prompt does not fit the model's context.
	ErrPromptTooLong = errors.New("prompt longer than the model's context")
	// ErrBadRequest: the request's parameters make no sense.
	ErrBadRequest = errors.New("invalid request")
)

// RequestError is an error caused by one request's content or parameters
// (a prompt too long for the context, a template that cannot place its
// text, bad sampling values): that request fails, the model and the other
// requests are fine. Its RowError method marks it so for callers that treat
// such failures as data (the runner records the row and goes on).
type RequestError struct{ Err error }

func (e *RequestError) Error() string { return e.Err.Error() }
func (e *RequestError) Unwrap() error { return e.Err }

// RowError reports true: the failure belongs to the request.
func (e *RequestError) RowError() bool { return true }

// Defaults for Options.
const (
	DefaultMaxBatch   = 16
	DefaultGPUBatch   = 1024
	DefaultStepTokens = 512
	// DefaultGPUStepTokens lets a step on the GPU decode its whole batch
	// and prefill several prompts beside it.
	DefaultGPUStepTokens = 4096
)

// codec turns requests into prompt ids and generated ids into text. The
// real one wraps the tokenizer and the chat template.
type codec interface {
	promptIDs(req Request) ([]int, error)
	decode(ids []int) string
}

// streamCodec is a codec that also decodes one id at a time, for the stop
// strings' check: textStream.add returns the text that is now whole, and
// held what decode of all the ids so far has after it.
type streamCodec interface {
	stream() textStream
}

type textStream interface {
	add(id int) string
	held() string
}

// prefixCodec is a codec that also says how many leading prompt ids are
// shared by requests that differ only in the last message's content: the
// part the prefix cache may serve.
type prefixCodec interface {
	promptPrefix(req Request) (ids []int, prefix int, err error)
}

// Generate runs one request to its end and returns the result. It is safe
// for many concurrent callers: their sequences are batched together by one
// step loop, and a request's output does not depend on what else runs
// with it. Cancelling ctx ends this request only, with ctx's error.
func (m *Model) Generate(ctx context.Context, req Request) (Result, error) {
	if err := validate(req); err != nil {
		return Result{}, &RequestError{err}
	}
	if err := m.broken.Load(); err != nil {
		return Result{}, *err
	}
	var (
		ids    []int
		prefix int
		err    error
	)
	if pc, ok := m.codec.(prefixCodec); ok && m.sched.cache != nil {
		ids, prefix, err = pc.promptPrefix(req)
	} else {
		ids, err = m.codec.promptIDs(req)
	}
	if err != nil {
		return Result{}, err
	}
	if len(ids) == 0 {
		return Result{}, &RequestError{fmt.Errorf("empty prompt: %w", ErrBadRequest)}
	}
	if n := m.cfg.MaxPositions; len(ids) > n {
		return Result{}, &RequestError{fmt.Errorf("prompt has %d tokens, context holds %d: %w", len(ids), n, ErrPromptTooLong)}
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	// The last prompt token must be run to get the first logits, so a
	// prefix never covers the whole prompt.
	prefix = min(prefix, len(ids)-1)
	s := &seq{
		ctx:     ctx,
		req:     req,
		prompt:  ids,
		sampler: sample.New(sample.Params{Temperature: req.Temperature, TopK: req.TopK, TopP: req.TopP}, req.Seed),
		greedy:  req.Temperature <= 0,
		done:    make(chan struct{}),
	}
	m.watch(s)
	// A prefix too large to keep is not built: its builder would only make
	// the requests sharing it wait.
	if prefix >= minPrefix && m.sched.cache != nil && m.net.KVBytes(prefix) <= m.sched.cache.maxBytes {
		s.prefix, s.key = prefix, prefixKey(ids[:prefix])
	}
	m.sched.submit(s)
	select {
	case <-s.done:
		return s.res, s.err
	case <-ctx.Done():
		// The step loop sees the cancelled context and drops the sequence.
		return Result{}, ctx.Err()
	}
}

func validate(req Request) error {
	var errs []error
	if req.MaxNewTokens <= 0 {
		errs = append(errs, fmt.Errorf("max_new_tokens %d is not positive: %w", req.MaxNewTokens, ErrBadRequest))
	}
	if len(req.Messages) == 0 {
		errs = append(errs, fmt.Errorf("no messages: %w", ErrBadRequest))
	}
	if err := (sample.Params{Temperature: req.Temperature, TopK: req.TopK, TopP: req.TopP}).Validate(); err != nil {
		errs = append(errs, fmt.Errorf("%w: %w", ErrBadRequest, err))
	}
	for _, s := range req.Stop {
		if s == "" {
			errs = append(errs, fmt.Errorf("empty stop string: %w", ErrBadRequest))
			break
		}
	}
	return errors.Join(errs...)
}

// seq is one request in the step loop. Only the loop touches it between
// submit and done; res and err are read after done is closed.
type seq struct {
	ctx     context.Context
	req     Request
	prompt  []int
	sampler *sample.Sampler
	greedy  bool // the next token is the argmax: the backend need not copy logits
	state   backend.State
	fed     int // prompt tokens in the cache
	// prefix is how many leading prompt ids the prefix cache may serve
	// (0: none); key is their cache key. After the cache was consulted,
	// looked is set; building marks the sequence whose prefill fills the
	// cache entry for key (its chunks stop at prefix, then it is copied).
	prefix   int
	key      string
	looked   bool
	building bool
	out      []int
	// With stop strings and a streamCodec (watch), stream decodes the
	// output one id at a time: streamed is what it has returned, stops the
	// stop strings' bytes, window scratch for the part a new match could
	// lie in.
	stream           textStream
	streamed, window []byte
	stops            [][]byte
	eos              bool // the last output id is an EOS id
	done             chan struct{}
	res              Result
	err              error
}

// scheduler owns the step loop. Sequences wait in queue until a slot in
// the batch frees; the loop runs only while there is work.
type scheduler struct {
	m          *Model
	maxBatch   int
	stepTokens int

	cache *prefixCache // nil: off

	mu      sync.Mutex
	queue   []*seq
	running bool

	prefilled atomic.Int64 // prompt tokens run through the network
	reused    atomic.Int64 // prompt tokens copied from the prefix cache
	steps     atomic.Int64 // forward steps run
	forward   atomic.Int64 // nanoseconds spent in them
}

func (sc *scheduler) submit(s *seq) {
	sc.mu.Lock()
	sc.queue = append(sc.queue, s)
	if !sc.running {
		sc.running = true
		go sc.loop()
	}
	sc.mu.Unlock()
}

// loop runs forward steps over the sequences in flight until none are
// left. Each step feeds every decoding sequence its last token and gives
// prefilling sequences chunks of their prompts, in arrival order, within
// stepTokens in all.
func (sc *scheduler) loop() {
	var (
		active []*seq
		free   []backend.State
		steps  []backend.Step
		inStep []*seq
		// building holds the prefix keys some active sequence is
		// prefilling for the cache; others with the key wait for it.
		building = map[string]bool{}
	)
	defer func() {
		// The loop keeps no state between bursts: free what it held.
		for _, st := range free {
			st.Free()
		}
		// A failure below the engine must not take the process down: every
		// request in flight gets the error and the loop can start afresh.
		if r := recover(); r != nil {
			err := fmt.Errorf("engine: internal error in the step loop: %v", r)
			sc.mu.Lock()
			waiting := sc.queue
			sc.queue = nil
			sc.running = false
			sc.mu.Unlock()
			for _, s := range slices.Concat(active, waiting) {
				if !s.isDone() {
					s.finish(err)
				}
			}
		}
	}()
	release := func(s *seq) {
		switch {
		case s.state == nil:
		case len(free) < sc.maxBatch:
			s.state.Reset()
			free = append(free, s.state)
		default:
			s.state.Free()
		}
		s.state = nil
	}
	for {
		sc.mu.Lock()
		for len(active) < sc.maxBatch && len(sc.queue) > 0 {
			s := sc.queue[0]
			sc.queue[0] = nil
			sc.queue = sc.queue[1:]
			if err := s.ctx.Err(); err != nil {
				s.finish(err)
				continue
			}
			if n := len(free); n > 0 {
				s.state, free = free[n-1], free[:n-1]
			} else if st, err := sc.m.net.NewState(); err == nil {
				s.state = st
			} else if len(active) > 0 {
				// The device is full for now: wait for a sequence to end.
				sc.queue = slices.Insert(sc.queue, 0, s)
				break
			} else {
				s.finish(fmt.Errorf("engine: new sequence: %w", err))
				continue
			}
			active = append(active, s)
		}
		if len(active) == 0 {
			sc.running = false
			sc.mu.Unlock()
			return
		}
		sc.mu.Unlock()

		// Drop cancelled sequences; plan the step.
		live := active[:0]
		for _, s := range active {
			if err := s.ctx.Err(); err != nil {
				release(s)
				s.finish(err)
				continue
			}
			live = append(live, s)
		}
		clear(active[len(live):])
		active = live
		steps, inStep = steps[:0], inStep[:0]
		budget := sc.stepTokens
		for _, s := range active {
			if s.fed == len(s.prompt) {
				steps = append(steps, backend.Step{State: s.state, Tokens: s.out[len(s.out)-1:], Out: s.output()})
				inStep = append(inStep, s)
				budget--
			}
		}
		clear(building)
		for _, s := range active {
			if s.building {
				building[s.key] = true
			}
		}
		for _, s := range active {
			if s.fed < len(s.prompt) && budget > 0 {
				if !sc.usePrefix(s, building) {
					continue // another sequence is computing this prefix
				}
				n := min(len(s.prompt)-s.fed, budget)
				if s.building {
					n = min(n, s.prefix-s.fed)
				}
				end := s.fed + n
				out := backend.NoOutput
				if end == len(s.prompt) {
					out = s.output()
				}
				steps = append(steps, backend.Step{State: s.state, Tokens: s.prompt[s.fed:end], Out: out})
				inStep = append(inStep, s)
				budget -= n
			}
		}
		if len(steps) == 0 {
			continue
		}
		began := time.Now()
		err := sc.m.net.Forward(steps)
		sc.steps.Add(1)
		sc.forward.Add(int64(time.Since(began)))
		if err != nil {
			err = fmt.Errorf("engine: forward step: %w", err)
			failed := inStep
			if errors.Is(err, backend.ErrDevice) {
				// Every sequence on the device is lost, and so is the
				// device: later requests fail at once.
				sc.m.broken.CompareAndSwap(nil, &err)
				failed = active
			}
			for _, s := range failed {
				if !s.isDone() {
					release(s)
					s.finish(err)
				}
			}
			active = slices.DeleteFunc(active, func(s *seq) bool { return s.isDone() })
			continue
		}
		for i, st := range steps {
			s := inStep[i]
			if s.fed < len(s.prompt) {
				s.fed += len(st.Tokens)
				sc.prefilled.Add(int64(len(st.Tokens)))
				if s.building && s.fed == s.prefix {
					s.building = false
					// A prefix the device has no room for is not cached:
					// the sequences waiting for it build it themselves.
					if p, err := s.state.Snapshot(s.prefix); err == nil {
						sc.cache.put(s.key, p)
					}
				}
			}
			if st.Out == backend.NoOutput {
				continue
			}
			if reason := sc.m.next(s); reason != "" {
				release(s)
				s.finishOK(reason, sc.m.codec)
			}
		}
		active = slices.DeleteFunc(active, func(s *seq) bool { return s.isDone() })
	}
}

// usePrefix consults the prefix cache for s before its first prefill
// chunk: on a hit s's state starts from a copy of the cached positions;
// on a miss s becomes the builder of the entry, unless another active
// sequence already is, in which case s waits (usePrefix reports false)
// and asks again next step.
func (sc *scheduler) usePrefix(s *seq, building map[string]bool) bool {
	if s.looked || s.prefix == 0 || sc.cache == nil {
		return true
	}
	if p := sc.cache.get(s.key); p != nil {
		if err := s.state.LoadPrefix(p); err != nil {
			panic(err) // the state is fresh and of this model: cannot happen
		}
		s.fed = p.Len()
		sc.reused.Add(int64(p.Len()))
		s.looked = true
		return true
	}
	if building[s.key] {
		return false
	}
	building[s.key] = true
	s.building = true
	s.looked = true
	return true
}

// minPrefix is the shortest prefix worth caching.
const minPrefix = 2

// Prefix cache limits: entries are whole-prefix copies of the KV cache
// (prefix tokens x layers x 2 x kv dims x 4 bytes).
const (
	prefixCacheEntries = 8
	prefixCacheBytes   = 64 << 20
)

// prefixCache is a small LRU of KV copies keyed by the exact prompt id
// sequence they were computed from. Entries are read-only once stored.
type prefixCache struct {
	maxEntries, maxBytes int

	mu      sync.Mutex
	bytes   int
	entries []prefixEntry // least recently used first
}

type prefixEntry struct {
	key string
	p   backend.Prefix
}

func newPrefixCache(entries, bytes int) *prefixCache {
	return &prefixCache{maxEntries: entries, maxBytes: bytes}
}

// prefixKey is the cache key of a prompt id sequence.
func prefixKey(ids []int) string {
	b := make([]byte, 0, 4*len(ids))
	for _, id := range ids {
		b = binary.LittleEndian.AppendUint32(b, uint32(id))
	}
	return string(b)
}

// get returns the entry for key, nil if none, and marks it recently used.
func (c *prefixCache) get(key string) backend.Prefix {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, e := range c.entries {
		if e.key == key {
			c.entries = append(slices.Delete(c.entries, i, i+1), e)
			return e.p
		}
	}
	return nil
}

// put stores p under key, evicting (and freeing) the least recently used
// entries to stay within the limits. A prefix larger than the byte cap is
// not kept. Only the step loop calls put and get, so no state is loading
// from an entry while it is freed.
func (c *prefixCache) put(key string, p backend.Prefix) {
	size := p.Bytes()
	if size > c.maxBytes {
		p.Free()
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, e := range c.entries {
		if e.key == key {
			c.bytes -= e.p.Bytes()
			e.p.Free()
			c.entries = slices.Delete(c.entries, i, i+1)
			break
		}
	}
	for len(c.entries) > 0 && (len(c.entries) >= c.maxEntries || c.bytes+size > c.maxBytes) {
		c.bytes -= c.entries[0].p.Bytes()
		c.entries[0].p.Free()
		c.entries = slices.Delete(c.entries, 0, 1)
	}
	c.entries = append(c.entries, prefixEntry{key: key, p: p})
	c.bytes += size
}

// clear frees every entry.
func (c *prefixCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.entries {
		e.p.Free()
	}
	c.entries, c.bytes = nil, 0
}

// keys returns the cached keys, least recently used first.
func (c *prefixCache) keys() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ks := make([]string, len(c.entries))
	for i, e := range c.entries {
		ks[i] = e.key
	}
	return ks
}

// PrefillStats counts prompt tokens since Load.
type PrefillStats struct {
	// Prefilled is the number of prompt tokens run through the network.
	Prefilled int64
	// Reused is the number of prompt tokens served from the prefix cache
	// (a copy of an earlier request's KV cache) instead.
	Reused int64
}

// PrefillStats returns the prompt token counters.
func (m *Model) PrefillStats() PrefillStats {
	return PrefillStats{Prefilled: m.sched.prefilled.Load(), Reused: m.sched.reused.Load()}
}

// StepStats counts the forward steps since Load and the time spent in
// them: beside a job's wall time, it says how much of the job the model's
// steps took and how much went to everything else (reading, tokenizing,
// planning steps, sampling, writing).
type StepStats struct {
	Steps   int64
	Forward time.Duration
}

// StepStats returns the step counters.
func (m *Model) StepStats() StepStats {
	return StepStats{Steps: m.sched.steps.Load(), Forward: time.Duration(m.sched.forward.Load())}
}

// next samples s's next token from its logits and says whether (and why)
// the sequence ends with it.
func (m *Model) next(s *seq) (finish string) {
	var tok int
	if s.greedy {
		tok = s.state.Token()
	} else {
		tok = s.sampler.Sample(s.state.Logits())
	}
	s.out = append(s.out, tok)
	if slices.Contains(m.cfg.EOS, tok) {
		s.eos = true
		return FinishStop
	}
	if len(s.req.Stop) > 0 && m.stopped(s, tok) {
		return FinishStop
	}
	if len(s.out) >= s.req.MaxNewTokens || s.state.Pos() >= m.cfg.MaxPositions {
		return FinishLength
	}
	return ""
}

// watch readies s's stop strings for stopped: decoded one id at a time
// where the codec streams.
func (m *Model) watch(s *seq) {
	sc, ok := m.codec.(streamCodec)
	if !ok || len(s.req.Stop) == 0 {
		return
	}
	s.stream = sc.stream()
	for _, stop := range s.req.Stop {
		s.stops = append(s.stops, []byte(stop))
	}
}

// stopped reports whether the decoded output of s, now ending in tok,
// contains one of its stop strings. With a stream (watch) it decodes tok
// alone and searches only where a new match could be (the decoded output
// up to the last id had none: a new one ends in what tok added, or in the
// bytes still held back), so a long output costs no more a step than a
// short one; the answer is decode's (TestStopStreamMatchesDecode).
func (m *Model) stopped(s *seq, tok int) bool {
	if s.stream == nil {
		text := m.codec.decode(s.out)
		for _, stop := range s.req.Stop {
			if strings.Contains(text, stop) {
				return true
			}
		}
		return false
	}
	prev := len(s.streamed)
	s.streamed = append(s.streamed, s.stream.add(tok)...)
	held := s.stream.held()
	for _, stop := range s.stops {
		from := max(0, prev-len(stop)+1)
		s.window = append(append(s.window[:0], s.streamed[from:]...), held...)
		if bytes.Contains(s.window, stop) {
			return true
		}
	}
	return false
}

// output is what the step that ends s's prompt or decodes its next token
// must return: the argmax alone for greedy requests, else the logits.
func (s *seq) output() backend.Output {
	if s.greedy {
		return backend.Argmax
	}
	return backend.Logits
}

func (s *seq) isDone() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *seq) finish(err error) {
	s.err = err
	close(s.done)
}

// finishOK builds the result: Text is the output without a final EOS id,
// decoded by the codec (which leaves special tokens out), cut before the
// first stop string.
func (s *seq) finishOK(reason string, c codec) {
	ids := s.out
	if s.eos {
		ids = ids[:len(ids)-1]
	}
	text := c.decode(ids)
	cut := -1
	for _, stop := range s.req.Stop {
		if i := strings.Index(text, stop); i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	if cut >= 0 {
		text = text[:cut]
	}
	s.res = Result{Text: text, PromptIDs: s.prompt, OutputIDs: s.out, FinishReason: reason}
	close(s.done)
}
