package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/batchtrans/batchtrans/engine/device"
	"github.com/batchtrans/batchtrans/engine/llama"
	"github.com/batchtrans/batchtrans/io/dataset"
	"github.com/batchtrans/batchtrans/runner"
)

func init() {
	register(&command{name: "validate", summary: "check a job file, its input and model; print the plan", run: validateCmd})
}

func validateCmd(ctx context.Context, env *cliEnv, args []string) error {
	j, _, err := jobFromArgs("validate", args)
	if err != nil {
		return err
	}
	if err := checkInput(j); err != nil {
		return err
	}
	rd, err := dataset.Open(j.Input.Path, j.Input.Format, datasetOptions(j))
	if err != nil {
		return fmt.Errorf("open input: %w", err)
	}
	defer rd.Close()
	cols := rd.Columns()
	var problems []error
	has := func(name string) bool {
		for _, c := range cols {
			if c.Name == name {
				return true
			}
		}
		return false
	}
	if !has(j.Input.TextField) {
		problems = append(problems, fmt.Errorf("input.text_field: %s has no field %q (fields: %s)", j.Input.Path, j.Input.TextField, colNames(cols)))
	}
	if j.Input.IDField != "" && !has(j.Input.IDField) {
		problems = append(problems, fmt.Errorf("input.id_field: %s has no field %q", j.Input.Path, j.Input.IDField))
	}
	outCols, err := runner.OutputColumns(j, cols)
	if err != nil {
		problems = append(problems, err)
	}
	var rows, bad int64
	for {
		rec, err := rd.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			problems = append(problems, fmt.Errorf("read input: %w", err))
			break
		}
		rows++
		if rec.Err != nil {
			bad++
		}
	}
	info, err := llama.Inspect(j.Model.Path, j.Model.Adapter)
	if err != nil {
		problems = append(problems, fmt.Errorf("model: %w", err))
	}
	var logLines []string
	dev, err := device.Choose(device.System().Probe(), j.Runtime.Device, func(s string) { logLines = append(logLines, s) })
	if err != nil {
		if len(problems) == 0 {
			return withCode(exitUsage, err)
		}
		problems = append(problems, err)
	}
	if len(problems) > 0 {
		return errors.Join(problems...)
	}

	w := env.stdout
	fmt.Fprintf(w, "job:     %s (ok)\n", j.File)
	fmt.Fprintf(w, "input:   %s (%s), %d rows", j.Input.Path, j.Input.Format, rows)
	if bad > 0 {
		fmt.Fprintf(w, ", %d unreadable (handled per on_error: %s)", bad, j.OnError)
	}
	fmt.Fprintf(w, "\nfields:  %s; translating %q", colNames(cols), j.Input.TextField)
	if j.Input.IDField != "" {
		fmt.Fprintf(w, ", id %q", j.Input.IDField)
	}
	fmt.Fprintf(w, "\noutput:  %s (%s): %s\n", j.Output.Path, j.Output.Format, colNames(outCols))
	c := info.Config
	fmt.Fprintf(w, "model:   %s: %d layers, hidden %d, %d heads (%d kv), vocab %d, context %d, %.2fB params, %s on disk -> %s in memory\n",
		j.Model.Path, c.Layers, c.Hidden, c.Heads, c.KVHeads, c.Vocab, c.MaxPositions, float64(info.Params)/1e9, info.SourceDType, j.Model.DType)
	if a := info.Adapter; a != nil {
		fmt.Fprintf(w, "adapter: %s: LoRA rank %d, alpha %g, %d modules (%s)\n", a.Dir, a.Rank, a.Alpha, a.Modules, strings.Join(a.Targets, ", "))
	}
	workers := runner.Workers(0, j, string(dev))
	fmt.Fprintf(w, "device:  %s (requested %s)", dev, j.Runtime.Device)
	for _, l := range logLines {
		fmt.Fprintf(w, "; %s", l)
	}
	fmt.Fprintf(w, "\nrun:     %d workers, on_error %s, checkpoint %s\n", workers, j.OnError, j.Checkpoint.Path)
	return nil
}

func colNames(cols []dataset.Column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name + ":" + c.Kind.String()
	}
	return strings.Join(names, ", ")
}
