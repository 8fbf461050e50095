package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/batchtrans/batchtrans/engine"
	"github.com/batchtrans/batchtrans/io/blobstore"
	"github.com/batchtrans/batchtrans/io/dataset"
	"github.com/batchtrans/batchtrans/io/source"
	"github.com/batchtrans/batchtrans/jobs"
	"github.com/batchtrans/batchtrans/runner/checkpoint"
	"github.com/batchtrans/batchtrans/runner/mirror"
	"github.com/batchtrans/batchtrans/runner/progress"
	"github.com/batchtrans/batchtrans/runner/shard"
)

// Translator generates one request's text. It must be safe for many
// concurrent callers; *engine.Model is one.
type Translator interface {
	Generate(ctx context.Context, req engine.Request) (engine.Result, error)
}

// The engine's model is the production Translator.
var _ Translator = (*engine.Model)(nil)

// RowError is implemented by errors from a Translator that are the row's
// fault rather than the engine's (engine.ErrPromptTooLong is one too): the row is failed per on_error and the job goes on. Any other
// Translator error stops the job (exit 1) without recording the row.
type RowError interface {
	error
	RowError() bool
}

// Sentinels for callers mapping errors to exit codes.
var (
	// ErrInterrupted: the run stopped (signal) before every row was done;
	// the checkpoint holds every finished row.
	ErrInterrupted = errors.New("interrupted")
	// ErrJobChanged: the checkpoint was made for a different job, input or model.
	ErrJobChanged = errors.New("job changed since the checkpoint was made")
	// ErrRowFailed: a row failed under on_error: fail.
	ErrRowFailed = errors.New("row failed")
	// ErrLocked: another run holds the job's lock.
	ErrLocked = checkpoint.ErrLocked
)

// Workers is a run's rows in flight: n (the --workers flag) when set, else
// the job's runtime.workers, else enough concurrent requests to fill the
// engine's batch on device (engine.DefaultBatch: 16 on the CPU, more on a
// GPU). More workers than the batch only queue; fewer leave batch slots
// idle. It is the one place that rule lives.
func Workers(n int, j *jobs.Job, device string) int {
	if n <= 0 {
		n = j.Runtime.Workers
	}
	if n <= 0 {
		n = engine.DefaultBatch(device)
	}
	return n
}

// Config is one run's parts.
type Config struct {
	Job        *jobs.Job
	Translator Translator
	// Open opens the input afresh (the final merge reads it again).
	Open func() (dataset.Reader, error)
	// Create makes the output's writer over w with these columns.
	Create func(w io.Writer, cols []dataset.Column) (dataset.Writer, error)

	Workers int // 0: Workers(0, job, job's runtime.device)
	// Numerics names what makes the translator's output bits (the
	// engine's backend and dtype); the checkpoint records it, and a resume
	// under other numerics is refused. "" leaves it out.
	Numerics string
	Restart  bool // discard any checkpoint and start over
	// Drain, when closed, stops reading new rows; rows in flight get Grace
	// to finish before they are cancelled. Cancelling ctx stops at once.
	Drain <-chan struct{}
	Grace time.Duration // default 10 s

	Counters *progress.Counters // optional; bumped as rows become durable
	Log      *slog.Logger       // optional
	Now      func() time.Time   // default time.Now

	// Fingerprint is the job's (see Fingerprint); nil: computed from the
	// job's input paths.
	Fingerprint jobs.Fingerprint
	// Shard, when set, runs one shard of the job: its rows only, and its
	// part instead of the output once they are done.
	Shard *Shard
	// Mirror, when set, keeps the checkpoint in object storage: it is
	// pulled into Job.Checkpoint.Path (the local copy) before the run and
	// pushed every Job.Checkpoint.SyncEvery and at the end.
	Mirror *mirror.Mirror
}

// Shard is one shard's share of a sharded job.
type Shard struct {
	Spec  shard.Spec
	Range shard.Range
	Dir   *shard.Dir
	Date  string // the plan's frozen template date
}

