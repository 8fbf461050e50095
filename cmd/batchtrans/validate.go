package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/batchtrans/batchtrans/engine/device"
	"github.com/batchtrans/batchtrans/io/dataset"
	"github.com/batchtrans/batchtrans/io/source"
	"github.com/batchtrans/batchtrans/jobs"
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
	p, in, err := checkJob(ctx, j)
	var problems []error
	if err != nil {
		problems = append(problems, err)
	}
	var rows, bad int64
	if p.cols != nil {
		if rows, bad, err = countRows(in); err != nil {
			problems = append(problems, err)
		}
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
	printPlan(env.stdout, j, in, p, rows, bad, dev, logLines)
	return nil
}

// printPlan prints what validate found: the job's input, output, model,
// device and run settings.
func printPlan(w io.Writer, j *jobs.Job, in *source.Input, p plan, rows, bad int64, dev device.Device, devLog []string) {
	cols, outCols, info := p.cols, p.outCols, p.model
	fmt.Fprintf(w, "job:     %s (ok)\n", j.File)
	fmt.Fprintf(w, "input:   %s (%s), %d rows", in, j.Input.Format, rows)
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
	fmt.Fprintf(w, "device:  %s (requested %s)", dev, j.Runtime.Device)
	for _, l := range devLog {
		fmt.Fprintf(w, "; %s", l)
	}
	cut := "fail"
	if j.Generation.AcceptCut {
		cut = "accepted"
	}
	fmt.Fprintf(w, "\nrun:     %d workers, on_error %s, rows cut at max_new_tokens %d %s, checkpoint %s\n",
		runner.Workers(0, j, string(dev)), j.OnError, j.Generation.MaxNewTokens, cut, j.Checkpoint.Path)
}

func colNames(cols []dataset.Column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name + ":" + c.Kind.String()
	}
	return strings.Join(names, ", ")
}
