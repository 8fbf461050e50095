package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/batchtrans/batchtrans/engine"
	"github.com/batchtrans/batchtrans/engine/backend"
	"github.com/batchtrans/batchtrans/engine/device"
	"github.com/batchtrans/batchtrans/engine/kernels"
	"github.com/batchtrans/batchtrans/engine/llama"
	"github.com/batchtrans/batchtrans/engine/llama/synth"
	"github.com/batchtrans/batchtrans/internal/procstat"
)

func init() {
	register(&command{name: "bench", summary: "measure load, prefill (warm, median of 3) and decode speed on a model or a synthetic one", run: benchCmd})
}

const benchUsage = "usage: batchtrans bench [--model DIR [--adapter DIR] | --synthetic [--size 1b|small]] [--device cpu|cuda] [--dtype f32|bf16|q8] [--threads N] [--prefill N] [--decode N] [--batch N] [--kernels NAME] [--json] [--cpuprofile FILE]"

// benchSizes are the shapes --synthetic can build: the real Llama-3.2-1B
// shape, and a small one (same structure, a few MB) for quick checks.
var benchSizes = map[string]func() synth.Spec{
	"1b": synth.Llama32_1B,
	"small": func() synth.Spec {
		s := synth.Llama32_1B()
		s.Vocab, s.Hidden, s.Intermediate, s.Layers = 2048, 256, 1024, 2
		s.Heads, s.KVHeads, s.HeadDim = 4, 2, 64
		s.BOS, s.EOS = 1, []int{2}
		return s
	},
}

// benchResult is what bench measures; --json prints it as one object.
type benchResult struct {
	Model     string  `json:"model"` // the folder, or "synthetic-<size>"
	Device    string  `json:"device"`
	Numerics  string  `json:"numerics"`
	DType     string  `json:"dtype"`
	Impl      string  `json:"impl"`
	Threads   int     `json:"threads"`
	Params    int64   `json:"params"`
	WeightsB  int64   `json:"weight_bytes"` // in memory, after the dtype conversion
	LoadS     float64 `json:"load_s"`
	PrefillN  int     `json:"prefill_tokens"`
	PrefillTS float64 `json:"prefill_tok_s"` // the median of PrefillRuns warm runs
	// PrefillRuns is how many prefills were timed after the warm-up one.
	PrefillRuns int     `json:"prefill_runs"`
	DecodeN     int     `json:"decode_tokens"` // per sequence
	DecodeTS    float64 `json:"decode_tok_s"`
	BatchN      int     `json:"batch_sequences"`
	BatchTS     float64 `json:"batch_decode_tok_s"` // all sequences together
	// BandwidthBS is the memory read rate measured on the kernel threads;
	// DecodeBound is that rate over the weight bytes one decode step reads.
	BandwidthBS float64 `json:"bandwidth_bytes_s"`
	DecodeBound float64 `json:"decode_bound_tok_s"`
	// PeakFLOPs is the float32 fused multiply-add rate the kernel threads
	// reach in registers (0 where the kernels have no assembly to measure
	// it); PrefillBound and BatchBound are that rate over the matrix flops
	// of one prompt token (no LM head) and one decoded token (with it):
	// the compute ceilings of prefill and batched decode in float32,
	// attention aside (q8's integer products, and bf16's pair products on
	// AVX512_BF16, can pass them).
	PeakFLOPs    float64 `json:"peak_flops"`
	PrefillBound float64 `json:"prefill_bound_tok_s"`
	BatchBound   float64 `json:"batch_decode_bound_tok_s"`
	// On the GPU: KVPoolB is each GPU's KV cache pool, GemmFLOPs the bf16
	// matrix product rate of the backend's own kernel measured in the same
	// run (PrefillBound and BatchBound derive from it there, and
	// BandwidthBS is a device-to-device copy's bytes read plus written).
	KVPoolB   int64   `json:"kv_pool_bytes,omitempty"`
	GemmFLOPs float64 `json:"gemm_flops,omitempty"`
	// LoadPhasesS is where the GPU's load time went, in seconds a phase
	// (engine/cuda's Phase names: driver, modules, weight_alloc,
	// read_merge, convert, upload, finish); loadOrder lists them in the
	// order they ran.
	LoadPhasesS map[string]float64 `json:"load_phases_s,omitempty"`
	loadOrder   []string
	// GPUProfileMS is the batched decode's milliseconds in each stage of
	// the step (BATCHTRANS_CUDA_PROFILE=1), GPUPrefillProfileMS the timed
	// prefills'.
	GPUProfileMS        map[string]float64 `json:"gpu_profile_ms,omitempty"`
	GPUPrefillProfileMS map[string]float64 `json:"gpu_prefill_profile_ms,omitempty"`
	PeakRSS             int64              `json:"peak_rss_bytes"` // VmHWM; 0 where unknown
	// CPUShare is the process's CPU time over the timed steps divided by
	// their wall time times the thread count: near 1 on an idle machine,
	// lower when other work takes the cores (every speed drops with it).
	// 0 where unknown.
	CPUShare float64 `json:"cpu_share"`
}

