package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/batchtrans/batchtrans/engine"
	"github.com/batchtrans/batchtrans/engine/device"
	"github.com/batchtrans/batchtrans/io/dataset"
	_ "github.com/batchtrans/batchtrans/io/formats" // registers jsonl, csv, parquet
	"github.com/batchtrans/batchtrans/io/source"
	"github.com/batchtrans/batchtrans/jobs"
	"github.com/batchtrans/batchtrans/runner"
	"github.com/batchtrans/batchtrans/runner/progress"
	"github.com/batchtrans/batchtrans/runner/shard"
)

func init() {
	register(&command{name: "run", summary: "run or resume a translation job", run: runCmd})
}

// runOptions are run's flags.
type runOptions struct {
	job        string
	workers    int
	device     string
	restart    bool
	noProgress bool
	logFormat  string
	shard      string // --shard I/N, auto or auto/N; "" runs the whole job
	cpuProfile string // --cpuprofile FILE
}

// parseJobArgs parses flags given before or after the one JOB.yaml argument.
func parseJobArgs(fs *flag.FlagSet, args []string) (string, error) {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return "", usageError("%v", err)
	}
	if fs.NArg() == 0 {
		return "", usageError("missing JOB.yaml (usage: batchtrans %s JOB.yaml [flags])", fs.Name())
	}
	job := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return "", usageError("%v", err)
	}
	if fs.NArg() > 0 {
		return "", usageError("unexpected arguments %q after %s", fs.Args(), job)
	}
	return job, nil
}

func runCmd(ctx context.Context, env *cliEnv, args []string) error {
	var o runOptions
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.IntVar(&o.workers, "workers", 0, "concurrent rows (default: the job's runtime.workers, else enough to fill the engine's batch)")
	fs.StringVar(&o.device, "device", "", "auto, cpu, cuda or mps (default: the job's runtime.device)")
	fs.BoolVar(&o.restart, "restart", false, "discard the checkpoint and start over")
	fs.BoolVar(&o.noProgress, "no-progress", false, "no progress bar; log progress lines instead")
	fs.StringVar(&o.logFormat, "log-format", "text", "text or json")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a Go CPU profile of the run to this file")
	fs.StringVar(&o.shard, "shard", "", "run one shard: I/N (I from 0), or auto[/N] to read it from the scheduler's environment")
	job, err := parseJobArgs(fs, args)
	if err != nil {
		return err
	}
	o.job = job
	if o.workers < 0 {
		return usageError("--workers must be >= 0, got %d", o.workers)
	}
	log, err := newLogger(env.stderr, o.logFormat)
	if err != nil {
		return usageError("%v", err)
	}
	return runJob(ctx, env, log, o)
}

// jobFromArgs parses the arguments of a command that takes only JOB.yaml
// and loads that job; it returns the path as given too.
func jobFromArgs(command string, args []string) (*jobs.Job, string, error) {
	path, err := parseJobArgs(flag.NewFlagSet(command, flag.ContinueOnError), args)
	if err != nil {
		return nil, "", err
	}
	j, err := loadJob(path)
	return j, path, err
}

// loadJob reads and validates a job file; every problem is a usage error.
func loadJob(path string) (*jobs.Job, error) {
	j, err := jobs.Load(path)
	if err != nil {
		return nil, withCode(exitUsage, err)
	}
	if err := j.Validate(); err != nil {
		return nil, withCode(exitUsage, err)
	}
	return j, nil
}

// openInput resolves the job's input files (globs, lists, URLs) and opens
// each once; a missing file, a glob matching nothing, a missing bucket or
// missing credentials fail here (exit 1).
func openInput(ctx context.Context, j *jobs.Job) (*source.Input, error) {
	in, err := source.Resolve(ctx, j.Input.Path, j.Input.Format, datasetOptions(j))
	if err != nil {
		return nil, err
	}
	if err := in.Check(); err != nil {
		return nil, err
	}
	return in, nil
}

// fingerprintInput opens the job's input and fingerprints the job.
func fingerprintInput(ctx context.Context, j *jobs.Job) (*source.Input, jobs.Fingerprint, error) {
	in, err := openInput(ctx, j)
	if err != nil {
		return nil, nil, err
	}
	fp, err := runner.Fingerprint(ctx, j, in)
	return in, fp, err
}

func datasetOptions(j *jobs.Job) dataset.Options {
	var o dataset.Options
	if r := []rune(j.Input.Delimiter); len(r) == 1 {
		o.Delimiter = r[0]
	}
	return o
}

