// Package duckcheck runs DuckDB (the npm package @duckdb/node-api, through
// node) for the io/ tests: an independent engine that reads the files the
// format writers produce and writes files the readers must read. `make
// deps` installs it with `npm ci` in this folder. The helpers fail the
// test, never skip it, when node or the package is missing.
package duckcheck

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Result is a query's result as DuckDB's JSON conversion gives it: BIGINT
// and other wide integers as decimal strings, DOUBLE as numbers, VARCHAR
// as strings, NULL as nil, BOOLEAN as bools.
type Result struct {
	Columns []string `json:"columns"`
	Types   []string `json:"types"`
	Rows    [][]any  `json:"rows"`
}

// Dir returns the folder holding duck.mjs and its node_modules.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// Query runs the SQL statements in one in-memory DuckDB and returns the
// last one's result. Paths in the SQL should be absolute.
func Query(t testing.TB, sql ...string) Result {
	t.Helper()
	all := QueryAll(t, sql...)
	return all[len(all)-1]
}

// QueryAll runs the SQL statements in one in-memory DuckDB (one node
// process) and returns every statement's result.
func QueryAll(t testing.TB, sql ...string) []Result {
	t.Helper()
	if len(sql) == 0 {
		t.Fatal("duckcheck: no SQL")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed (the io tests read their files back with DuckDB through node; .ci/run installs it): %v", err)
	}
	dir := Dir()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@duckdb", "node-api")); err != nil {
		t.Fatalf("@duckdb/node-api is not installed in %s: run `make deps`", dir)
	}
	cmd := exec.CommandContext(t.Context(), node, append([]string{filepath.Join(dir, "duck.mjs")}, sql...)...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("duckdb: %v\nSQL: %s\n%s", err, strings.Join(sql, "; "), stderr.String())
	}
	var res []Result
	dec := json.NewDecoder(&stdout)
	dec.UseNumber()
	if err := dec.Decode(&res); err != nil || len(res) != len(sql) {
		t.Fatalf("duckdb output: %d results for %d statements: %v", len(res), len(sql), err)
	}
	return res
}

// Quote returns s as a SQL string literal.
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
