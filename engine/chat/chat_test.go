package chat

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeModel writes a tokenizer_config.json (and optional
// chat_template.jinja) into a new folder.
func writeModel(t *testing.T, cfg map[string]any, jinjaFile string) string {
	t.Helper()
	dir := t.TempDir()
	if cfg != nil {
		b, err := json.Marshal(cfg)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), b, 0o644))
	}
	if jinjaFile != "" {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "chat_template.jinja"), []byte(jinjaFile), 0o644))
	}
	return dir
}

const simple = "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{{ eos_token }}"

func TestLoadForms(t *testing.T) {
	msgs := []Message{{Role: "user", Content: "hi"}}
	cases := []struct {
		name  string
		cfg   map[string]any
		jinja string
		want  string
	}{
		{"string template", map[string]any{"chat_template": simple, "bos_token": "<s>", "eos_token": "</s>"}, "", "<s>[user]hi</s>"},
		{"named list picks default", map[string]any{"chat_template": []any{
			map[string]any{"name": "tool_use", "template": "TOOLS"},
			map[string]any{"name": "default", "template": simple},
		}, "bos_token": "<s>"}, "", "<s>[user]hi"},
		{"token objects", map[string]any{"chat_template": simple,
			"bos_token": map[string]any{"content": "<B>", "__type": "AddedToken"},
			"eos_token": map[string]any{"content": "<E>"}}, "", "<B>[user]hi<E>"},
		{"jinja file wins", map[string]any{"chat_template": "IGNORED", "bos_token": "<s>"}, "{{ bos_token }}F:{{ messages[0].content }}", "<s>F:hi"},
		{"jinja file without config", nil, "only {{ messages[0].content }}", "only hi"},
		{"null tokens", map[string]any{"chat_template": simple, "bos_token": nil}, "", "[user]hi"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tmpl, err := Load(writeModel(t, c.cfg, c.jinja))
			require.NoError(t, err)
			text, content, err := tmpl.Render(msgs, Options{})
			require.NoError(t, err)
			assert.Equal(t, c.want, text)
			require.Len(t, content, 1)
			assert.Equal(t, "hi", text[content[0][0]:content[0][1]])
		})
	}
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name  string
		cfg   map[string]any
		raw   string // written as tokenizer_config.json instead of cfg
		jinja string
		want  string
	}{
		{"no files", nil, "", "", "neither tokenizer_config.json nor chat_template.jinja"},
		{"corrupt config", nil, "{", "", "tokenizer_config.json"},
		{"no template", map[string]any{"bos_token": "<s>"}, "", "", "chat_template: missing"},
		{"no default in list", map[string]any{"chat_template": []any{map[string]any{"name": "rag", "template": "x"}}}, "", "", `no template named "default" (have "rag")`},
		{"template of wrong type", map[string]any{"chat_template": 3}, "", "", "want a string or a list"},
		{"bad bos", map[string]any{"chat_template": simple, "bos_token": 7}, "", "", "bos_token"},
		{"syntax error", map[string]any{"chat_template": "{% for %}"}, "", "", "chat template"},
		{"empty template", map[string]any{"chat_template": "  "}, "", "", "empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeModel(t, c.cfg, c.jinja)
			if c.raw != "" {
				require.NoError(t, os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(c.raw), 0o644))
			}
			_, err := Load(dir)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			if c.cfg != nil || c.raw != "" {
				assert.Contains(t, err.Error(), dir)
			}
		})
	}
}

func TestDatePinned(t *testing.T) {
	cases := []struct {
		name, tmpl, date, want, err string
	}{
		{"date_string", "{{ date_string }}", "25 Nov 2026", "25 Nov 2026", ""},
		{"date_string undefined without date", "{% if date_string is defined %}D{% else %}U{% endif %}", "", "U", ""},
		{"strftime llama", `{{ strftime_now("%d %b %Y") }}`, "25 Nov 2026", "25 Nov 2026", ""},
		{"strftime iso", `{{ strftime_now("%Y-%m-%d") }}`, "5 Jan 2026", "2026-01-05", ""},
		{"strftime long", `{{ strftime_now("%A, %B %-d, %Y %H:%M %j %%") }}`, "2026-03-01", "Sunday, March 1, 2026 00:00 060 %", ""},
		{"strftime without date", `{{ strftime_now("%Y") }}`, "", "", "no date pinned"},
		{"unparseable date", `{{ strftime_now("%Y") }}`, "someday", "", "is not like"},
		{"unknown directive", `{{ strftime_now("%Q") }}`, "2026-03-01", "", "unsupported directive %Q"},
		{"format too long", `{{ strftime_now("%A" * 600) }}`, "2026-03-01", "", "format of 1200 bytes exceeds the limit of 1024"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tmpl, err := Parse(c.tmpl, "", "", "test")
			require.NoError(t, err)
			text, _, err := tmpl.Render(nil, Options{Date: c.date})
			if c.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), c.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, c.want, text)
		})
	}
}

