package engine

import (
	"cmp"
	"fmt"
	"os"
	"time"

	"github.com/batchtrans/batchtrans/engine/backend"
	"github.com/batchtrans/batchtrans/engine/chat"
	"github.com/batchtrans/batchtrans/engine/kernels"
	"github.com/batchtrans/batchtrans/engine/llama"
	"github.com/batchtrans/batchtrans/engine/tokenizer"
)

// Options say what to load and how to run it.
type Options struct {
	// Device is where the network runs: "cpu" (the default) or "cuda"
	// (every visible NVIDIA GPU, see engine/cuda). The caller has chosen
	// it (engine/device); Load does not fall back.
	Device     string
	ModelDir   string // Hugging Face model folder
	AdapterDir string // PEFT LoRA folder; "" for none
	DType      string // weights in memory: f32, bf16 (default) or q8
	// Threads is how many threads each CPU matrix product uses (0: every
	// core). It sets the process-wide kernel pool.
	Threads int
	// MaxBatch is how many sequences one forward step serves at most
	// (0: DefaultMaxBatch); more concurrent requests wait their turn.
	MaxBatch int
	// StepTokens caps the tokens of one forward step (0:
	// DefaultStepTokens); longer prompts are prefilled in chunks.
	StepTokens int
	// NoPrefixCache turns off the shared-prefix cache. With it on (the
	// default), requests whose prompts share the rendered chat up to the
	// last message's content compute that part once: later ones start
	// from a copy of its KV cache. Outputs are identical either way; the
	// switch is for measuring. The environment variable
	// BATCHTRANS_PREFIX_CACHE=off has the same effect.
	NoPrefixCache bool
	// GPUKVBytes caps each GPU's KV cache pool (0: the memory left after
	// the weights and step buffers, less a margin).
	GPUKVBytes int64
	// Kernels names the kernel implementation (one of kernels.Impls())
	// instead of the fastest this CPU has; the environment variable
	// BATCHTRANS_KERNELS does the same when this is empty. Every
	// implementation gives the same bits, so this only changes speed: it
	// is a way around a kernel path that misbehaves on some machine, and
	// how the tests resume one job on several.
	Kernels string
}

// Load reads the tokenizer, the chat template and the weights (merging the
// adapter, if any) and returns a Model ready for concurrent Generate calls.
// Errors name the file (and tensor) at fault. A model folder without a chat
// template loads; only requests that need the template then fail.
func Load(opts Options) (*Model, error) {
	start := time.Now()
	opts, dt, err := opts.normalise()
	if err != nil {
		return nil, err
	}
	// The tokenizer (a large JSON file) loads beside the weights.
	var (
		tok            *tokenizer.Tokenizer
		tokErr         error
		tmpl           *chat.Template
		tmplErr        error
		tokenizerReady = make(chan struct{})
	)
	go func() {
		defer close(tokenizerReady)
		if tok, tokErr = tokenizer.Load(opts.ModelDir); tokErr == nil {
			tmpl, tmplErr = chat.Load(opts.ModelDir)
		}
	}()
	cfg, net, err := loadBackend(opts, dt)
	<-tokenizerReady
	if tokErr != nil {
		if err == nil {
			net.Close()
		}
		return nil, tokErr
	}
	if err != nil {
		return nil, err
	}
	c := &textCodec{tok: tok, tmpl: tmpl, tmplErr: tmplErr, bos: cfg.BOS, vocab: cfg.Vocab}
	m, err := newModel(cfg, net, c, opts.MaxBatch, opts.StepTokens)
	if err != nil {
		net.Close()
		return nil, err
	}
	if opts.NoPrefixCache || os.Getenv("BATCHTRANS_PREFIX_CACHE") == "off" {
		m.sched.cache = nil
	}
	m.tok = tok
	m.dtype = dt
	m.device = opts.Device
	m.loadTime = time.Since(start)
	return m, nil
}

// normalise fills in Options' defaults and parses the dtype.
func (opts Options) normalise() (Options, kernels.DType, error) {
	dt, err := kernels.ParseDType(cmp.Or(opts.DType, "bf16"))
	if err != nil {
		return opts, 0, fmt.Errorf("load model: %w", err)
	}
	opts.Device = cmp.Or(opts.Device, "cpu")
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultBatch(opts.Device)
	}
	if opts.StepTokens <= 0 {
		opts.StepTokens = DefaultStepTokens
		if opts.Device == "cuda" {
			opts.StepTokens = max(DefaultGPUStepTokens, opts.MaxBatch+DefaultStepTokens)
		}
	}
	return opts, dt, nil
}

// LoadBackend builds the network alone on opts.Device, without tokenizer
// or chat template, for benchmarks and tests that drive backend.Net
// directly. Its steps may carry up to opts.StepTokens rows and
// opts.MaxBatch outputs.
func LoadBackend(opts Options) (*llama.Config, backend.Net, error) {
	opts, dt, err := opts.normalise()
	if err != nil {
		return nil, nil, err
	}
	return loadBackend(opts, dt)
}

func loadBackend(opts Options, dt kernels.DType) (*llama.Config, backend.Net, error) {
	switch opts.Device {
	case "cpu":
		return loadCPU(opts, dt)
	case "cuda":
		return loadCUDA(opts, dt)
	}
	return nil, nil, fmt.Errorf("load model: unknown device %q (want cpu or cuda)", opts.Device)
}

