package chat

import (
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/engine/tokenizer"
)

type reference struct {
	Versions map[string]string `json:"versions"`
	Cases    []struct {
		Template string `json:"template"`
		Name     string `json:"name"`
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
		AddGenerationPrompt bool   `json:"add_generation_prompt"`
		DateString          string `json:"date_string"`
		Text                string `json:"text"`
		IDs                 []int  `json:"ids"`
	} `json:"cases"`
	Calls []struct {
		Template string `json:"template"`
		Text     string `json:"text"`
		IDs      []int  `json:"ids"`
	} `json:"calls"`
}

func loadReference(t *testing.T) reference {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "reference.json.gz"))
	require.NoError(t, err, "reference missing: run testdata/gen_reference.py")
	defer f.Close()
	zr, err := gzip.NewReader(f)
	require.NoError(t, err)
	var ref reference
	require.NoError(t, json.NewDecoder(zr).Decode(&ref))
	require.NotEmpty(t, ref.Cases)
	return ref
}

func llama3Tokenizer(t *testing.T) *tokenizer.Tokenizer {
	t.Helper()
	tok, err := tokenizer.LoadFile(filepath.Join("..", "tokenizer", "testdata", "llama3", "tokenizer.json.gz"))
	require.NoError(t, err)
	return tok
}

// TestRenderReference holds Render to transformers' apply_chat_template
// (tokenize=False) byte for byte, for the Llama 3.2 Instruct template and a
// ChatML template, and the ids of EncodeMixed(text, content) to
// apply_chat_template(tokenize=True) for every conversation whose contents
// hold no special-token strings.
func TestRenderReference(t *testing.T) {
	ref := loadReference(t)
	tok := llama3Tokenizer(t)
	templates := map[string]*Template{}
	for _, name := range []string{"llama32", "chatml"} {
		tmpl, err := Load(filepath.Join("testdata", name))
		require.NoError(t, err)
		templates[name] = tmpl
	}
	jinjaFile, err := os.ReadFile(filepath.Join("testdata", "llama32_chat_template.jinja"))
	require.NoError(t, err)
	require.Equal(t, string(jinjaFile), templates["llama32"].Source(), "testdata/llama32 holds the Llama 3.2 Instruct template")
	counts := map[string]int{}
	for _, c := range ref.Cases {
		t.Run(c.Template+"/"+c.Name+"/"+map[bool]string{false: "nogen", true: "gen"}[c.AddGenerationPrompt], func(t *testing.T) {
			msgs := make([]Message, len(c.Messages))
			for i, m := range c.Messages {
				msgs[i] = Message{Role: m.Role, Content: m.Content}
			}
			text, content, err := templates[c.Template].Render(msgs, Options{AddGenerationPrompt: c.AddGenerationPrompt, Date: c.DateString})
			require.NoError(t, err)
			assert.Equal(t, c.Text, text)
			checkContentRanges(t, text, content, msgs)
			ids := tok.EncodeMixed(text, content)
			if hasSpecial(msgs) {
				// By design the contents stay literal: the ids differ from
				// transformers, which lets user data inject control tokens.
				assert.NotEqual(t, c.IDs, ids)
				assert.Equal(t, c.IDs, tok.EncodeSpecial(text), "markup encoding of the whole text matches transformers")
				for _, id := range idsIn(tok, text, content) {
					assert.False(t, tok.IsSpecial(id), "special id %d from message content", id)
				}
				return
			}
			assert.Equal(t, c.IDs, ids)
			counts[c.Template]++
		})
	}
	t.Logf("transformers %s: ids equal for %v conversations", ref.Versions["transformers"], counts)
	for _, c := range ref.Calls {
		assert.Equal(t, c.IDs, tok.WithSpecial(tok.EncodeSpecial(c.Text)), "tokenizer(%q)", c.Text)
	}
}

func hasSpecial(msgs []Message) bool {
	for _, m := range msgs {
		if strings.Contains(m.Content, "<|") {
			return true
		}
	}
	return false
}

// idsIn encodes each content range on its own (literally).
func idsIn(tok *tokenizer.Tokenizer, text string, content [][2]int) []int {
	var ids []int
	for _, r := range content {
		ids = append(ids, tok.Encode(text[r[0]:r[1]])...)
	}
	return ids
}

// checkContentRanges asserts that every range holds a message content (as
// is or trimmed), in order, without overlap.
func checkContentRanges(t *testing.T, text string, content [][2]int, msgs []Message) {
	t.Helper()
	prev := 0
	var nonEmpty int
	for _, m := range msgs {
		if strings.TrimSpace(m.Content) != "" {
			nonEmpty++
		}
	}
	assert.GreaterOrEqual(t, len(content), nonEmpty, "one range per non-blank content")
	for _, r := range content {
		require.True(t, r[0] >= prev && r[0] < r[1] && r[1] <= len(text), "range %v", r)
		got := text[r[0]:r[1]]
		found := false
		for _, m := range msgs {
			if got == m.Content || got == pyStrip(m.Content) {
				found = true
			}
		}
		assert.True(t, found, "range %v = %q is no message content", r, got)
		prev = r[1]
	}
}
