package runner

import (
	"fmt"
	"log/slog"
)

// RowFailure is why one row failed and where it is. Its message is what
// the output's error field, OUTPUT.errors.jsonl and the log say:
// "data/in.jsonl line 7 (row 6): field "text": missing text field".
type RowFailure struct {
	File string // the input as the job file wrote it
	Line int64  // 1-based line; 0 where the format has none (Parquet)
	Row  int64  // 0-based row number
	// InFile is, for a Parquet file of a many-file input, the row's
	// 1-based place within File (Row counts across the files); else 0.
	InFile int64
	ID     string // the row's id ("" when it could not be read)
	Field  string // the input field at fault; "" when the whole row is bad
	Reason string
}

func (f *RowFailure) Error() string {
	if f.Field == "" {
		return f.Place() + ": " + f.Reason
	}
	return fmt.Sprintf("%s: field %q: %s", f.Place(), f.Field, f.Reason)
}

// Place names the row: "data/in.jsonl line 7 (row 6)", or "in.parquet row 6",
// or in a many-file input "data/part-2.parquet row 5 (input row 1204)".
func (f *RowFailure) Place() string {
	if f.InFile > 0 {
		return fmt.Sprintf("%s row %d (input row %d)", f.File, f.InFile-1, f.Row)
	}
	if f.Line <= 0 {
		return fmt.Sprintf("%s row %d", f.File, f.Row)
	}
	return fmt.Sprintf("%s line %d (row %d)", f.File, f.Line, f.Row)
}

// attrs are the failure's structured log fields.
func (f *RowFailure) attrs() []any {
	a := []any{"file", f.File}
	if f.Line > 0 {
		a = append(a, "line", f.Line)
	}
	a = append(a, "row", f.Row)
	if f.ID != "" {
		a = append(a, "id", f.ID)
	}
	if f.Field != "" {
		a = append(a, "field", f.Field)
	}
	return append(a, "reason", f.Reason)
}

// LoggedFailures is how many failed rows a run logs one by one; past it,
// the progress lines and the summary carry the count, so a million bad rows
// cannot flood the log.
const LoggedFailures = 20

// failureLog logs a run's failed rows, the first LoggedFailures in full.
// It is owned by the runner's writer goroutine.
type failureLog struct {
	log    *slog.Logger
	n      int
	record string // where every failed row is recorded, for the last line
}

func (l *failureLog) add(f *RowFailure) {
	l.n++
	switch {
	case l.n <= LoggedFailures:
		l.log.Warn("row failed", f.attrs()...)
	case l.n == LoggedFailures+1:
		l.log.Warn(fmt.Sprintf("more rows failed; after the first %d they are only counted (the progress lines' failed)", LoggedFailures),
			"recorded_in", l.record)
	}
}
