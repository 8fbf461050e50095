package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// llamaModelDir makes a model folder holding the Llama 3 tokenizer.json.
func llamaModelDir(t *testing.T) string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "engine", "tokenizer", "testdata", "llama3", "tokenizer.json.gz"))
	require.NoError(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	require.NoError(t, err)
	data, err := io.ReadAll(zr)
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tokenizer.json"), data, 0o644))
	return dir
}

func runTokenize(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	env := &cliEnv{stdin: strings.NewReader(stdin), stdout: &out, stderr: io.Discard, log: slog.New(slog.DiscardHandler)}
	err := tokenizeCmd(t.Context(), env, args)
	return out.String(), err
}

func TestTokenizeCommand(t *testing.T) {
	dir := llamaModelDir(t)
	cases := []struct {
		name  string
		stdin string
		args  []string
		want  string
		code  int
		err   string
	}{
		{"literal text", "", []string{"--model", dir, "Hello world<|eot_id|>"}, "[9906,1917,27,91,68,354,851,91,29]\n", 0, ""},
		{"special text", "", []string{"--model", dir, "--special", "Hello", "world<|eot_id|>"}, "[9906,1917,128009]\n", 0, ""},
		{"stdin text", "Hello world", []string{"--model", dir}, "[9906,1917]\n", 0, ""},
		{"jsonl", "{\"text\":\"Hello\"}\r\n{\"text\":\"\"}\n{\"text\":\"<|eot_id|>\",\"id\":3}", []string{"--model", dir, "--jsonl", "--special"},
			"{\"ids\":[9906]}\n{\"ids\":[]}\n{\"ids\":[128009]}\n", 0, ""},
		{"jsonl bad line", "{\"text\":\"Hello\"}\nnot json\n{\"text\":\"x\"}\n", []string{"--model", dir, "--jsonl"}, "{\"ids\":[9906]}\n", exitFatal, "stdin line 2"},
		{"jsonl missing field", "{\"txt\":\"Hello\"}\n", []string{"--model", dir, "--jsonl"}, "", exitFatal, "stdin line 1: field \"text\""},
		{"jsonl text not a string", "{\"text\":5}\n", []string{"--model", dir, "--jsonl"}, "", exitFatal, "stdin line 1"},
		{"no model", "", []string{"x"}, "", exitUsage, "--model is required"},
		{"jsonl with text", "", []string{"--model", dir, "--jsonl", "x"}, "", exitUsage, "drop the TEXT"},
		{"unknown flag", "", []string{"--nope"}, "", exitUsage, "flag provided but not defined"},
		{"model without tokenizer", "", []string{"--model", t.TempDir(), "x"}, "", exitFatal, "tokenizer.json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := runTokenize(t, c.stdin, c.args...)
			assert.Equal(t, c.want, out)
			assert.Equal(t, c.code, exitCode(err))
			if c.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), c.err)
			}
		})
	}
}