// benchCmd measures the engine's speed on random prompts with EOS ignored:
// load time, prefill (one prompt of --prefill tokens fed in one step, timed
// warm: after an untimed prefill of the same length, the median of up to
// benchPrefillRuns runs, each on a fresh state; fewer once the runs reach
// benchPrefillBudget together, as on a CPU), one sequence decoding --decode
// tokens greedily, and --batch sequences decoding --decode tokens each,
// stepped together. Each decode starts after a prompt of benchDecodePrompt
// tokens (prefilled untimed). Without --model it writes a
// Llama-3.2-1B-shaped model with random weights (real safetensors, about
// 2.5 GB for 1b) to a temporary folder, loads it like any model folder, and
// removes it at the end.
//
// The measurements drive the backend's forward step (backend.Net.Forward)
// directly, the same step the engine's scheduler runs with the same row
// stacking, so prompts can be random token ids and EOS can be ignored; the
// tokenizer and chat template are not involved.
func benchCmd(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	model := fs.String("model", "", "Hugging Face model folder (default: a synthetic model)")
	adapter := fs.String("adapter", "", "PEFT LoRA folder merged at load")
	synthetic := fs.Bool("synthetic", false, "bench a model with random weights written to a temporary folder")
	size := fs.String("size", "1b", "synthetic model shape: 1b (Llama-3.2-1B) or small")
	dtype := fs.String("dtype", "bf16", "weights in memory: f32, bf16 or q8")
	dev := fs.String("device", "cpu", "cpu or cuda")
	threads := fs.Int("threads", 0, "threads per matrix product (0: every core)")
	prefill := fs.Int("prefill", 512, "prompt tokens of the prefill measurement (timed warm: the median of up to 3 runs after an untimed one)")
	decode := fs.Int("decode", 64, "tokens each sequence decodes")
	batch := fs.Int("batch", 16, "sequences of the batched decode measurement")
	asJSON := fs.Bool("json", false, "print one JSON object")
	impl := fs.String("kernels", "", "kernel implementation to use (default: the fastest this CPU has)")
	cpuProfile := fs.String("cpuprofile", "", "write a Go CPU profile of the forward steps to this file")
	if err := fs.Parse(args); err != nil {
		return usageError("%v (%s)", err, benchUsage)
	}
	mk, sizeOK := benchSizes[*size]
	dt, dtErr := kernels.ParseDType(*dtype)
	sizeSet := false
	fs.Visit(func(f *flag.Flag) { sizeSet = sizeSet || f.Name == "size" })
	switch {
	case fs.NArg() > 0:
		return usageError("unexpected argument %q (%s)", fs.Arg(0), benchUsage)
	case *synthetic && *model != "":
		return usageError("--synthetic and --model exclude each other (%s)", benchUsage)
	case *model == "" && *adapter != "":
		return usageError("--adapter needs --model (%s)", benchUsage)
	case *model != "" && sizeSet:
		return usageError("--size shapes a synthetic model; drop it with --model (%s)", benchUsage)
	case !sizeOK:
		return usageError("unknown --size %q (want 1b or small)", *size)
	case dtErr != nil:
		return usageError("--dtype: %v", dtErr)
	case *threads < 0:
		return usageError("--threads %d is negative", *threads)
	case *prefill < 1 || *decode < 1 || *batch < 1:
		return usageError("--prefill, --decode and --batch must be positive")
	case *dev != "cpu" && *dev != "cuda":
		return usageError("--device %q: bench runs on cpu or cuda", *dev)
	}
	if *dev == "cuda" {
		if _, err := device.Choose(device.System().Probe(), "cuda", nil); err != nil {
			return withCode(exitUsage, err)
		}
	}
	if *impl != "" {
		if err := kernels.Use(*impl); err != nil {
			return usageError("--kernels: %v", err)
		}
	}
	if *threads > 0 {
		kernels.SetThreads(*threads)
	}
	res := benchResult{Device: *dev, DType: dt.String(), Impl: kernels.Impl(), Threads: kernels.Threads(),
		PrefillN: *prefill, DecodeN: *decode, BatchN: *batch}

	dir := *model
	res.Model = dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "batchtrans-bench-")
		if err != nil {
			return withCode(exitFatal, fmt.Errorf("bench: temporary model folder: %w", err))
		}
		defer os.RemoveAll(tmp)
		env.log.Info("writing a synthetic model", "size", *size, "dir", tmp)
		if err := synth.WriteModel(tmp, mk(), 1); err != nil {
			return withCode(exitFatal, fmt.Errorf("bench: %w", err))
		}
		dir, res.Model = tmp, "synthetic-"+*size
	}
	if err := ctx.Err(); err != nil {
		return withCode(exitInterrupted, err)
	}

	start := time.Now()
	// Steps carry the timed prompt whole, or the batch's decode rows.
	cfg, net, err := engine.LoadBackend(engine.Options{Device: *dev, ModelDir: dir, AdapterDir: *adapter, DType: dt.String(),
		StepTokens: max(*prefill, *batch+benchStepTokens), MaxBatch: *batch + benchStepTokens/benchDecodePrompt,
		GPUKVBytes: benchGPUKVBytes})
	if err != nil {
		return withCode(exitFatal, err)
	}
	defer net.Close()
	res.LoadS = time.Since(start).Seconds()
	res.Params = cfg.ParamCount()
	res.Numerics = net.Numerics()
	if wb, ok := net.(interface{ WeightBytes() int64 }); ok {
		res.WeightsB = wb.WeightBytes()
	}

	b := &bencher{net: net, cfg: cfg, rng: rand.New(rand.NewPCG(1, 2)), stop: env.signals,
		prefillBudget: benchPrefillBudget}
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return withCode(exitFatal, fmt.Errorf("bench: %w", err))
	}
	defer stopProfile()
	if err := b.run(&res, *prefill, *decode, *batch); err != nil {
		if errors.Is(err, errBenchInterrupted) {
			return withCode(exitInterrupted, err)
		}
		return withCode(exitFatal, err)
	}
	if rss, err := procstat.PeakRSS(); err == nil {
		res.PeakRSS = rss
	} else {
		env.log.Warn("peak RSS unknown", "err", err)
	}
	if *dev == "cuda" {
		if err := gpuCeilings(net, &res); err != nil {
			return withCode(exitFatal, fmt.Errorf("bench: %w", err))
		}
		return writeBench(env, res, *asJSON)
	}
	// Bandwidth last, after the peak RSS is read, so its buffer does not
	// count in it. The buffer is far larger than any last-level cache: a
	// 256 MiB one read 194 GB/s on a 16-core Xeon whose 1 GiB rate (what
	// streaming a 1.4-2.5 GB model sees) was 98 GB/s, part of it served
	// from its large L3.
	res.BandwidthBS = kernels.MeasureBandwidth(benchBandwidthBytes, time.Second)
	if res.BandwidthBS > 0 {
		res.DecodeBound = res.BandwidthBS / float64(res.WeightsB)
	}
	res.PeakFLOPs = kernels.MeasurePeakFLOPs(time.Second)
	if res.PeakFLOPs > 0 {
		layers, head := cfg.MatMulParams()
		res.PrefillBound = res.PeakFLOPs / float64(2*layers)
		res.BatchBound = res.PeakFLOPs / float64(2*(layers+head))
	}
	return writeBench(env, res, *asJSON)
}