func TestContentRanges(t *testing.T) {
	cases := []struct {
		name    string
		tmpl    string
		content string
		want    []string // texts of the ranges
		err     string
	}{
		{"as is", "<{{ messages[0].content }}>", " x ", []string{" x "}, ""},
		{"trim filter", "<{{ messages[0].content | trim }}>", "  x y \n", []string{"x y"}, ""},
		{"unicode whitespace trim", "<{{ messages[0].content | trim }}>", "\u3000x\u00a0", []string{"x"}, ""},
		{"strip method", "<{{ messages[0].content.strip() }}>", " x ", []string{"x"}, ""},
		{"twice", "{{ messages[0].content }}|{{ messages[0].content }}", "ab", []string{"ab", "ab"}, ""},
		{"content equal to markup", "user:{{ messages[0].content }}", "user", []string{"user"}, ""},
		{"blank content trimmed away", "<{{ messages[0].content | trim }}>", "   ", nil, ""},
		{"upper cannot be located", "{{ messages[0].content | upper }}", "abc", nil, "cannot be located"},
		{"branch on content cannot be located", "{% if messages[0].content == 'abc' %}X{% endif %}", "abc", nil, "cannot be located"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tmpl, err := Parse(c.tmpl, "", "", "test")
			require.NoError(t, err)
			text, ranges, err := tmpl.Render([]Message{{Role: "user", Content: c.content}}, Options{})
			if c.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), c.err)
				return
			}
			require.NoError(t, err)
			var got []string
			for _, r := range ranges {
				got = append(got, text[r[0]:r[1]])
			}
			assert.Equal(t, c.want, got)
		})
	}
}

// TestHostileTemplates shows that a template cannot hang the program, eat
// unbounded memory through range, or crash it with a library panic.
func TestHostileTemplates(t *testing.T) {
	cases := []struct {
		name, tmpl, want string
	}{
		{"huge range", "{% for i in range(1000000000) %}x{% endfor %}", "exceeds the limit"},
		{"output cap", "{% for i in range(20000) %}{{ 'x' * 1000 }}{% endfor %}", "exceeds"},
		{"raise_exception", "{{ raise_exception('bad conversation') }}", "bad conversation"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tmpl, err := Parse(c.tmpl, "", "", "test")
			require.NoError(t, err)
			start := time.Now()
			_, _, err = tmpl.Render([]Message{{Role: "user", Content: "x"}}, Options{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			assert.Less(t, time.Since(start), renderTimeout+time.Second)
		})
	}
	t.Run("timeout", func(t *testing.T) {
		old := renderTimeout
		renderTimeout = 100 * time.Millisecond
		defer func() { renderTimeout = old }()
		tmpl, err := Parse("{% for i in range(3000) %}{% for j in range(3000) %}{% endfor %}{% endfor %}", "", "", "slow")
		require.NoError(t, err)
		_, _, err = tmpl.Render(nil, Options{})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "took longer than")
	})
	t.Run("oversized source", func(t *testing.T) {
		_, err := Parse(strings.Repeat("x", maxTemplateBytes+1), "", "", "big")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "larger than")
	})
}

func TestRenderConcurrent(t *testing.T) {
	tmpl, err := Load(filepath.Join("testdata", "llama32"))
	require.NoError(t, err)
	want, _, err := tmpl.Render([]Message{{Role: "user", Content: "hello"}}, Options{Date: "25 Nov 2026"})
	require.NoError(t, err)
	done := make(chan string, 8)
	for range 8 {
		go func() {
			got, _, err := tmpl.Render([]Message{{Role: "user", Content: "hello"}}, Options{Date: "25 Nov 2026"})
			if err != nil {
				got = err.Error()
			}
			done <- got
		}()
	}
	for range 8 {
		assert.Equal(t, want, <-done)
	}
}