// Fingerprint computes the job's fingerprint with its input's digest
// (in: the resolved input; nil resolves the job's input paths).
func Fingerprint(ctx context.Context, j *jobs.Job, in *source.Input) (jobs.Fingerprint, error) {
	if in == nil {
		var err error
		if in, err = source.Resolve(ctx, j.Input.Path, j.Input.Format, dataset.Options{}); err != nil {
			return nil, err
		}
	}
	d, err := in.Digest()
	if err != nil {
		return nil, fmt.Errorf("fingerprint input: %w", err)
	}
	return jobs.Compute(j, d)
}

// Summary is what a run did. Row counts are over the whole job (resumed
// rows included); tokens and wall time are this run's.
type Summary struct {
	Rows, Good, Failed, Skipped    int64
	Cut                            int64 // rows cut off at max_new_tokens: failed or skipped unless accept_cut, else good
	Resumed                        int64 // rows already done when this run started
	PromptTokens, CompletionTokens int64
	Wall                           time.Duration
	Output, ErrorsFile, Checkpoint string
	Complete                       bool // every row done and the output written
	Date                           string
}

// Group commit limits: at most commitRows rows or commitWindow of waiting
// per fsync. The window is short next to a row's translation time, so it
// costs no throughput with a real model and saves thousands of fsyncs a
// second with a fast one.
const (
	commitRows   = 1024
	commitWindow = 20 * time.Millisecond
)

type task struct {
	rec dataset.Record
}

// Run runs or resumes the job. On success every row is done and the output
// is written; Summary.Failed+Skipped > 0 means some rows failed (exit 3).
// When the disk fills, the error says so and how to resume: every row
// checkpointed before is kept, and no partial output is left in place.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	sum, err := run(ctx, cfg)
	if errors.Is(err, syscall.ENOSPC) {
		err = fmt.Errorf("disk full; free some space and run again to resume (finished rows are kept in %s): %w", cfg.Job.Checkpoint.Path, err)
	}
	return sum, err
}