// writeBench prints the result, as one JSON object with asJSON.
func writeBench(env *cliEnv, res benchResult, asJSON bool) error {
	out := bufio.NewWriter(env.stdout)
	if asJSON {
		if err := writeJSONLine(out, res); err != nil {
			return withCode(exitFatal, err)
		}
	} else {
		printBench(out, res)
	}
	return withCode(exitFatal, out.Flush())
}

// benchGPUKVBytes caps the GPU's KV cache pool, far above what the
// measured sequences need, leaving room for the ceilings' buffers.
const benchGPUKVBytes = 16 << 30

// benchStepTokens is the step size of the untimed prompt prefills.
const benchStepTokens = 512

// benchBandwidthBytes is the buffer the memory-bandwidth bound streams.
const benchBandwidthBytes = 1 << 30

// benchPrefillRuns is the most timed prefills; the median is reported.
const benchPrefillRuns = 3

// benchPrefillBudget ends the timed prefills early: once the runs so far
// took this long together, no more are started.
const benchPrefillBudget = 2 * time.Second

// benchDecodePrompt is the prompt length each decoding sequence starts from.
const benchDecodePrompt = 64

// bencher runs the measured forward steps.
type bencher struct {
	net  backend.Net
	cfg  *llama.Config
	rng  *rand.Rand
	stop <-chan os.Signal
	// prefillBudget ends the timed prefills early (see timePrefill).
	prefillBudget time.Duration

	wall, cpu time.Duration // over the timed steps
	cpuKnown  bool
}

