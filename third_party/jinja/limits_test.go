package jinja

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// testLimits are small limits that each test template runs into.
var testLimits = Limits{
	MaxOutputBytes: 1 << 10,
	MaxStringBytes: 1 << 10,
	MaxListItems:   100,
	MaxAllocBytes:  1 << 20,
	MaxSteps:       10_000,
	MaxMacroDepth:  20,
}

func renderLimited(t *testing.T, src string, lim Limits) (string, error) {
	t.Helper()
	tmpl, err := Compile(src)
	if err != nil {
		t.Fatalf("compile %q: %v", src, err)
	}
	return tmpl.RenderLimited(context.Background(), map[string]Value{"s": NewString(strings.Repeat("x", 600))}, lim)
}

// TestLimits renders templates that each run into one of testLimits and
// checks the error names it and matches ErrLimit.
func TestLimits(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"output", "{% for i in range(10) %}{{ s }}{% endfor %}", "output exceeds the limit of 1024 bytes"},
		{"output of text", strings.Repeat("y", 2000), "output exceeds the limit of 1024 bytes"},
		{"concatenation", "{% set t = s ~ s %}", "string of 1200 bytes exceeds the limit of 1024 bytes"},
		{"plus", "{% set t = s + s %}", "string of 1200 bytes exceeds the limit of 1024 bytes"},
		{"repetition", "{% set n = 2 %}{% set t = s * n %}", "string of 1200 bytes exceeds the limit of 1024 bytes"},
		{"repetition overflowing", "{% set t = s * 9223372036854775807 %}", "string exceeds the limit of 1024 bytes"},
		{"join", "{% set t = [s, s] | join %}", "string of 1200 bytes exceeds the limit of 1024 bytes"},
		{"format", "{% set t = '{0}{0}'.format(s) %}", "string of 1200 bytes exceeds the limit of 1024 bytes"},
		{"replace filter", "{% set t = s | replace('x', 'xx') %}", "string of 1200 bytes exceeds the limit of 1024 bytes"},
		{"replace method", "{% set t = s.replace('x', 'xx', 500) %}", "string of 1100 bytes exceeds the limit of 1024 bytes"},
		{"indent", "{% set t = (s ~ '\n' ~ s[:300]) | indent(200) %}", "string of 1101 bytes exceeds the limit of 1024 bytes"},
		{"tojson", "{% set t = [s, s] | tojson %}", "string exceeds the limit of 1024 bytes"},
		{"tojson indent", "{% set t = [1] | tojson(indent=2000) %}", "string of 2000 bytes exceeds the limit of 1024 bytes"},
		{"escape", "{% set t = (s[:100] ~ ('<' * 300)) | e %}", "string of 1300 bytes exceeds the limit of 1024 bytes"},
		{"upper", "{% set t = (s ~ s) | upper %}", "string of 1200 bytes exceeds the limit of 1024 bytes"},
		{"macro output", "{% macro m() %}{{ s }}{{ s }}{% endmacro %}{% set t = m() %}", "string exceeds the limit of 1024 bytes"},
		{"set block", "{% set t %}{{ s }}{{ s }}{% endset %}", "string exceeds the limit of 1024 bytes"},
		{"printed list", "{% set t = [s, s] | string %}", "string exceeds the limit of 1024 bytes"},
		{"range", "{% set l = range(101) %}", "list of 101 items exceeds the limit of 100 items"},
		{"range of int64", "{% set l = range(-9223372036854775807, 9223372036854775807) %}", "list of 2147483648 items exceeds the limit of 100 items"},
		{"list concatenation", "{% set l = range(60) + range(60) %}", "list of 120 items exceeds the limit of 100 items"},
		{"append", "{% set l = [] %}{% for i in range(60) %}{{ l.append(i) }}{{ l.append(i) }}{% endfor %}", "list of 101 items exceeds the limit of 100 items"},
		{"characters", "{% for c in s %}{% endfor %}", "list of 600 items exceeds the limit of 100 items"},
		{"split", "{% set l = s[:200].split('x') %}", "list of 201 items exceeds the limit of 100 items"},
		{"dict update", "{% set d = {} %}{% for i in range(99) %}{{ d.update({i ~ '': i, i ~ 'x': i}) }}{% endfor %}", "exceeds the limit of 100 items"},
		{"fromjson", "{% set l = ('[' ~ ('0,' * 150) ~ '0]') | fromjson %}", "list of 101 items exceeds the limit of 100 items"},
		{"budget", "{% set ns = namespace(l=none) %}{% for i in range(50) %}{% for j in range(100) %}{% set ns.l = [ns.l, s ~ j] %}{% endfor %}{% endfor %}", "values built in one render exceed the limit of 1048576 bytes"},
		{"steps", "{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}", "render exceeds the limit of 10000 steps"},
		{"comparison steps", "{% set l = range(100) %}{% for i in range(100) %}{{ l == l }}{% endfor %}", "render exceeds the limit of 10000 steps"},
		{"macro depth", "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "macro f: calls nested more than 20 deep"},
		{"caller depth", "{% macro f() %}{% call f() %}x{% endcall %}{{ caller() }}{% endmacro %}{{ f() }}", "nested more than 20 deep"},
		{"cycle printed", "{% set l = [] %}{{ l.append(l) }}{{ l }}", "value nested more than 1000 deep"},
		{"cycle compared", "{% set l = [] %}{{ l.append(l) }}{{ l == l }}", "value nested more than 1000 deep"},
		{"cycle encoded", "{% set l = [] %}{{ l.append(l) }}{{ l | tojson }}", "value nested more than 1000 deep"},
		{"dict cycle printed", "{% set d = {} %}{{ d.update({'d': d}) }}{{ d }}", "output exceeds the limit of 1024 bytes"},
		{"expression chain", "{{ " + strings.Repeat("1 + ", 11000) + "1 }}", "blocks and expressions nested more than 10000 deep"},
		{"blocks nested by recursion", "{% macro f(n) %}" + strings.Repeat("{% if 1 %}", 900) + "{{ f(n) }}" + strings.Repeat("{% endif %}", 900) + "{% endmacro %}{{ f(1) }}", "blocks and expressions nested more than 10000 deep"},
		{"dropped error still fails", "{{ 'abc'[(s ~ s) | length:] }}", "string of 1200 bytes exceeds the limit of 1024 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := renderLimited(t, tt.src, testLimits)
			if err == nil {
				t.Fatalf("rendered %d bytes, want an error containing %q", len(out), tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrLimit) {
				t.Errorf("error %q: want one containing %q and matching ErrLimit", err, tt.want)
			}
		})
	}
}

