package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/batchtrans/batchtrans/engine/llama"
	"github.com/batchtrans/batchtrans/io/blobstore"
	"github.com/batchtrans/batchtrans/io/dataset"
	"github.com/batchtrans/batchtrans/io/source"
	"github.com/batchtrans/batchtrans/jobs"
	"github.com/batchtrans/batchtrans/runner"
)

// plan is what checkJob found without loading any weights.
type plan struct {
	cols, outCols []dataset.Column
	model         *llama.Info // nil if the model folder failed its check
}

// checkJob runs the checks that need no weights, for validate and for run
// before it loads the model: the input opens and has the text (and id)
// field, the output can be made from it, the output and checkpoint folders
// are writable, and the model folder holds a complete model (headers
// only). It returns every problem at once; a missing input stops it first.
func checkJob(ctx context.Context, j *jobs.Job) (plan, *source.Input, error) {
	var p plan
	in, err := openInput(ctx, j)
	if err != nil {
		return p, nil, err
	}
	var problems []error
	if p.cols, err = in.Columns(); err != nil {
		p.cols = nil
		problems = append(problems, fmt.Errorf("open input: %w", err))
	} else {
		problems = append(problems, checkFields(j, in, p.cols)...)
		if p.outCols, err = runner.OutputColumns(j, p.cols); err != nil {
			problems = append(problems, err)
		}
	}
	for key, path := range map[string]string{"output.path": j.Output.Path, "checkpoint.path": j.Checkpoint.Path} {
		if blobstore.IsURL(path) {
			continue // a bucket is checked when the run first writes to it
		}
		if err := checkWritable(filepath.Dir(path)); err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", key, err))
		}
	}
	if p.model, err = inspectModel(j); err != nil {
		problems = append(problems, fmt.Errorf("model: %w", err))
	}
	return p, in, errors.Join(problems...)
}

// checkFields reports the job's input fields that the input's columns lack.
func checkFields(j *jobs.Job, in *source.Input, cols []dataset.Column) []error {
	has := func(name string) bool {
		for _, c := range cols {
			if c.Name == name {
				return true
			}
		}
		return false
	}
	var problems []error
	if !has(j.Input.TextField) {
		problems = append(problems, fmt.Errorf("input.text_field: %s has no field %q (fields: %s)", in, j.Input.TextField, colNames(cols)))
	}
	if j.Input.IDField != "" && !has(j.Input.IDField) {
		problems = append(problems, fmt.Errorf("input.id_field: %s has no field %q", in, j.Input.IDField))
	}
	return problems
}

// checkWritable reports whether files can be made in dir, or, while dir
// does not exist yet, in the nearest folder above it that does (the run
// creates the rest). It leaves nothing behind.
func checkWritable(dir string) error {
	for {
		st, err := os.Stat(dir)
		if err == nil {
			if !st.IsDir() {
				return fmt.Errorf("%s is not a folder", dir)
			}
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		up := filepath.Dir(dir)
		if up == dir {
			return err
		}
		dir = up
	}
	f, err := os.CreateTemp(dir, ".batchtrans-check-*")
	if err != nil {
		return fmt.Errorf("folder %s is not writable: %w", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}