// timed runs fn, adding its wall and process CPU time to the totals, and
// returns its wall time.
func (b *bencher) timed(fn func() error) (time.Duration, error) {
	c0, cerr := procstat.CPUTime()
	start := time.Now()
	err := fn()
	d := time.Since(start)
	c1, cerr1 := procstat.CPUTime()
	b.wall += d
	if cerr == nil && cerr1 == nil {
		b.cpu += c1 - c0
		b.cpuKnown = true
	}
	return d, err
}

var errBenchInterrupted = errors.New("bench interrupted")

func (b *bencher) interrupted() bool {
	select {
	case <-b.stop:
		return true
	default:
		return false
	}
}

// prompt returns n random token ids.
func (b *bencher) prompt(n int) []int {
	ids := make([]int, n)
	vocab := b.cfg.Vocab
	for i := range ids {
		ids[i] = b.rng.IntN(vocab)
	}
	return ids
}

// prefill feeds the prompts to fresh states, in steps of at most
// stepTokens rows as the engine does, and returns the states.
func (b *bencher) prefill(prompts [][]int, stepTokens int) ([]backend.State, error) {
	states := make([]backend.State, len(prompts))
	var steps []backend.Step
	budget := stepTokens
	flush := func() error {
		if len(steps) == 0 {
			return nil
		}
		err := b.net.Forward(steps)
		steps, budget = steps[:0], stepTokens
		return err
	}
	for i, p := range prompts {
		st, err := b.net.NewState()
		if err != nil {
			freeStates(states)
			return nil, err
		}
		states[i] = st
		for fed := 0; fed < len(p); {
			if budget == 0 {
				if err := flush(); err != nil {
					freeStates(states)
					return nil, err
				}
			}
			n := min(len(p)-fed, budget)
			out := backend.NoOutput
			if fed+n == len(p) {
				out = backend.Argmax
			}
			steps = append(steps, backend.Step{State: states[i], Tokens: p[fed : fed+n], Out: out})
			fed += n
			budget -= n
		}
	}
	if err := flush(); err != nil {
		freeStates(states)
		return nil, err
	}
	return states, nil
}

// freeStates frees the states made so far.
func freeStates(states []backend.State) {
	for _, s := range states {
		if s != nil {
			s.Free()
		}
	}
}

