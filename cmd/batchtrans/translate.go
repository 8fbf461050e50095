package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/batchtrans/batchtrans/engine"
	"github.com/batchtrans/batchtrans/engine/device"
)

func init() {
	register(&command{name: "translate", summary: "translate one text (or each line typed, with --interactive)", run: translateCmd})
}

// translateOptions are translate's flags.
type translateOptions struct {
	model, adapter, dtype  string
	system, source, target string
	date                   string
	maxNewTokens           int
	json, interactive      bool
	device                 string
	threads                int
	text                   string // from the arguments; "" = stdin
}

// defaultSystem is the system prompt unless --system is given.
const defaultSystem = "Translate the user's text from %s to %s. Reply with the translation only."

func translateCmd(ctx context.Context, env *cliEnv, args []string) error {
	var o translateOptions
	fs := flag.NewFlagSet("translate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.model, "model", "", "Hugging Face model folder (required)")
	fs.StringVar(&o.adapter, "adapter", "", "PEFT LoRA adapter folder, merged at load")
	fs.StringVar(&o.dtype, "dtype", "bf16", "weights in memory: f32, bf16 or q8")
	fs.StringVar(&o.system, "system", "", "system prompt (default: "+fmt.Sprintf(defaultSystem, "SOURCE", "TARGET")+")")
	fs.StringVar(&o.source, "source", "English", "source language named in the default system prompt")
	fs.StringVar(&o.target, "target", "German", "target language named in the default system prompt")
	fs.StringVar(&o.date, "date", "", `the chat template's date, e.g. "25 Nov 2026" (default: today, UTC)`)
	fs.IntVar(&o.maxNewTokens, "max-new-tokens", 256, "most tokens to generate")
	fs.BoolVar(&o.json, "json", false, "print one JSON object per text: text, prompt_ids, output_ids, finish_reason, prompt_tokens, completion_tokens")
	fs.BoolVar(&o.interactive, "interactive", false, "load once, then translate each line read from stdin until end of input (Ctrl-D)")
	fs.StringVar(&o.device, "device", "auto", "auto, cpu, cuda or mps")
	fs.IntVar(&o.threads, "threads", 0, "threads per matrix product (0: every core)")
	if err := fs.Parse(args); err != nil {
		return usageError("%v (usage: batchtrans translate --model DIR [flags] [TEXT])", err)
	}
	switch {
	case o.model == "":
		return usageError("--model is required (usage: batchtrans translate --model DIR [flags] [TEXT])")
	case o.maxNewTokens <= 0:
		return usageError("--max-new-tokens must be positive, got %d", o.maxNewTokens)
	case o.threads < 0:
		return usageError("--threads must be >= 0, got %d", o.threads)
	case o.interactive && fs.NArg() > 0:
		return usageError("--interactive reads its texts from stdin; drop the TEXT argument")
	}
	if _, err := time.Parse("02 Jan 2006", o.date); o.date != "" && err != nil {
		return usageError(`--date %q is not a date like "25 Nov 2026"`, o.date)
	}
	if o.date == "" {
		o.date = time.Now().UTC().Format("02 Jan 2006")
	}
	if o.system == "" {
		o.system = fmt.Sprintf(defaultSystem, o.source, o.target)
	}
	o.text = strings.Join(fs.Args(), " ")

	dev, err := device.Choose(device.System().Probe(), o.device, func(line string) { fmt.Fprintln(env.stderr, line) })
	if err != nil {
		if errors.Is(err, device.ErrUnavailable) {
			return usageError("%w", err)
		}
		return err
	}
	o.device = string(dev)
	ctx, stop := interruptible(ctx, env.signals)
	defer stop()
	return runTranslate(ctx, env, o)
}

// interruptible returns a context cancelled by the first SIGINT or SIGTERM,
// and a stop function; after a signal the error carries the matching exit
// code.
func interruptible(ctx context.Context, sigs <-chan os.Signal) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			code := exitInterrupted
			if s == syscall.SIGTERM {
				code = exitTerminated
			}
			cancel(withCode(code, fmt.Errorf("interrupted by %v", s)))
		case <-done:
		}
	}()
	return ctx, func() { close(done); cancel(nil) }
}

