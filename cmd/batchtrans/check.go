package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/batchtrans/batchtrans/engine/llama"
	"github.com/batchtrans/batchtrans/io/dataset"
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
func checkJob(j *jobs.Job) (plan, error) {
	var p plan
	if err := checkInput(j); err != nil {
		return p, err
	}
	var problems []error
	rd, err := dataset.Open(j.Input.Path, j.Input.Format, datasetOptions(j))
	if err != nil {
		problems = append(problems, fmt.Errorf("open input: %w", err))
	} else {
		p.cols = rd.Columns()
		rd.Close()
		problems = append(problems, checkFields(j, p.cols)...)
		if p.outCols, err = runner.OutputColumns(j, p.cols); err != nil {
			problems = append(problems, err)
		}
	}
	for key, dir := range map[string]string{"output.path": filepath.Dir(j.Output.Path), "checkpoint.path": filepath.Dir(j.Checkpoint.Path)} {
		if err := checkWritable(dir); err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", key, err))
		}
	}
	if p.model, err = inspectModel(j); err != nil {
		problems = append(problems, fmt.Errorf("model: %w", err))
	}
	return p, errors.Join(problems...)
}

// checkInput fails (exit 1) when the input file is missing or unreadable.
func checkInput(j *jobs.Job) error {
	st, err := os.Stat(j.Input.Path)
	if err != nil {
		return fmt.Errorf("input.path: %w", err)
	}
	if st.IsDir() {
		return fmt.Errorf("input.path: %s is a folder, not a file", j.Input.Path)
	}
	return nil
}

// checkFields reports the job's input fields that the input's columns lack.
func checkFields(j *jobs.Job, cols []dataset.Column) []error {
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
		problems = append(problems, fmt.Errorf("input.text_field: %s has no field %q (fields: %s)", j.Input.Path, j.Input.TextField, colNames(cols)))
	}
	if j.Input.IDField != "" && !has(j.Input.IDField) {
		problems = append(problems, fmt.Errorf("input.id_field: %s has no field %q", j.Input.Path, j.Input.IDField))
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