func run(ctx context.Context, cfg Config) (Summary, error) {
	start := time.Now()
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 10 * time.Second
	}
	if cfg.Counters == nil {
		cfg.Counters = progress.NewCounters()
	}
	j := cfg.Job
	workers := Workers(cfg.Workers, j, j.Runtime.Device)
	sum := Summary{Output: j.Output.Path, Checkpoint: j.Checkpoint.Path}
	if cfg.Mirror != nil {
		sum.Checkpoint = cfg.Mirror.URL()
	}
	if cfg.Fingerprint == nil {
		fp, err := Fingerprint(ctx, j, nil)
		if err != nil {
			return sum, err
		}
		cfg.Fingerprint = fp
	}

	dirs := []string{filepath.Dir(j.Checkpoint.Path)}
	if cfg.Shard == nil && !blobstore.IsURL(j.Output.Path) {
		dirs = append(dirs, filepath.Dir(j.Output.Path))
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return sum, fmt.Errorf("create folder: %w", err)
		}
	}
	lock, err := checkpoint.Acquire(j.Checkpoint.Path + ".lock")
	if err != nil {
		return sum, fmt.Errorf("another run of this job is in progress: %w", err)
	}
	defer lock.Release()

	if m := cfg.Mirror; m != nil {
		if cfg.Restart {
			err = m.Reset(ctx)
		} else {
			var n int64
			if n, err = m.Pull(ctx); err == nil && n > 0 {
				cfg.Log.Info("checkpoint downloaded", "checkpoint", m.URL(), "bytes", n, "segments", m.Segments)
			}
		}
		if err != nil {
			return sum, err
		}
	}
	log, err := openCheckpoint(j, cfg)
	if err != nil {
		return sum, err
	}
	defer log.Close()
	date := j.Prompt.Date
	if date == "" {
		date = log.Header().Date
	}
	if cfg.Shard != nil && date != cfg.Shard.Date {
		return sum, fmt.Errorf("%w: the checkpoint's template date %q differs from the shard plan's %q; rerun with --restart (checkpoint %s)", ErrJobChanged, date, cfg.Shard.Date, sum.Checkpoint)
	}
	sum.Date = date
	st := log.Stats()
	sum.Resumed = st.Done
	cfg.Counters.Resumed.Store(st.Done)
	cfg.Counters.Total.Store(st.Total)
	if err := log.StartSession(cfg.Now()); err != nil {
		return sum, err
	}
	if err := log.Sync(); err != nil {
		return sum, err
	}
	b, err := newBuilder(j, date)
	if err != nil {
		return sum, err
	}
	cfg.Log.Info("run", "job", j.File, "workers", workers, "resumed_rows", st.Done, "checkpoint", j.Checkpoint.Path, "date", date)

	var stopPush func() error
	if cfg.Mirror != nil {
		stopPush = pushEvery(ctx, cfg, log)
	}
	total, interrupted, err := translate(ctx, cfg, log, b, workers)
	if stopPush != nil {
		if perr := stopPush(); err == nil && perr != nil {
			err = perr
		}
	}
	s := cfg.Counters.Read(start)
	sum.PromptTokens, sum.CompletionTokens, sum.Wall = s.PromptTokens, s.CompletionTokens, time.Since(start)
	if err != nil {
		return sum, err
	}
	st = log.Stats()
	if interrupted || total < 0 || st.Done < total {
		sum.Rows, sum.Failed, sum.Cut = total, Failed(st, j), st.Cut
		sum.Good = st.Done - sum.Failed
		return sum, ErrInterrupted
	}
	if cfg.Shard != nil {
		sum.Rows, sum.Failed, sum.Cut = total, Failed(st, j), st.Cut
		sum.Good = st.Done - sum.Failed
		sum.Output = cfg.Shard.Dir.Join(shard.PartName(cfg.Shard.Spec))
		cfg.Log.Info("all rows of the shard done; writing its part", "shard", cfg.Shard.Spec.String(), "part", sum.Output)
		if err := writePart(ctx, cfg, log, date); err != nil {
			return sum, err
		}
		sum.Complete = true
		sum.Wall = time.Since(start)
		return sum, nil
	}
	cfg.Log.Info("all rows done; writing the output", "path", j.Output.Path)
	if err := merge(ctx, cfg, log, b, &sum); err != nil {
		return sum, err
	}
	sum.Complete = true
	sum.Wall = time.Since(start)
	return sum, nil
}

// numericsKey is the fingerprint entry of Config.Numerics.
const numericsKey = "numerics"

// Failed is how many of a checkpoint's rows count as failed under the job:
// those with an error, and cut ones unless the job accepts them.
func Failed(st checkpoint.Stats, j *jobs.Job) int64 {
	if j.Generation.AcceptCut {
		return st.Failed
	}
	return st.Failed + st.Cut
}

// FailuresRecordedIn says where a job's failed rows are recorded: the
// output's error field, or the list of skipped rows ("" under on_error:
// fail, which stops at the first).
func FailuresRecordedIn(j *jobs.Job) string {
	switch j.OnError {
	case jobs.OnErrorSkip:
		return j.ErrorsPath()
	case jobs.OnErrorFail:
		return ""
	}
	return fmt.Sprintf("the %s field of %s", j.Output.ErrorField, j.Output.Path)
}

// ChangedSince says what of the job differs from the one the checkpoint
// was made for ("" if nothing), as status reports it (in: the resolved
// input; nil resolves the job's). The numerics are left out: they are the
// device's and build's a run picks, which the job file alone does not say.
func ChangedSince(ctx context.Context, j *jobs.Job, in *source.Input, hdr checkpoint.Header) (string, error) {
	fp, err := Fingerprint(ctx, j, in)
	if err != nil {
		return "", err
	}
	old := maps.Clone(jobs.Fingerprint(hdr.Fingerprint))
	delete(old, numericsKey)
	return fp.Describe(old), nil
}

