package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/batchtrans/batchtrans/io/source"
	"github.com/batchtrans/batchtrans/runner"
	"github.com/batchtrans/batchtrans/runner/checkpoint"
)

func init() {
	register(&command{name: "status", summary: "show a job's progress from its checkpoint", run: statusCmd})
}

func statusCmd(ctx context.Context, env *cliEnv, args []string) error {
	j, path, err := jobFromArgs("status", args)
	if err != nil {
		return err
	}
	w := env.stdout
	fmt.Fprintf(w, "job:        %s\n", j.File)
	if dir, ok, err := openShardDir(ctx, j); err != nil {
		return err
	} else if ok {
		defer dir.Close()
		return shardStatus(ctx, w, j, dir)
	}
	fmt.Fprintf(w, "checkpoint: %s\n", j.Checkpoint.Path)
	hdr, st, err := inspectCheckpoint(ctx, j.Checkpoint.Path)
	if errors.Is(err, checkpoint.ErrNoCheckpoint) {
		fmt.Fprintf(w, "state:      not started (run `batchtrans run %s`)\n", path)
		return nil
	}
	if err != nil {
		return err
	}
	total := st.Total
	in, err := openInput(ctx, j)
	if err != nil {
		return err
	}
	if total < 0 {
		if total, _, err = countRows(in); err != nil {
			return err
		}
	}
	state := "stopped (rerun to resume)"
	if st.Done >= total {
		state = "complete"
		if ok, _ := outputExists(ctx, j.Output.Path); !ok {
			state = "all rows done; output not written yet (rerun to write it)"
		}
	}
	if lk, err := checkpoint.Acquire(j.Checkpoint.Path + ".lock"); errors.Is(err, checkpoint.ErrLocked) {
		state = "running (" + err.Error() + ")"
	} else if err == nil {
		lk.Release()
	}
	if d, err := runner.ChangedSince(ctx, j, in, hdr); err == nil && d != "" {
		state += "; the job has changed since the checkpoint was made (" + d + "): a run needs --restart"
	}
	left := max(total-st.Done, 0)
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(st.Done) / float64(total)
	}
	fmt.Fprintf(w, "state:      %s\n", state)
	fmt.Fprintf(w, "rows:       %d done of %d (%.1f%%), %d failed, %d left\n", st.Done, total, pct, runner.Failed(st, j), left)
	if st.Cut > 0 {
		how := "counted as failed (generation.accept_cut: false)"
		if j.Generation.AcceptCut {
			how = "accepted (generation.accept_cut: true)"
		}
		fmt.Fprintf(w, "cut:        %d cut off at generation.max_new_tokens, %s\n", st.Cut, how)
	}
	fmt.Fprintf(w, "tokens:     %d in, %d out\n", st.PromptTokens, st.CompletionTokens)
	fmt.Fprintf(w, "date:       %s (template date, frozen)\n", hdr.Date)
	elapsed := st.LastRow.Sub(st.SessionStart)
	if st.SessionRows > 0 && elapsed > 0 {
		rate := float64(st.SessionRows) / elapsed.Seconds()
		fmt.Fprintf(w, "rate:       %.2f rows/s in the latest run (started %s)\n", rate, st.SessionStart.Local().Format(time.DateTime))
		if left > 0 {
			eta := time.Duration(float64(left) / rate * float64(time.Second)).Round(time.Second)
			fmt.Fprintf(w, "eta:        %s at that rate\n", eta)
		}
	}
	return nil
}

// countRows streams the input to count its rows, and of them the
// unreadable ones (counted in rows too).
func countRows(in *source.Input) (rows, bad int64, err error) {
	rd, err := in.Open()
	if err != nil {
		return 0, 0, fmt.Errorf("open input: %w", err)
	}
	defer rd.Close()
	for {
		rec, err := rd.Read()
		if errors.Is(err, io.EOF) {
			return rows, bad, nil
		}
		if err != nil {
			return rows, bad, fmt.Errorf("read input: %w", err)
		}
		rows++
		if rec.Err != nil {
			bad++
		}
	}
}
