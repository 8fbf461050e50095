package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "out.jsonl")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	return p
}

func TestRunScoresAndShowsRows(t *testing.T) {
	// Row 1 is perfect, row 2 failed (null translation: an empty
	// hypothesis). Statistics summed: order 1 "abc" 3/3 of ref 3+3, order 2
	// 2/2 of 2+2, order 3 1/1 of 1+1 -> P = 1, R = 1/2, F = 5*0.5/(4+0.5).
	p := writeFile(t, `{"id":"r1","en":"abc","de":"abc","translation":"abc"}
{"id":"r2","en":"xyz","de":"abd","translation":null,"error":"boom"}
`)
	var out, errOut bytes.Buffer
	code := run([]string{"-show", "2", p}, &out, &errOut)
	require.Equal(t, 0, code, errOut.String())
	s := strings.Join(strings.Fields(out.String()), " ")
	assert.Contains(t, s, "2 rows, 1 without a translation")
	assert.Contains(t, s, "[1/2] line 1, id r1 en: abc de (human): abc translation: abc [chrF 100.0]")
	assert.Contains(t, s, "translation: (no translation) [chrF 0.0]")
	assert.Contains(t, s, "translation vs de: 55.56")
	// Copying: "abc" vs "abc" and "xyz" vs "abd": order 1 3/6, order 2
	// 2/4, order 3 1/2: P = R = 1/2.
	assert.Contains(t, s, "copying en unchanged: 50.00")
}

func TestRunWithoutSource(t *testing.T) {
	p := writeFile(t, `{"out":"ab","ref":"ab"}`+"\n")
	var out, errOut bytes.Buffer
	code := run([]string{"-hyp", "out", "-ref", "ref", "-src", "", "-id", "", p}, &out, &errOut)
	require.Equal(t, 0, code, errOut.String())
	assert.Contains(t, out.String(), "out vs ref:")
	assert.Contains(t, out.String(), "100.00")
	assert.NotContains(t, out.String(), "copying")
}

func TestRunErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		args []string
		code int
		want string
	}{
		{"no file argument", "", []string{}, 2, "usage: chrf"},
		{"negative show", "", []string{"-show", "-1", "x"}, 2, "usage: chrf"},
		{"unknown flag", "", []string{"-nope", "x"}, 2, "flag provided but not defined"},
		{"missing file", "", []string{filepath.Join(os.TempDir(), "no-such-file.jsonl")}, 1, "no such file"},
		{"empty file", "\n\n", nil, 1, "no rows"},
		{"bad json", `{"de":"a","en":"b","translation":"c"}` + "\n{oops\n", nil, 1, "line 2: not a JSON object"},
		{"reference missing", `{"en":"b","translation":"c"}` + "\n", nil, 1, `line 1: field "de": missing or null`},
		{"source not a string", `{"de":"a","en":3,"translation":"c"}` + "\n", nil, 1, `line 1: field "en": not a string`},
		{"hypothesis not a string", `{"de":"a","en":"b","translation":[1]}` + "\n", nil, 1, `line 1: field "translation": not a string`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if args == nil {
				args = []string{writeFile(t, tc.body)}
			}
			var out, errOut bytes.Buffer
			code := run(args, &out, &errOut)
			assert.Equal(t, tc.code, code)
			assert.Contains(t, errOut.String(), tc.want)
			assert.False(t, strings.Contains(out.String(), "chrF2"), "no score on error")
		})
	}
}