// decode steps every state forward n tokens together, each feeding its
// greedy choice, and returns the elapsed time.
func (b *bencher) decode(states []backend.State, n int) (time.Duration, error) {
	defer freeStates(states)
	toks := make([]int, len(states))
	steps := make([]backend.Step, len(states))
	for i, s := range states {
		toks[i] = s.Token()
		steps[i] = backend.Step{State: s, Tokens: toks[i : i+1], Out: backend.Argmax}
	}
	return b.timed(func() error {
		for range n {
			if b.interrupted() {
				return errBenchInterrupted
			}
			if err := b.net.Forward(steps); err != nil {
				return fmt.Errorf("bench: decode step: %w", err)
			}
			for i, s := range states {
				toks[i] = s.Token()
			}
		}
		return nil
	})
}

// timePrefill times prefills of one n-token prompt, each on a fresh
// state fed in one step and freed after, and returns the median time and
// how many were timed: benchPrefillRuns of them, or fewer once the timed
// runs together reach b.prefillBudget (a CPU's 512-token prefill takes
// seconds, and its runs vary less than a GPU's first ones), but always one.
// On the GPU a step's shape is recorded as a graph on its second sighting,
// which is the first timed run after the warm-up; the median of three
// leaves that run out.
func (b *bencher) timePrefill(n int) (time.Duration, int, error) {
	var ds []time.Duration
	var total time.Duration
	for len(ds) < benchPrefillRuns && (len(ds) == 0 || total < b.prefillBudget) {
		if len(ds) > 0 && b.interrupted() {
			return 0, 0, errBenchInterrupted
		}
		p := b.prompt(n)
		d, err := b.timed(func() error {
			st, err := b.prefill([][]int{p}, n)
			freeStates(st)
			return err
		})
		if err != nil {
			return 0, 0, fmt.Errorf("bench: prefill: %w", err)
		}
		ds = append(ds, d)
		total += d
	}
	return median(ds), len(ds), nil
}

// median returns the middle duration of ds (not empty), the mean of the
// two middle ones for an even count.
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 0 {
		return (s[m-1] + s[m]) / 2
	}
	return s[m]
}

func (b *bencher) run(res *benchResult, prefillN, decodeN, batchN int) error {
	maxPos := b.cfg.MaxPositions
	if prefillN > maxPos || benchDecodePrompt+decodeN > maxPos {
		return fmt.Errorf("bench: the model's context of %d positions is shorter than the prompts and decodes asked for", maxPos)
	}
	// Warm up: one short step sizes the workspace and touches the code,
	// then one untimed prefill of the measured length pays that shape's
	// first-use costs (on the GPU: the large-tile and attention-tile
	// kernels' first launches, the KV pages; on the CPU: the workspace's
	// growth to prefillN rows).
	warm, err := b.prefill([][]int{b.prompt(8)}, prefillN)
	if err != nil {
		return fmt.Errorf("bench: warm-up step: %w", err)
	}
	freeStates(warm)
	if warm, err = b.prefill([][]int{b.prompt(prefillN)}, prefillN); err != nil {
		return fmt.Errorf("bench: warm-up prefill: %w", err)
	}
	freeStates(warm)
	if b.interrupted() {
		return errBenchInterrupted
	}

	b.resetProfile()
	d, runs, err := b.timePrefill(prefillN)
	if err != nil {
		return err
	}
	res.GPUPrefillProfileMS = b.profile()
	res.PrefillTS = float64(prefillN) / d.Seconds()
	res.PrefillRuns = runs
	if b.interrupted() {
		return errBenchInterrupted
	}

	states, err := b.prefill([][]int{b.prompt(benchDecodePrompt)}, benchStepTokens)
	if err != nil {
		return fmt.Errorf("bench: decode prompt: %w", err)
	}
	if d, err = b.decode(states, decodeN); err != nil {
		return err
	}
	res.DecodeTS = float64(decodeN) / d.Seconds()

	b.resetProfile()
	prompts := make([][]int, batchN)
	for i := range prompts {
		prompts[i] = b.prompt(benchDecodePrompt)
	}
	if states, err = b.prefill(prompts, benchStepTokens); err != nil {
		return fmt.Errorf("bench: batch prompts: %w", err)
	}
	if d, err = b.decode(states, decodeN); err != nil {
		return err
	}
	res.BatchTS = float64(batchN*decodeN) / d.Seconds()
	if b.cpuKnown && b.wall > 0 {
		res.CPUShare = b.cpu.Seconds() / (b.wall.Seconds() * float64(kernels.Threads()))
	}
	return nil
}