func runTranslate(ctx context.Context, env *cliEnv, o translateOptions) error {
	text := o.text
	if !o.interactive && text == "" {
		b, err := io.ReadAll(env.stdin)
		if err != nil {
			return fmt.Errorf("read stdin: %w", err)
		}
		text = strings.TrimRight(string(b), "\r\n")
		if text == "" {
			return usageError("no text to translate (give TEXT or pipe it to stdin)")
		}
	}
	m, err := engine.Load(engine.Options{Device: o.device, ModelDir: o.model, AdapterDir: o.adapter, DType: o.dtype, Threads: o.threads, MaxBatch: 1})
	if err != nil {
		return withCode(exitFatal, err)
	}
	defer m.Close()
	env.log.Info("model loaded", "model", o.model, "adapter", o.adapter, "dtype", o.dtype, "device", o.device, "load_s", m.LoadTime().Seconds())
	if !o.interactive {
		return translateOne(ctx, env, m, o, text)
	}
	// Lines come from a reader goroutine so that a signal ends the loop even
	// while it waits for input.
	type line struct {
		text string
		err  error
		eof  bool
	}
	lines := make(chan line)
	go func() {
		in := bufio.NewScanner(env.stdin)
		in.Buffer(make([]byte, 64<<10), 16<<20)
		for in.Scan() {
			select {
			case lines <- line{text: in.Text()}:
			case <-ctx.Done():
				return
			}
		}
		select {
		case lines <- line{err: in.Err(), eof: true}:
		case <-ctx.Done():
		}
	}()
	prompt := isTerminal(env.stderr) && isTerminalReader(env.stdin)
	for {
		if prompt {
			fmt.Fprint(env.stderr, "> ")
		}
		var l line
		select {
		case l = <-lines:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		if l.eof {
			if prompt {
				fmt.Fprintln(env.stderr)
			}
			if l.err != nil {
				return fmt.Errorf("read stdin: %w", l.err)
			}
			return nil
		}
		text := strings.TrimRight(l.text, "\r")
		if strings.TrimSpace(text) == "" {
			continue
		}
		if err := translateOne(ctx, env, m, o, text); err != nil {
			if ctx.Err() != nil || !isRequestError(err) {
				return err
			}
			fmt.Fprintf(env.stderr, "batchtrans translate: %v\n", err)
		}
	}
}

// isRequestError reports errors that concern one text only.
func isRequestError(err error) bool {
	return errors.Is(err, engine.ErrPromptTooLong) || errors.Is(err, engine.ErrBadRequest)
}

func isTerminalReader(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && isTerminal(f)
}

// translateJSON is --json's output object.
type translateJSON struct {
	Text             string `json:"text"`
	PromptIDs        []int  `json:"prompt_ids"`
	OutputIDs        []int  `json:"output_ids"`
	FinishReason     string `json:"finish_reason"`
	PromptTokens     int    `json:"prompt_tokens"`
	CompletionTokens int    `json:"completion_tokens"`
}

func translateOne(ctx context.Context, env *cliEnv, m *engine.Model, o translateOptions, text string) error {
	res, err := m.Generate(ctx, engine.Request{
		Messages: []engine.Message{
			{Role: "system", Content: o.system},
			{Role: "user", Content: text},
		},
		Date:         o.date,
		MaxNewTokens: o.maxNewTokens,
	})
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			return cause
		}
		return err
	}
	if !o.json {
		_, err = fmt.Fprintln(env.stdout, res.Text)
		return err
	}
	b, err := json.Marshal(translateJSON{
		Text: res.Text, PromptIDs: nonNil(res.PromptIDs), OutputIDs: nonNil(res.OutputIDs), FinishReason: res.FinishReason,
		PromptTokens: len(res.PromptIDs), CompletionTokens: len(res.OutputIDs),
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(env.stdout, "%s\n", b)
	return err
}

func nonNil(ids []int) []int {
	if ids == nil {
		return []int{}
	}
	return ids
}
