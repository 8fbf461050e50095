package tokenizer

import (
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSplitEdgeCases(t *testing.T) {
	tok := llama3(t)
	cases := []struct {
		name string
		in   string
		want []string
	}{
		{"words", "Hello world", []string{"Hello", " world"}},
		{"space run before word", "a   b", []string{"a", "  ", " b"}},
		{"trailing spaces", "a  ", []string{"a", "  "}},
		{"only spaces", "   ", []string{"   "}},
		{"single space before word", " b", []string{" b"}},
		{"tab prefix", "\tb", []string{"\tb"}},
		{"tabs then word", "\t\tb", []string{"\t", "\tb"}},
		{"newlines", "a\n\nb", []string{"a", "\n\n", "b"}},
		{"crlf", "a\r\nb", []string{"a", "\r\n", "b"}},
		{"space newline space", "a \n x", []string{"a", " \n", " x"}},
		{"newline then spaces at end", "a\n  ", []string{"a", "\n", "  "}},
		{"digits by three", "1234567", []string{"123", "456", "7"}},
		{"digits then word", "12ab", []string{"12", "ab"}},
		{"contraction lower", "don't", []string{"don", "'t"}},
		{"contraction upper", "I'M WE'LL", []string{"I", "'M", " WE", "'LL"}},
		{"contraction mixed case", "it'S we'Re", []string{"it", "'S", " we", "'Re"}},
		{"long s folds to s", "it'\u017f", []string{"it", "'\u017f"}},
		{"apostrophe word", "'tis", []string{"'t", "is"}},
		{"punct with newlines", "hi!!!\n\nx", []string{"hi", "!!!\n\n", "x"}},
		{"space punct", "a (b)", []string{"a", " (", "b", ")"}},
		{"punct before letter", "(x)", []string{"(x", ")"}},
		{"cjk run", "日本語です。", []string{"日本語です", "。"}},
		{"combining mark", "e\u0301t\u00e9", []string{"e", "\u0301t\u00e9"}},
		{"no-break space", "a\u00a0b", []string{"a", "\u00a0b"}},
		{"ideographic space run", "a\u3000\u3000b", []string{"a", "\u3000", "\u3000b"}},
		{"emoji zwj", "x 👨‍👩‍👧", []string{"x", " 👨\u200d👩\u200d👧"}},
		{"arabic digits", "١٢٣٤", []string{"١٢٣", "٤"}},
		{"invalid utf8", "a\xff\xfeb", []string{"a", "\xff\xfe", "b"}},
		{"empty", "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, tok.Split(c.in))
		})
	}
}

func TestSplitQwen2Digits(t *testing.T) {
	assert.Equal(t, []string{"1", "2", "3", "x"}, (&Tokenizer{split: splitter{maxDigits: 1}}).Split("123x"))
}

func TestAPI(t *testing.T) {
	tok := llama3(t)
	assert.Equal(t, 128256, tok.VocabSize())
	id, ok := tok.TokenID("<|eot_id|>")
	assert.True(t, ok)
	assert.Equal(t, 128009, id)
	id, ok = tok.TokenID("ĠHello")
	assert.True(t, ok)
	assert.Equal(t, 22691, id)
	_, ok = tok.TokenID("no such token here")
	assert.False(t, ok)
	assert.Equal(t, "Hello", tok.Token(9906))
	assert.Equal(t, "<|begin_of_text|>", tok.Token(128000))
	assert.Equal(t, "", tok.Token(-1))
	assert.Equal(t, "", tok.Token(1<<30))
	assert.True(t, tok.IsSpecial(128009))
	assert.False(t, tok.IsSpecial(9906))
	assert.False(t, tok.IsSpecial(-5))
	_, ok = tok.BOS() // this tokenizer.json's post-processor is ByteLevel
	assert.False(t, ok)
	assert.Equal(t, []int{9906}, tok.WithSpecial([]int{9906}))
	assert.Equal(t, "Hello", tok.Decode([]int{-1, 9906, 1 << 30}), "unknown ids are skipped")
}