// TestLimitsAllow renders within testLimits what lies just under them.
func TestLimitsAllow(t *testing.T) {
	tests := []struct {
		src, want string
	}{
		{"{% set n = 2 %}{{ (('ab' * n) * 256) | length }}", "1024"},
		{"{{ range(100) | length }}", "100"},
		{"{% set l = range(50) %}{{ (l + l) | length }}", "100"},
		{"{{ [s[:500], s[:524]] | join | length }}", "1024"},
		{"{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{% else %}ok{% endif %}{% endmacro %}{{ f(19) }}", "ok"},
	}
	for _, tt := range tests {
		got, err := renderLimited(t, tt.src, testLimits)
		if err != nil || got != tt.want {
			t.Errorf("%q: got %q, %v; want %q", tt.src, got, err, tt.want)
		}
	}
}

// TestRenderLimitedContext shows that a render stops at its context's end,
// with the context's error, promptly.
func TestRenderLimitedContext(t *testing.T) {
	tmpl, err := Compile("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = tmpl.RenderLimited(ctx, nil, Limits{})
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrLimit) {
		t.Errorf("error %v: want the context's", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("render stopped after %v", d)
	}
}

// TestUnlimitedRenderStaysSafe shows that Render, with no limits, still
// refuses what would overflow the stack and kill the process.
func TestUnlimitedRenderStaysSafe(t *testing.T) {
	for _, src := range []string{
		"{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
		"{% set l = [] %}{{ l.append(l) }}{{ l }}",
	} {
		tmpl, err := Compile(src)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tmpl.Render(nil); !errors.Is(err, ErrLimit) {
			t.Errorf("%q: error %v, want a nesting limit", src, err)
		}
	}
	for _, src := range []string{
		"{{ " + strings.Repeat("(", 2000) + "1" + strings.Repeat(")", 2000) + " }}",
		"{{ " + strings.Repeat("-", 2000) + "1 }}",
		strings.Repeat("{% if 1 %}", 2000) + strings.Repeat("{% endif %}", 2000),
	} {
		if _, err := Compile(src); err == nil || !strings.Contains(err.Error(), "nested more than 1000 deep") {
			t.Errorf("compile %.20q...: error %v, want a nesting limit", src, err)
		}
	}
	l := NewList(nil)
	l.AsList().Append(l)
	if !strings.HasPrefix(l.String(), "[[[") || l.Equals(l) {
		t.Errorf("a list that contains itself: String %.10q..., Equals %v", l.String(), l.Equals(l))
	}
}

// TestPythonCompatibility pins the outputs that the patches changed to
// what Python's Jinja2 renders with transformers' tojson and fromjson.
func TestPythonCompatibility(t *testing.T) {
	tests := []struct {
		src, want string
	}{
		{"{{ {'b': 1, 'a': [2, '<&>', {}], 'c': {'x': [], 'y': {} } } | tojson(indent=2) }}", "{\n  \"b\": 1,\n  \"a\": [\n    2,\n    \"<&>\",\n    {}\n  ],\n  \"c\": {\n    \"x\": [],\n    \"y\": {}\n  }\n}"},
		{"{{ {'b': 1, 'a': [2]} | tojson(indent=0) }}", "{\n\"b\": 1,\n\"a\": [\n2\n]\n}"},
		{"{{ [1, [2, 3]] | tojson(indent=-3) }}", "[\n1,\n[\n2,\n3\n]\n]"},
		{"{{ [1, {'k': 'v'}] | tojson(indent='\t') }}", "[\n\t1,\n\t{\n\t\t\"k\": \"v\"\n\t}\n]"},
		{"{{ {'b': 1, 'a': [2]} | tojson(indent=2, separators=[', ', ' = ']) }}", "{\n  \"b\" = 1, \n  \"a\" = [\n    2\n  ]\n}"},
		{"{% set d = '{\"z\": [1, 2.5, \"s\", true, null], \"a\": {\"q\": 1, \"b\": 2}, \"z\": 7}' | fromjson %}{{ d | tojson }}|{{ d.a.q }}", "{\"z\": 7, \"a\": {\"q\": 1, \"b\": 2}}|1"},
		{"[{{ 'a' * -2 }}]", "[]"},
		{"{{ 'abc'[-9223372036854775807:9223372036854775807:2] }}{{ 'äbc'[9223372036854775807::-2] }}{{ 'äöüß'[1:3] }}", "accäöü"},
		{"{{ range(9223372036854775802, 9223372036854775807, 10) }}", "[9223372036854775802]"},
		{"{% for i in range(3) %}{{ loop.cycle('a', 'b') }}{% set c = loop.cycle %}{% endfor %}", "aba"},
	}
	for _, tt := range tests {
		tmpl, err := Compile(tt.src)
		if err != nil {
			t.Fatalf("compile %q: %v", tt.src, err)
		}
		got, err := tmpl.Render(nil)
		if err != nil || got != tt.want {
			t.Errorf("%q:\n got %q, %v\nwant %q", tt.src, got, err, tt.want)
		}
	}
}

// TestEncodeJSONStringMatchesEncodingJSON holds encodeJSONString to
// encoding/json (HTML escaping off), which it replaced, over random
// strings built from the bytes and runes that encodings treat specially.
func TestEncodeJSONStringMatchesEncodingJSON(t *testing.T) {
	pieces := []string{"a", "Z", " ", "\"", "\\", "/", "<", ">", "&", "\x00", "\x01", "\x1f", "\x7f", "\b", "\f", "\n", "\r", "\t",
		"é", "€", "😀", "\u2028", "\u2029", "\xff", "\xe2\x82", "\xed\xa0\x80", "\ufffd"}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20_000 {
		var sb strings.Builder
		for range rng.IntN(12) {
			sb.WriteString(pieces[rng.IntN(len(pieces))])
		}
		s := sb.String()
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		want := strings.TrimSuffix(buf.String(), "\n")
		l := newLimiter(context.Background(), Limits{MaxStringBytes: len(want)})
		b := l.newString()
		if err := encodeJSONString(b, s); err != nil || b.String() != want {
			t.Fatalf("case %d %q: got %q, %v; want %q", i, s, b.String(), err, want)
		}
		// The size is checked in full before anything is written.
		l = newLimiter(context.Background(), Limits{MaxStringBytes: len(want) - 1})
		b = l.newString()
		if err := encodeJSONString(b, s); err == nil || b.Len() != 0 {
			t.Fatalf("case %d %q: with one byte too few, wrote %q, %v", i, s, b.String(), err)
		}
	}
}

// applyTrimmingReference is applyTrimming as it was before it tracked
// the neighbouring text segments: it searches for them from every tag,
// in quadratic time.
func applyTrimmingReference(segs []segment) {
	for i := range segs {
		seg := &segs[i]
		applyDefaults := seg.kind == segStmt || seg.kind == segComment
		switch {
		case seg.trimLeft:
			for j := i - 1; j >= 0; j-- {
				if segs[j].kind == segText {
					segs[j].text = trimTrailingWhitespace(segs[j].text)
					break
				}
			}
		case applyDefaults:
			for j := i - 1; j >= 0; j-- {
				if segs[j].kind == segText {
					isFirstText := true
					for k := j - 1; k >= 0; k-- {
						if segs[k].kind == segText {
							isFirstText = false
							break
						}
					}
					segs[j].text = lstripBlock(segs[j].text, isFirstText)
					break
				}
			}
		}
	}
	for i := range segs {
		seg := &segs[i]
		applyDefaults := seg.kind == segStmt || seg.kind == segComment
		switch {
		case seg.trimRight:
			for j := i + 1; j < len(segs); j++ {
				if segs[j].kind == segText {
					segs[j].text = trimLeadingWhitespace(segs[j].text)
					break
				}
			}
		case applyDefaults:
			for j := i + 1; j < len(segs); j++ {
				if segs[j].kind == segText {
					segs[j].text = trimBlockNewline(segs[j].text)
					break
				}
			}
		}
	}
}

// TestApplyTrimmingMatchesReference holds applyTrimming to the quadratic
// search it replaced, over random runs of text and tags.
func TestApplyTrimmingMatchesReference(t *testing.T) {
	texts := []string{"", "a", " ", "\t", "\n", "\r\n", "  \n  ", "\n\n", "x \n", " \t\n\t x"}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 20_000 {
		segs := make([]segment, rng.IntN(10))
		for j := range segs {
			segs[j] = segment{kind: segKind(rng.IntN(4)), trimLeft: rng.IntN(3) == 0, trimRight: rng.IntN(3) == 0}
			if segs[j].kind == segText {
				segs[j].text = texts[rng.IntN(len(texts))] + texts[rng.IntN(len(texts))]
			}
		}
		want := append([]segment(nil), segs...)
		applyTrimmingReference(want)
		applyTrimming(segs)
		for j := range segs {
			if segs[j].text != want[j].text {
				t.Fatalf("case %d segment %d: got %q, want %q", i, j, segs[j].text, want[j].text)
			}
		}
	}
}
