package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/batchtrans/batchtrans/engine/llama"
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
	DefaultStepTokens = 512
)

// codec turns requests into prompt ids and generated ids into text. The
// real one wraps the tokenizer and the chat template.
type codec interface {
	promptIDs(req Request) ([]int, error)
	decode(ids []int) string
}

// Generate runs one request to its end and returns the result. It is safe
// for many concurrent callers: their sequences are batched together by one
// step loop, and a request's output does not depend on what else runs
// with it. Cancelling ctx ends this request only, with ctx's error.
func (m *Model) Generate(ctx context.Context, req Request) (Result, error) {
	if err := validate(req); err != nil {
		return Result{}, &RequestError{err}
	}
	ids, err := m.codec.promptIDs(req)
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
	s := &seq{
		ctx:     ctx,
		req:     req,
		prompt:  ids,
		sampler: sample.New(sample.Params{Temperature: req.Temperature, TopK: req.TopK, TopP: req.TopP}, req.Seed),
		done:    make(chan struct{}),
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
	state   *llama.State
	fed     int // prompt tokens in the cache
	out     []int
	text    string // decoded output, kept only while stop strings are watched
	eos     bool   // the last output id is an EOS id
	done    chan struct{}
	res     Result
	err     error
}

// scheduler owns the step loop. Sequences wait in queue until a slot in
// the batch frees; the loop runs only while there is work.
type scheduler struct {
	m          *Model
	maxBatch   int
	stepTokens int

	mu      sync.Mutex
	queue   []*seq
	running bool
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
		ws     llama.Workspace
		active []*seq
		free   []*llama.State
		steps  []llama.Step
		inStep []*seq
	)
	defer func() {
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
		if s.state != nil && len(free) < sc.maxBatch {
			s.state.Reset()
			free = append(free, s.state)
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
			} else {
				s.state = sc.m.net.NewState()
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
				steps = append(steps, llama.Step{State: s.state, Tokens: s.out[len(s.out)-1:], Logits: true})
				inStep = append(inStep, s)
				budget--
			}
		}
		for _, s := range active {
			if s.fed < len(s.prompt) && budget > 0 {
				n := min(len(s.prompt)-s.fed, budget)
				end := s.fed + n
				steps = append(steps, llama.Step{State: s.state, Tokens: s.prompt[s.fed:end], Logits: end == len(s.prompt)})
				inStep = append(inStep, s)
				budget -= n
			}
		}
		if len(steps) == 0 {
			continue
		}
		if err := sc.m.net.Forward(&ws, steps); err != nil {
			for _, s := range inStep {
				s.finish(fmt.Errorf("engine: forward step: %w", err))
			}
			active = slices.DeleteFunc(active, func(s *seq) bool { return s.isDone() })
			continue
		}
		for i, st := range steps {
			s := inStep[i]
			if s.fed < len(s.prompt) {
				s.fed += len(st.Tokens)
			}
			if !st.Logits {
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

// next samples s's next token from its logits and says whether (and why)
// the sequence ends with it.
func (m *Model) next(s *seq) (finish string) {
	tok := s.sampler.Sample(s.state.Logits)
	s.out = append(s.out, tok)
	if slices.Contains(m.cfg.EOS, tok) {
		s.eos = true
		return FinishStop
	}
	if len(s.req.Stop) > 0 {
		s.text = m.codec.decode(s.out)
		for _, stop := range s.req.Stop {
			if strings.Contains(s.text, stop) {
				return FinishStop
			}
		}
	}
	if len(s.out) >= s.req.MaxNewTokens || s.state.Pos() >= m.cfg.MaxPositions {
		return FinishLength
	}
	return ""
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
