package tokenizer

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	llamaOnce sync.Once
	llamaTok  *Tokenizer
	llamaErr  error
)

// llama3 loads the real Llama 3 tokenizer once per test binary.
func llama3(tb testing.TB) *Tokenizer {
	tb.Helper()
	llamaOnce.Do(func() {
		llamaTok, llamaErr = LoadFile(filepath.Join("testdata", "llama3", "tokenizer.json.gz"))
	})
	require.NoError(tb, llamaErr)
	return llamaTok
}

// readJSONL decodes every line of a gzip'd JSONL file into a new T.
func readJSONL[T any](tb testing.TB, path string) []T {
	tb.Helper()
	f, err := os.Open(path)
	require.NoError(tb, err, "reference file missing: run gen_reference.py (see its doc comment)")
	defer f.Close()
	zr, err := gzip.NewReader(f)
	require.NoError(tb, err)
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	var out []T
	for n := 1; sc.Scan(); n++ {
		var v T
		require.NoError(tb, json.Unmarshal(sc.Bytes(), &v), "%s line %d", path, n)
		out = append(out, v)
	}
	require.NoError(tb, sc.Err())
	return out
}

type textCase struct {
	Lang string `json:"lang"`
	Kind string `json:"kind"`
	Text string `json:"text"`
}

type refCase struct {
	Literal []int    `json:"literal"`
	Markup  []int    `json:"markup"`
	Pieces  []string `json:"pieces"`
}

func loadReference(tb testing.TB) ([]textCase, []refCase) {
	texts := readJSONL[textCase](tb, filepath.Join("testdata", "texts.jsonl.gz"))
	refs := readJSONL[refCase](tb, filepath.Join("testdata", "reference.jsonl.gz"))
	require.Len(tb, refs, len(texts), "reference.jsonl.gz is stale: rerun gen_reference.py")
	return texts, refs
}

// TestReferenceIDs holds the tokenizer to Hugging Face tokenizers 0.23 on
// the real Llama 3 vocabulary: the pre-tokenizer pieces, literal ids
// (encode_special_tokens=True) and markup ids (the default), for every
// text in testdata/texts.jsonl.gz.
func TestReferenceIDs(t *testing.T) {
	tok := llama3(t)
	texts, refs := loadReference(t)
	langs := map[string]int{}
	var badPieces, badLiteral, badMarkup int
	for i, tc := range texts {
		ref := refs[i]
		langs[tc.Lang]++
		var pieces []string
		for _, p := range tok.Split(tc.Text) {
			pieces = append(pieces, byteLevelEncode([]byte(p)))
		}
		if !assert.Equal(t, nonNil(ref.Pieces), nonNil(pieces), "pieces of text %d (%s %s) %q", i, tc.Lang, tc.Kind, truncate(tc.Text, 80)) {
			badPieces++
		}
		if !assert.Equal(t, nonNilInts(ref.Literal), nonNilInts(tok.Encode(tc.Text)), "literal ids of text %d (%s %s) %q", i, tc.Lang, tc.Kind, truncate(tc.Text, 80)) {
			badLiteral++
		}
		if !assert.Equal(t, nonNilInts(ref.Markup), nonNilInts(tok.EncodeSpecial(tc.Text)), "markup ids of text %d (%s %s) %q", i, tc.Lang, tc.Kind, truncate(tc.Text, 80)) {
			badMarkup++
		}
	}
	t.Logf("%d texts, %d languages + edge cases: %d piece, %d literal, %d markup mismatches", len(texts), len(langs)-1, badPieces, badLiteral, badMarkup)
	assert.GreaterOrEqual(t, len(texts), 1000)
	assert.GreaterOrEqual(t, len(langs)-1, 10, "languages besides the edge cases")
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilInts(s []int) []int {
	if s == nil {
		return []int{}
	}
	return s
}

type decodeCase struct {
	IDs  []int  `json:"ids"`
	Text string `json:"text"`
}

// TestDecodeReference checks Decode and the streaming Decoder against
// Hugging Face's decode on random id sequences, many of them invalid or
// truncated UTF-8.
func TestDecodeReference(t *testing.T) {
	tok := llama3(t)
	cases := readJSONL[decodeCase](t, filepath.Join("testdata", "decode_reference.jsonl.gz"))
	require.NotEmpty(t, cases)
	for i, c := range cases {
		assert.Equal(t, c.Text, tok.Decode(c.IDs), "case %d ids %v", i, c.IDs)
		assert.Equal(t, c.Text, streamDecode(t, tok, c.IDs), "stream case %d ids %v", i, c.IDs)
	}
}

// streamDecode decodes ids one at a time and checks that no piece splits a
// character.
func streamDecode(t *testing.T, tok *Tokenizer, ids []int) string {
	t.Helper()
	d := tok.NewDecoder()
	var out string
	for _, id := range ids {
		s := d.Add(id)
		assert.True(t, utf8.ValidString(s), "stream piece %q is not valid UTF-8", s)
		out += s
	}
	return out + d.Flush()
}

// TestRoundTripReference decodes the literal ids of every reference text,
// in one go and as a stream.
func TestRoundTripReference(t *testing.T) {
	tok := llama3(t)
	texts, refs := loadReference(t)
	for i, tc := range texts {
		assert.Equal(t, tc.Text, tok.Decode(refs[i].Literal), "text %d", i)
		assert.Equal(t, tc.Text, streamDecode(t, tok, refs[i].Literal), "text %d", i)
	}
}
