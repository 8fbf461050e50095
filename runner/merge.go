package runner

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"gocloud.dev/blob"

	"github.com/batchtrans/batchtrans/internal/durable"
	"github.com/batchtrans/batchtrans/io/blobstore"
	"github.com/batchtrans/batchtrans/io/dataset"
	"github.com/batchtrans/batchtrans/jobs"
	"github.com/batchtrans/batchtrans/runner/checkpoint"
)

// resultColumns is how many columns the run adds after the kept ones.
const resultColumns = 3

// OutputColumns is the output's schema for an input's columns: the kept
// input fields (all by default) in input order, or in keep's order, then
// the translation, error and finish reason fields.
func OutputColumns(j *jobs.Job, in []dataset.Column) ([]dataset.Column, error) {
	var cols []dataset.Column
	if j.Output.Keep == nil {
		for _, c := range in {
			if j.Output.IsResultField(c.Name) {
				return nil, fmt.Errorf("input field %q clashes with output.field, error_field or finish_reason_field; rename one or list output.keep", c.Name)
			}
			cols = append(cols, c)
		}
	} else {
		for _, k := range j.Output.Keep {
			found := false
			for _, c := range in {
				if c.Name == k {
					cols, found = append(cols, c), true
					break
				}
			}
			if !found {
				return nil, fmt.Errorf("output.keep: the input has no field %q", k)
			}
		}
	}
	return append(cols,
		dataset.Column{Name: j.Output.Field, Kind: dataset.String},
		dataset.Column{Name: j.Output.ErrorField, Kind: dataset.String},
		dataset.Column{Name: j.Output.FinishReasonField, Kind: dataset.String}), nil
}

// errorLine is one line of OUTPUT.errors.jsonl under on_error: skip.
type errorLine struct {
	Row   int64  `json:"row"`
	ID    string `json:"id"`
	Line  int64  `json:"line"`
	Error string `json:"error"`
}

// merge writes the output: the input re-read in order, each row joined with
// its checkpointed result, into a temporary file renamed into place.
func merge(ctx context.Context, cfg Config, log *checkpoint.Log, b *builder, sum *Summary) error {
	idx, err := log.Index()
	if err != nil {
		return err
	}
	defer idx.Close()
	return writeOutput(ctx, cfg, b, sum, func(rec dataset.Record) (checkpoint.Row, error) {
		row, ok, err := idx.Get(rec.Index)
		if err == nil && !ok {
			err = fmt.Errorf("checkpoint %s has no result for %s; rerun to finish it", cfg.Job.Checkpoint.Path, b.where(rec))
		}
		return row, err
	}, nil)
}

// writeOutput writes the output (and the errors file under on_error:
// skip): the input read in order, each record joined with its result from
// result, into temporary files committed only when whole, and only if
// done (when not nil) finds nothing wrong once every row is written.
func writeOutput(ctx context.Context, cfg Config, b *builder, sum *Summary, result func(dataset.Record) (checkpoint.Row, error), done func() error) error {
	j := cfg.Job
	rd, err := cfg.Open()
	if err != nil {
		return fmt.Errorf("open input: %w", err)
	}
	defer rd.Close()
	cols, err := OutputColumns(j, rd.Columns())
	if err != nil {
		return err
	}
	keep := cols[:len(cols)-resultColumns]

	out, err := newOutputFile(ctx, j.Output.Path)
	if err != nil {
		return err
	}
	defer out.Abort()
	w, err := cfg.Create(out.Writer(), cols)
	if err != nil {
		return fmt.Errorf("create output %s: %w", j.Output.Path, err)
	}
	var errs outputFile
	var errEnc *json.Encoder
	skip := j.OnError == jobs.OnErrorSkip
	if skip {
		if errs, err = newOutputFile(ctx, j.ErrorsPath()); err != nil {
			return err
		}
		defer errs.Abort()
		errEnc = json.NewEncoder(errs.Writer())
	}
	fields := make([]dataset.Field, len(cols))
	for i, c := range cols {
		fields[i].Name = c.Name
	}
	*sum = Summary{Resumed: sum.Resumed, PromptTokens: sum.PromptTokens, CompletionTokens: sum.CompletionTokens,
		Wall: sum.Wall, Output: sum.Output, Checkpoint: sum.Checkpoint, Date: sum.Date}
	for {
		rec, err := rd.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read input: %w", err)
		}
		sum.Rows++
		row, err := result(rec)
		if err != nil {
			return err
		}
		failure := row.Err
		if row.Cut() {
			sum.Cut++
			if !j.Generation.AcceptCut {
				failure = b.cutOff(rec, row.ID, *row.Text).Error()
			}
		}
		if failure != "" {
			switch j.OnError {
			case jobs.OnErrorFail:
				return fmt.Errorf("%w: %s (recorded by an earlier run)", ErrRowFailed, failure)
			case jobs.OnErrorSkip:
				sum.Skipped++
				if err := errEnc.Encode(errorLine{Row: row.Index, ID: row.ID, Line: row.Line, Error: failure}); err != nil {
					return fmt.Errorf("write %s: %w", j.ErrorsPath(), err)
				}
				continue
			}
			sum.Failed++
		} else {
			sum.Good++
		}
		for i, c := range keep {
			fields[i].Value, _ = field(rec, c.Name)
		}
		n := len(keep)
		fields[n].Value, fields[n+1].Value, fields[n+2].Value = nil, nil, nil
		if row.Text != nil {
			fields[n].Value = *row.Text // a cut row's partial text too
		}
		if failure != "" {
			fields[n+1].Value = failure
		}
		if row.Finish != "" {
			fields[n+2].Value = row.Finish
		}
		if err := w.Write(fields); err != nil {
			return fmt.Errorf("write output %s: %w", j.Output.Path, err)
		}
		if sum.Rows == 1 {
			crashPoint("merge.first-row")
		}
	}
	if done != nil {
		if err := done(); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("write output %s: %w", j.Output.Path, err)
	}
	if err := out.Commit(); err != nil {
		return err
	}
	if skip {
		if err := errs.Commit(); err != nil {
			return err
		}
		sum.ErrorsFile = j.ErrorsPath()
	} else {
		// A list of skipped rows from an earlier run under on_error: skip
		// no longer describes this output.
		removeOutput(ctx, j.ErrorsPath())
	}
	return nil
}