func TestEncodeModes(t *testing.T) {
	tok := llama3(t)
	text := "a<|eot_id|>b"
	lit := tok.Encode(text)
	assert.NotContains(t, lit, 128009)
	assert.Equal(t, []int{64, 128009, 65}, tok.EncodeSpecial(text))
	assert.Equal(t, text, tok.Decode(lit))
}

func TestEncodeMixed(t *testing.T) {
	tok := llama3(t)
	const eot = 128009
	text := "A<|eot_id|>B<|eot_id|>C"
	count := func(ids []int) int {
		n := 0
		for _, id := range ids {
			if id == eot {
				n++
			}
		}
		return n
	}
	cases := []struct {
		name    string
		literal [][2]int
		want    int // <|eot_id|> ids
	}{
		{"no ranges", nil, 2},
		{"first token literal", [][2]int{{1, 11}}, 1},
		{"both literal", [][2]int{{1, 11}, {12, 22}}, 0},
		{"range cuts the token", [][2]int{{5, 6}}, 1},
		{"whole text", [][2]int{{0, len(text)}}, 0},
		{"unsorted overlapping", [][2]int{{12, 22}, {1, 11}, {3, 15}}, 0},
		{"out of bounds and empty", [][2]int{{-10, 2}, {7, 3}}, 1},
		{"past the end", [][2]int{{20, 1000}}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ids := tok.EncodeMixed(text, c.literal)
			assert.Equal(t, c.want, count(ids))
			assert.Equal(t, text, tok.Decode(ids))
		})
	}
	// Text between markup tokens is one piece across range boundaries:
	// splitting "Hello world" at a range edge must not change its ids.
	s := "<|eot_id|>Hello world<|eot_id|>"
	assert.Equal(t, tok.EncodeSpecial(s), tok.EncodeMixed(s, [][2]int{{16, 21}}))
}

func TestHeapMatchesQuadratic(t *testing.T) {
	tok := llama3(t)
	texts, _ := loadReference(t)
	checked := 0
	for _, tc := range texts {
		for _, p := range tok.Split(tc.Text) {
			var sym []int32
			for i := 0; i < len(p); i++ {
				sym = append(sym, tok.byteID[p[i]])
			}
			if len(sym) < 2 {
				continue
			}
			a := tok.mergeHeap(append([]int32(nil), sym...))
			b := tok.mergeQuadratic(append([]int32(nil), sym...))
			require.Equal(t, b, a, "piece %q", p)
			checked++
		}
	}
	assert.Greater(t, checked, 10000)
}

func TestStreamingDecoderNeverSplits(t *testing.T) {
	tok := llama3(t)
	for _, s := range []string{"日本語のテキスト", "👨‍👩‍👧 emoji", "e\u0301 ü Ω", "mixed <|eot_id|> ascii"} {
		ids := tok.Encode(s)
		d := tok.NewDecoder()
		var got strings.Builder
		for _, id := range ids {
			piece := d.Add(id)
			assert.True(t, utf8.ValidString(piece), "piece %q of %q", piece, s)
			got.WriteString(piece)
		}
		got.WriteString(d.Flush())
		assert.Equal(t, s, got.String())
	}
	// A truncated character is held, then flushed as U+FFFD.
	d := tok.NewDecoder()
	e6, _ := tok.TokenID(byteLevelEncode([]byte{0xe6}))
	assert.Equal(t, "", d.Add(e6))
	assert.Equal(t, "\uFFFD", d.Held(), "held, as Flush would give it")
	assert.Equal(t, "\uFFFD", d.Flush())
	assert.Equal(t, "", d.Flush())
}

