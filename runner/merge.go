package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/batchtrans/batchtrans/internal/durable"
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
func merge(cfg Config, log *checkpoint.Log, b *builder, sum *Summary) error {
	j := cfg.Job
	idx, err := log.Index()
	if err != nil {
		return err
	}
	defer idx.Close()
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

	out, err := newOutputFile(j.Output.Path)
	if err != nil {
		return err
	}
	defer out.Abort()
	w, err := cfg.Create(out.Writer(), cols)
	if err != nil {
		return fmt.Errorf("create output %s: %w", j.Output.Path, err)
	}
	var errs *durable.File
	var errEnc *json.Encoder
	skip := j.OnError == jobs.OnErrorSkip
	if skip {
		if errs, err = newOutputFile(j.ErrorsPath()); err != nil {
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
		row, ok, err := idx.Get(rec.Index)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("checkpoint %s has no result for %s; rerun to finish it", j.Checkpoint.Path, b.where(rec))
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
	} else if err := os.Remove(j.ErrorsPath()); err == nil {
		// A list of skipped rows from an earlier run under on_error: skip
		// no longer describes this output.
		durable.SyncDir(filepath.Dir(j.ErrorsPath()))
	}
	return nil
}

// newOutputFile starts one of the merge's files, whose renames are crash
// points ("merge.before-rename", "merge.after-rename").
func newOutputFile(path string) (*durable.File, error) {
	f, err := durable.Create(path)
	if err != nil {
		return nil, err
	}
	f.Hook = func(point string) { crashPoint("merge." + point) }
	return f, nil
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