// loadCPU builds the CPU backend. The kernel implementation and thread
// count are process-wide settings of package kernels; every implementation
// gives the same bits, so a switch changes only speed.
func loadCPU(opts Options, dt kernels.DType) (*llama.Config, backend.Net, error) {
	if name := cmp.Or(opts.Kernels, os.Getenv("BATCHTRANS_KERNELS")); name != "" {
		if err := kernels.Use(name); err != nil {
			return nil, nil, fmt.Errorf("load model: kernels (BATCHTRANS_KERNELS): %w", err)
		}
	}
	cfg, w, err := llama.Load(opts.ModelDir, opts.AdapterDir, dt)
	if err != nil {
		return nil, nil, err
	}
	net, err := llama.NewModel(cfg, w)
	if err != nil {
		return nil, nil, fmt.Errorf("load model %s: %w", opts.ModelDir, err)
	}
	if opts.Threads > 0 {
		kernels.SetThreads(opts.Threads)
	}
	return cfg, llama.NewCPU(net), nil
}

// DefaultBatch is the number of sequences one forward step serves when
// Options.MaxBatch is 0: 16 on the CPU (each step's weight reads serve
// them all; more only grow the KV caches), DefaultGPUBatch on CUDA (where
// hundreds of rows in flight are what fill the GPU).
func DefaultBatch(device string) int {
	if device == "cuda" {
		return DefaultGPUBatch
	}
	return DefaultMaxBatch
}

// Tokenizer returns the model's tokenizer (immutable, safe to share).
func (m *Model) Tokenizer() *tokenizer.Tokenizer { return m.tok }

// DType is the in-memory weight format.
func (m *Model) DType() kernels.DType { return m.dtype }

// LoadTime is how long Load took.
func (m *Model) LoadTime() time.Duration { return m.loadTime }

// textCodec renders requests with the chat template and the tokenizer.
type textCodec struct {
	tok     *tokenizer.Tokenizer
	tmpl    *chat.Template
	tmplErr error // why there is no template
	bos     int
	vocab   int
}

// promptIDs builds the prompt the way transformers does: the rendered
// template tokenized without added specials (the template writes BOS
// itself), message contents literal; with NoTemplate, BOS then the last
// message's content, literal.
func (c *textCodec) promptIDs(req Request) ([]int, error) {
	ids, _, err := c.promptPrefix(req)
	return ids, err
}

// promptPrefix returns the prompt ids (see promptIDs) and how many of them
// come before the last message's content: the ids of the rendered text up
// to that content, as far as they agree with the prompt's own ids (a BPE
// piece may run across the boundary, so only equal ids count).
func (c *textCodec) promptPrefix(req Request) ([]int, int, error) {
	if req.NoTemplate {
		ids := append([]int{c.bos}, c.tok.Encode(req.Messages[len(req.Messages)-1].Content)...)
		return ids, 0, c.checkIDs(ids)
	}
	if c.tmpl == nil {
		return nil, 0, fmt.Errorf("model has no usable chat template (send the text without one): %w", c.tmplErr)
	}
	msgs := make([]chat.Message, len(req.Messages))
	for i, m := range req.Messages {
		msgs[i] = chat.Message{Role: m.Role, Content: m.Content}
	}
	text, content, err := c.tmpl.Render(msgs, chat.Options{AddGenerationPrompt: true, Date: req.Date})
	if err != nil {
		return nil, 0, &RequestError{fmt.Errorf("render prompt: %w: %w", err, ErrBadRequest)}
	}
	ids := c.tok.EncodeMixed(text, content)
	if err := c.checkIDs(ids); err != nil {
		return nil, 0, err
	}
	prefix := 0
	if n := len(content); n > 0 {
		head := c.tok.EncodeMixed(text[:content[n-1][0]], content[:n-1])
		for prefix < min(len(head), len(ids)) && head[prefix] == ids[prefix] {
			prefix++
		}
	}
	return ids, prefix, nil
}

func (c *textCodec) checkIDs(ids []int) error {
	for _, id := range ids {
		if id < 0 || id >= c.vocab {
			return fmt.Errorf("prompt token id %d outside the model's vocabulary of %d (tokenizer and config.json disagree)", id, c.vocab)
		}
	}
	return nil
}

// stream decodes generated ids one at a time, as decode does all of them.
func (c *textCodec) stream() textStream { return &tokenStream{c.tok, c.tok.NewDecoder()} }

// tokenStream is textCodec's textStream: special tokens left out, as
// decode leaves them.
type tokenStream struct {
	tok *tokenizer.Tokenizer
	d   *tokenizer.Decoder
}

func (t *tokenStream) add(id int) string {
	if t.tok.IsSpecial(id) {
		return ""
	}
	return t.d.Add(id)
}

func (t *tokenStream) held() string { return t.d.Held() }

// decode returns the text of generated ids with special tokens left out,
// as transformers' decode(..., skip_special_tokens=True).
func (c *textCodec) decode(ids []int) string {
	keep := ids
	for i, id := range ids {
		if c.tok.IsSpecial(id) {
			keep = make([]int, 0, len(ids))
			keep = append(keep, ids[:i]...)
			for _, id := range ids[i+1:] {
				if !c.tok.IsSpecial(id) {
					keep = append(keep, id)
				}
			}
			break
		}
	}
	return c.tok.Decode(keep)
}