// synthetic builds a tokenizer.json with the Llama 3 pre-tokenizer and the
// given model fields.
func synthetic(t *testing.T, model map[string]any, extra map[string]any) []byte {
	t.Helper()
	doc := map[string]any{
		"version":    "1.0",
		"normalizer": nil,
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": llama3Pattern}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
		}},
		"post_processor": map[string]any{"type": "ByteLevel"},
		"decoder":        map[string]any{"type": "ByteLevel"},
		"added_tokens":   []any{},
		"model":          model,
	}
	for k, v := range extra {
		doc[k] = v
	}
	b, err := json.Marshal(doc)
	require.NoError(t, err)
	return b
}

func TestMergesAndIgnoreMerges(t *testing.T) {
	vocab := map[string]int{"a": 0, "b": 1, "c": 2, "ab": 3, "bc": 4, "abc": 5, "Ġ": 6}
	cases := []struct {
		name   string
		merges any
		ignore bool
		in     string
		want   []int
	}{
		{"string merges, lowest rank first", []string{"b c", "a b"}, false, "abc", []int{0, 4}},
		{"pair merges, lowest rank first", [][]string{{"b", "c"}, {"a", "b"}}, false, "abc", []int{0, 4}},
		{"ignore_merges takes the vocab entry", []string{"b c", "a b"}, true, "abc", []int{5}},
		{"leftmost first among equal ranks", []string{"a b"}, false, "cabab", []int{2, 3, 3}},
		{"unknown bytes are dropped", []string{"a b"}, false, "abx", []int{3}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok, err := Parse(synthetic(t, map[string]any{"type": "BPE", "vocab": vocab, "merges": c.merges, "ignore_merges": c.ignore}, nil))
			require.NoError(t, err)
			assert.Equal(t, c.want, tok.Encode(c.in))
		})
	}
}