// profiler is a backend that times the stages of its steps (engine/cuda
// with BATCHTRANS_CUDA_PROFILE=1).
type profiler interface {
	Profile() (map[string]float64, map[string]int)
	ResetProfile()
}

func (b *bencher) resetProfile() {
	if p, ok := b.net.(profiler); ok {
		p.ResetProfile()
	}
}

// profile copies the stages' totals so far (nil when not profiling).
func (b *bencher) profile() map[string]float64 {
	if p, ok := b.net.(profiler); ok {
		ms, _ := p.Profile()
		return maps.Clone(ms)
	}
	return nil
}

func printBench(w io.Writer, r benchResult) {
	fmt.Fprintf(w, "model            %s (%.4g M parameters)\n", r.Model, float64(r.Params)/1e6)
	fmt.Fprintf(w, "dtype            %s (%.4g MB of weights)\n", r.DType, float64(r.WeightsB)/1e6)
	if r.Device == "cuda" {
		fmt.Fprintf(w, "device           cuda (%s)\n", r.Numerics)
		fmt.Fprintf(w, "KV cache pool    %.4g GB a GPU\n", float64(r.KVPoolB)/1e9)
	} else {
		fmt.Fprintf(w, "kernels          %s, %d threads\n", r.Impl, r.Threads)
	}
	fmt.Fprintf(w, "load             %.2f s\n", r.LoadS)
	if len(r.loadOrder) > 0 {
		fmt.Fprint(w, "                 (")
		for i, name := range r.loadOrder {
			if i > 0 {
				fmt.Fprint(w, ", ")
			}
			fmt.Fprintf(w, "%s %.2f", name, r.LoadPhasesS[name])
		}
		fmt.Fprintln(w, ")")
	}
	fmt.Fprintf(w, "prefill          %.1f tokens/s (one %d-token prompt, warm, median of %d)\n", r.PrefillTS, r.PrefillN, r.PrefillRuns)
	fmt.Fprintf(w, "decode           %.2f tokens/s (one sequence, %d tokens)\n", r.DecodeTS, r.DecodeN)
	fmt.Fprintf(w, "batched decode   %.1f tokens/s (%d sequences, %d tokens each)\n", r.BatchTS, r.BatchN, r.DecodeN)
	fmt.Fprintf(w, "memory bandwidth %.1f GB/s: decode bound %.2f tokens/s\n", r.BandwidthBS/1e9, r.DecodeBound)
	if r.GemmFLOPs > 0 {
		fmt.Fprintf(w, "bf16 matmul      %.0f TFLOP/s (this backend's kernel): prefill bound %.0f, batched decode bound %.0f tokens/s\n",
			r.GemmFLOPs/1e12, r.PrefillBound, r.BatchBound)
	}
	if r.PeakFLOPs > 0 {
		fmt.Fprintf(w, "float32 FMA peak %.0f GFLOP/s: prefill bound %.0f, batched decode bound %.0f tokens/s\n",
			r.PeakFLOPs/1e9, r.PrefillBound, r.BatchBound)
		switch {
		case r.DType == "q8":
			fmt.Fprintln(w, "                 (float32 bounds: q8's integer products can pass them)")
		case r.DType == "bf16" && (r.Impl == "avx512bf16" || r.Impl == "amx"):
			fmt.Fprintln(w, "                 (float32 bounds: bf16's VDPBF16PS pair products can pass them)")
		}
	}
	if r.CPUShare > 0 {
		fmt.Fprintf(w, "cpu share        %.0f%% of %d threads during the timed steps\n", 100*r.CPUShare, r.Threads)
	}
	if r.PeakRSS > 0 {
		fmt.Fprintf(w, "peak RSS         %.4g MB\n", float64(r.PeakRSS)/1e6)
	}
}