func runJob(ctx context.Context, env *cliEnv, log *slog.Logger, o runOptions) error {
	stopProfile, err := startCPUProfile(o.cpuProfile)
	if err != nil {
		return withCode(exitUsage, fmt.Errorf("--cpuprofile: %w", err))
	}
	defer stopProfile()
	j, err := loadJob(o.job)
	if err != nil {
		return err
	}
	if o.device != "" {
		j.Runtime.Device = o.device
	}
	var spec *shard.Spec
	if o.shard != "" {
		s, err := shard.Parse(o.shard, os.Getenv)
		if err != nil {
			return withCode(exitUsage, err)
		}
		spec = &s
	}
	// Everything that can be checked without the weights is, before they
	// load: a typo in the input should not wait for gigabytes to be read.
	_, in, err := checkJob(ctx, j)
	if err != nil {
		return err
	}
	fp, err := runner.Fingerprint(ctx, j, in)
	if err != nil {
		return err
	}
	place, err := placeCheckpoint(ctx, log, j, in, fp, spec, o.restart)
	if err != nil {
		return err
	}
	defer place.close()
	if part, done := place.finishedPart(ctx, o.restart); done {
		// A finished shard run again (a resubmitted array, a retried
		// task) ends here, before loading the model.
		log.Info("shard already done; its part is written", "shard", spec.String(), "part", part)
		return nil
	}
	dev, err := device.Choose(device.System().Probe(), j.Runtime.Device, func(line string) { log.Info(line) })
	if err != nil {
		return withCode(exitUsage, err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	drain := make(chan struct{})
	var sig os.Signal
	sigDone := make(chan struct{})
	defer close(sigDone)
	sigSeen := make(chan os.Signal, 1)
	go func() {
		n := 0
		for {
			select {
			case s := <-env.signals:
				n++
				if n == 1 {
					sigSeen <- s
					log.Warn("interrupted: finishing rows in flight and saving the checkpoint (send again to stop at once)", "signal", s.String())
					close(drain)
				} else {
					log.Warn("stopping at once", "signal", s.String())
					cancel()
				}
			case <-sigDone:
				return
			}
		}
	}()

	workers := runner.Workers(o.workers, j, string(dev))
	start := time.Now()
	tr, closeTr, err := loadTranslator(ctx, j, dev, workers, log)
	if err != nil {
		return err
	}
	defer closeTr()
	log.Info("model loaded", "model", j.Model.Path, "adapter", j.Model.Adapter, "dtype", j.Model.DType, "device", string(dev), "load_s", time.Since(start).Seconds())

	counters := progress.NewCounters()
	rep := progress.Start(counters, progress.Options{Bar: isTerminal(env.stderr) && !o.noProgress, Out: env.stderr, Log: log})
	sum, err := runner.Run(ctx, runner.Config{
		Job:         j,
		Translator:  tr,
		Open:        in.Open,
		Create:      outputWriter(j),
		Workers:     workers,
		Numerics:    numericsOf(tr),
		Restart:     o.restart,
		Drain:       drain,
		Counters:    counters,
		Log:         log,
		Fingerprint: fp,
		Shard:       place.shard,
		Mirror:      place.mirror,
	})
	rep.Stop()
	select {
	case sig = <-sigSeen:
	default:
	}
	return finishRun(log, j, o, sum, sig, err, prefillFields(tr))
}

// outputWriter makes the job's output writer over w.
func outputWriter(j *jobs.Job) func(w io.Writer, cols []dataset.Column) (dataset.Writer, error) {
	return func(w io.Writer, cols []dataset.Column) (dataset.Writer, error) {
		return dataset.NewWriter(w, j.Output.Format, cols, dataset.Options{})
	}
}

// finishRun logs the summary and maps the outcome to an exit code.
// prefill holds the engine's prompt-token counters as log fields (none
// when the engine has none).
func finishRun(log *slog.Logger, j *jobs.Job, o runOptions, sum runner.Summary, sig os.Signal, err error, prefill []any) error {
	tokPerS := 0.0
	if sum.Wall > 0 {
		tokPerS = float64(sum.CompletionTokens) / sum.Wall.Seconds()
	}
	switch {
	case errors.Is(err, runner.ErrInterrupted):
		code, name := exitInterrupted, "SIGINT"
		if sig == syscall.SIGTERM {
			code, name = exitTerminated, "SIGTERM"
		}
		fields := append([]any{"complete", false, "rows_done", sum.Good + sum.Failed, "failed", sum.Failed, "cut", sum.Cut, "tokens_in", sum.PromptTokens}, prefill...)
		log.Info("summary", append(fields, "tokens_out", sum.CompletionTokens, "wall_s", sum.Wall.Seconds(), "tokens_per_s", tokPerS)...)
		return withCode(code, fmt.Errorf("interrupted by %s; finished rows are saved in %s; run `batchtrans run %s` again to resume", name, sum.Checkpoint, o.job))
	case err != nil:
		return withCode(exitFatal, err)
	case o.shard != "":
		// A finished shard exits 0 even with failed rows, so that the
		// scheduler does not retry it: its part is written, and merge
		// reports the failed rows (exit 3).
		log.Info("summary", "complete", true, "rows", sum.Rows, "good", sum.Good, "failed", sum.Failed, "resumed", sum.Resumed,
			"tokens_in", sum.PromptTokens, "tokens_out", sum.CompletionTokens, "wall_s", sum.Wall.Seconds(), "tokens_per_s", tokPerS, "part", sum.Output)
		return nil
	}
	n := sum.Failed + sum.Skipped
	fields := []any{"complete", true, "rows", sum.Rows, "good", sum.Good, "failed", sum.Failed, "skipped", sum.Skipped,
		"cut", sum.Cut, "resumed", sum.Resumed, "tokens_in", sum.PromptTokens}
	fields = append(fields, prefill...)
	fields = append(fields, "tokens_out", sum.CompletionTokens, "wall_s", sum.Wall.Seconds(), "tokens_per_s", tokPerS, "output", sum.Output)
	if n > 0 {
		fields = append(fields, "failures_in", runner.FailuresRecordedIn(j))
	}
	log.Info("summary", fields...)
	if n == 0 {
		return nil
	}
	msg := fmt.Sprintf("%d of %d rows failed", n, sum.Rows)
	if sum.Cut > 0 && !j.Generation.AcceptCut {
		msg += fmt.Sprintf(" (%d cut off at generation.max_new_tokens; raise it, or set generation.accept_cut: true to accept them)", sum.Cut)
	}
	return withCode(exitRowsFailed, fmt.Errorf("%s; each is recorded in %s", msg, runner.FailuresRecordedIn(j)))
}

// numericsOf names what makes the translator's bits, for the checkpoint.
func numericsOf(tr runner.Translator) string {
	if m, ok := tr.(*engine.Model); ok {
		return m.Numerics()
	}
	return ""
}

// startCPUProfile writes a Go CPU profile to path until stop is called
// (run's and bench's --cpuprofile); with path "" it profiles nothing.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