func TestAddedTokensAndTemplateBOS(t *testing.T) {
	vocab := map[string]int{"a": 0, "b": 1, "<": 2, ">": 3, "x": 4, "Ġ": 5}
	added := []any{
		map[string]any{"id": 10, "content": "<s>", "special": true, "normalized": false},
		map[string]any{"id": 11, "content": "<x>", "special": false, "normalized": false},
		map[string]any{"id": 12, "content": "<x>>", "special": false, "normalized": true},
	}
	post := map[string]any{"type": "TemplateProcessing",
		"single":         []any{map[string]any{"SpecialToken": map[string]any{"id": "<s>", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}},
		"special_tokens": map[string]any{"<s>": map[string]any{"id": "<s>", "ids": []int{10}, "tokens": []string{"<s>"}}},
	}
	tok, err := Parse(synthetic(t, map[string]any{"type": "BPE", "vocab": vocab, "merges": []string{}}, map[string]any{"added_tokens": added, "post_processor": post}))
	require.NoError(t, err)
	bos, ok := tok.BOS()
	require.True(t, ok)
	assert.Equal(t, 10, bos)
	assert.Equal(t, []int{10, 0}, tok.WithSpecial(tok.Encode("a")))
	// Literal: the special <s> is text, the non-special <x> still matches.
	assert.Equal(t, []int{2, 1, 3, 11}, tok.Encode("<b><x>"))
	assert.Equal(t, []int{10, 11}, tok.EncodeSpecial("<s><x>"))
	// normalized=false tokens are matched before normalized ones.
	assert.Equal(t, []int{11, 3}, tok.EncodeSpecial("<x>>"))
	assert.True(t, tok.IsSpecial(10))
	assert.False(t, tok.IsSpecial(11))
	assert.Equal(t, 13, tok.VocabSize())
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	good := synthetic(t, map[string]any{"type": "BPE", "vocab": map[string]int{"a": 0}, "merges": []string{}}, nil)
	mutate := func(f func(m map[string]any)) []byte {
		var m map[string]any
		require.NoError(t, json.Unmarshal(good, &m))
		f(m)
		b, err := json.Marshal(m)
		require.NoError(t, err)
		return b
	}
	model := func(m map[string]any) map[string]any { return m["model"].(map[string]any) }
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"corrupt json", []byte(`{"model": {`), "corrupt JSON"},
		{"no model", []byte(`{}`), "no \"model\""},
		{"unigram", mutate(func(m map[string]any) { m["model"] = map[string]any{"type": "Unigram", "vocab": [][]any{{"a", -1.0}}} }), "unsupported model type \"Unigram\""},
		{"wordpiece", mutate(func(m map[string]any) { model(m)["type"] = "WordPiece" }), "unsupported model type \"WordPiece\""},
		{"byte fallback", mutate(func(m map[string]any) { model(m)["byte_fallback"] = true }), "byte_fallback"},
		{"metaspace decoder", mutate(func(m map[string]any) { m["decoder"] = map[string]any{"type": "Metaspace"} }), "unsupported decoder \"Metaspace\""},
		{"metaspace pre-tokenizer", mutate(func(m map[string]any) { m["pre_tokenizer"] = map[string]any{"type": "Metaspace"} }), "unsupported pre_tokenizer Metaspace"},
		{"other regex", mutate(func(m map[string]any) {
			m["pre_tokenizer"].(map[string]any)["pretokenizers"].([]any)[0].(map[string]any)["pattern"] = map[string]any{"Regex": `\w+`}
		}), "unsupported pre_tokenizer Split regex"},
		{"normalizer", mutate(func(m map[string]any) { m["normalizer"] = map[string]any{"type": "NFC"} }), "unsupported normalizer \"NFC\""},
		{"merge out of vocab", mutate(func(m map[string]any) { model(m)["merges"] = []string{"a b"} }), "not in vocab"},
		{"bad merge string", mutate(func(m map[string]any) { model(m)["merges"] = []string{"a"} }), "want two tokens"},
		{"id out of range", mutate(func(m map[string]any) { model(m)["vocab"] = map[string]int{"a": 1 << 30} }), "out of range"},
		{"vocab is a list", mutate(func(m map[string]any) { model(m)["vocab"] = []any{"a"} }), "model.vocab"},
		{"added token without id", mutate(func(m map[string]any) { m["added_tokens"] = []any{map[string]any{"content": "<s>"}} }), "added_tokens[0]"},
		{"not byte level", mutate(func(m map[string]any) { model(m)["vocab"] = map[string]int{"a b": 0} }), "byte-level alphabet"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".json")
			require.NoError(t, os.WriteFile(path, c.data, 0o644))
			_, err := LoadFile(path)
			require.Error(t, err)
			assert.Contains(t, err.Error(), path)
			assert.Contains(t, err.Error(), c.want)
		})
	}
	t.Run("missing file", func(t *testing.T) {
		_, err := Load(filepath.Join(dir, "nowhere"))
		require.Error(t, err)
		assert.Contains(t, err.Error(), filepath.Join(dir, "nowhere", "tokenizer.json"))
	})
	t.Run("sentencepiece only", func(t *testing.T) {
		sp := filepath.Join(dir, "sp")
		require.NoError(t, os.MkdirAll(sp, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(sp, "tokenizer.model"), []byte("x"), 0o644))
		_, err := Load(sp)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "SentencePiece")
		assert.Contains(t, err.Error(), filepath.Join(sp, "tokenizer.json"))
	})
	t.Run("truncated gzip", func(t *testing.T) {
		path := filepath.Join(dir, "cut.json.gz")
		f, err := os.Create(path)
		require.NoError(t, err)
		zw := gzip.NewWriter(f)
		_, err = zw.Write(good)
		require.NoError(t, err)
		require.NoError(t, zw.Close())
		require.NoError(t, f.Close())
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, data[:len(data)/2], 0o644))
		_, err = LoadFile(path)
		require.Error(t, err)
		assert.Contains(t, err.Error(), path)
	})
}