// outputFile is one of the merge's files being written: it appears only
// when Commit returns; Abort (always deferred) drops it unless committed.
// *durable.File is the local one.
type outputFile interface {
	Writer() io.Writer
	Commit() error
	Abort()
}

// newOutputFile starts one of the merge's files at a local path or an
// object URL; its commit's steps are crash points ("merge.before-rename",
// "merge.after-rename").
func newOutputFile(ctx context.Context, path string) (outputFile, error) {
	if blobstore.IsURL(path) {
		return newOutputObject(ctx, path)
	}
	f, err := durable.Create(path)
	if err != nil {
		return nil, err
	}
	f.Hook = func(point string) { crashPoint("merge." + point) }
	return f, nil
}

// removeOutput removes a stale output file or object, if there is one.
func removeOutput(ctx context.Context, path string) {
	if blobstore.IsURL(path) {
		if b, key, err := blobstore.Open(ctx, path); err == nil {
			b.Delete(ctx, key)
		}
		return
	}
	if err := os.Remove(path); err == nil {
		durable.SyncDir(filepath.Dir(path))
	}
}

// outputObject is an object being uploaded. The object stores make an
// upload visible only when it completes (S3's multipart upload is
// completed, GCS's resumable upload finalised, Azure's block list
// committed, all at Close); cancelling the upload's context abandons it,
// so a half-written output never appears, and an earlier output stays
// readable until the new one replaces it. That is the temporary object;
// a copy to the final key would add nothing but a second write (and, on
// S3, a 5 GB limit on single-request copies).
type outputObject struct {
	url    string
	w      *blob.Writer
	bw     *bufio.Writer
	cancel context.CancelFunc
	done   bool
}

func newOutputObject(ctx context.Context, url string) (*outputObject, error) {
	b, key, err := blobstore.Open(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("create output: %w", err)
	}
	wctx, cancel := context.WithCancel(ctx)
	w, err := b.NewWriter(wctx, key, nil)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("create output %s: %w", url, err)
	}
	return &outputObject{url: url, w: w, bw: bufio.NewWriterSize(w, 1<<16), cancel: cancel}, nil
}

func (o *outputObject) Writer() io.Writer { return o.bw }

func (o *outputObject) Commit() error {
	if err := o.bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", o.url, err)
	}
	crashPoint("merge.before-rename")
	o.done = true
	err := o.w.Close()
	o.cancel()
	if err != nil {
		return fmt.Errorf("write %s: %w", o.url, err)
	}
	crashPoint("merge.after-rename")
	return nil
}

func (o *outputObject) Abort() {
	if !o.done {
		o.cancel()
		o.w.Close()
	}
}

// CrashHook, when set, is called at named points of the final merge
// ("merge.first-row", "merge.before-rename", "merge.after-rename") and of
// the checkpoint's group commit ("commit.before-sync", "commit.after-sync").
// It exists so crash tests can kill the process at exact moments; normal
// builds never set it.
var CrashHook func(point string)

func crashPoint(name string) {
	if CrashHook != nil {
		CrashHook(name)
	}
}