// openCheckpoint opens the job's checkpoint, or makes one, and checks that
// it belongs to this job.
func openCheckpoint(j *jobs.Job, cfg Config) (*checkpoint.Log, error) {
	fp := maps.Clone(cfg.Fingerprint)
	if cfg.Numerics != "" {
		fp[numericsKey] = cfg.Numerics
	}
	if !cfg.Restart {
		log, err := checkpoint.Open(j.Checkpoint.Path)
		switch {
		case err == nil:
			if log.TornBytes > 0 {
				cfg.Log.Warn("checkpoint had a torn tail from an interrupted write; cut it off", "bytes", log.TornBytes)
			}
			old := jobs.Fingerprint(log.Header().Fingerprint)
			if diff := fp.Diff(old); len(diff) > 0 {
				log.Close()
				hint := "rerun with --restart to start over"
				if slices.Contains(diff, numericsKey) {
					hint = fmt.Sprintf("the checkpoint's rows were made with other numerics (%s); resume on that device and build (--device), or rerun with --restart to start over", old[numericsKey])
				}
				return nil, fmt.Errorf("%w: %s; %s (checkpoint %s)", ErrJobChanged, fp.Describe(old), hint, j.Checkpoint.Path)
			}
			return log, nil
		case !errors.Is(err, checkpoint.ErrNoCheckpoint):
			return nil, err
		}
	}
	date := j.Prompt.Date
	if date == "" && cfg.Shard != nil {
		date = cfg.Shard.Date
	}
	if date == "" {
		date = cfg.Now().Format("02 Jan 2006")
	}
	return checkpoint.Create(j.Checkpoint.Path, checkpoint.Header{Fingerprint: fp, Date: date, Created: cfg.Now().UTC()})
}

// finished is a row ready for the checkpoint, with its failure when it
// failed (a cut row that the job does not accept keeps its text but fails).
type finished struct {
	row  checkpoint.Row
	fail *RowFailure
}

// translateRow finishes one row: a result to checkpoint, nil if it was
// cancelled in flight, or an error that stops the job (an engine failure,
// or a row failure under on_error: fail).
func translateRow(ctx context.Context, cfg Config, b *builder, rec dataset.Record) (*finished, error) {
	done := &finished{row: checkpoint.Row{Index: rec.Index, Line: rec.Line, ID: fmt.Sprint(rec.Index)}}
	fail := func(f *RowFailure) (*finished, error) {
		if cfg.Job.OnError == jobs.OnErrorFail {
			return nil, fmt.Errorf("%w: %w", ErrRowFailed, f)
		}
		if done.row.Text == nil {
			done.row.Err = f.Error()
		}
		done.row.Time = cfg.Now().UnixMilli()
		done.fail = f
		return done, nil
	}
	if rec.Err != nil {
		return fail(b.failure(rec, "", "", rec.Err.Error()))
	}
	id, f := b.rowID(rec)
	if f != nil {
		return fail(f)
	}
	done.row.ID = id
	req, f := b.request(rec, id)
	if f != nil {
		return fail(f)
	}
	res, err := cfg.Translator.Generate(ctx, req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil
		}
		var re RowError
		if errors.Is(err, engine.ErrPromptTooLong) || (errors.As(err, &re) && re.RowError()) {
			return fail(b.failure(rec, id, "", err.Error()))
		}
		return nil, fmt.Errorf("translate %s: %w", b.where(rec), err)
	}
	text := res.Text
	r := &done.row
	r.Text, r.Finish = &text, res.FinishReason
	r.PromptTokens, r.CompletionTokens = len(res.PromptIDs), len(res.OutputIDs)
	if r.Cut() && !cfg.Job.Generation.AcceptCut {
		return fail(b.cutOff(rec, id, text))
	}
	r.Time = cfg.Now().UnixMilli()
	return done, nil
}

// countRows counts the input's rows (bad ones included) until ctx ends.
func countRows(ctx context.Context, open func() (dataset.Reader, error)) (int64, error) {
	rd, err := open()
	if err != nil {
		return 0, err
	}
	defer rd.Close()
	return dataset.CountRows(ctx, rd)
}
