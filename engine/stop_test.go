package engine

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// decodeOnly hides a codec's stream, so that stopped decodes every id at
// each step (the reference).
type decodeOnly struct{ codec }

// firstStop is the step (1-based) at which stopped first reports a stop
// string while ids are generated one at a time; 0 if none.
func firstStop(m *Model, ids []int, stops []string) int {
	s := &seq{req: Request{Stop: stops}}
	m.watch(s)
	for i, id := range ids {
		s.out = append(s.out, id)
		if m.stopped(s, id) {
			return i + 1
		}
	}
	return 0
}

// The stop check on one id at a time finds every stop string at the step
// decode of all the ids would, on the real tokenizer: text with characters
// of two to four bytes split across ids, special tokens (left out of the
// text), ids that end mid-character (held back, decoded as U+FFFD until
// completed), and stop strings that span ids, hold such characters or
// U+FFFD itself.
func TestStopStreamMatchesDecode(t *testing.T) {
	_, model, _ := readRef(t, "tiny-a")
	m, err := Load(Options{ModelDir: model, DType: "f32"})
	require.NoError(t, err)
	_, ok := m.codec.(streamCodec)
	require.True(t, ok, "the real codec streams")
	ref := &Model{codec: decodeOnly{m.codec}}
	tok := m.Tokenizer()
	hdr, ok := tok.TokenID("<|start_header_id|>")
	require.True(t, ok)
	text := "Grüße aus Köln: 日本語のテキスト, emoji 🙂🚀 and plain words, then more: ñandú, Ελληνικά, 한국어."
	base := tok.Encode(text)
	// Ids that are a lone lead byte of a multi-byte character: alone they
	// decode to U+FFFD and hold the decoder back.
	var bytesIDs []int
	for id := range tok.VocabSize() {
		if !tok.IsSpecial(id) && tok.Decode([]int{id}) == "\uFFFD" {
			bytesIDs = append(bytesIDs, id)
		}
	}
	require.NotEmpty(t, bytesIDs, "the tokenizer has byte tokens")
	rng := rand.New(rand.NewPCG(3, 4))
	found, checked := 0, 0
	for trial := range 300 {
		ids := slices.Clone(base)
		for range rng.IntN(6) { // specials and lone bytes, anywhere
			at := rng.IntN(len(ids) + 1)
			id := hdr
			if rng.IntN(2) == 0 {
				id = bytesIDs[rng.IntN(len(bytesIDs))]
			}
			ids = append(ids[:at], append([]int{id}, ids[at:]...)...)
		}
		full := ref.codec.decode(ids)
		runes := []rune(full)
		var stops []string
		for range 1 + rng.IntN(3) {
			i := rng.IntN(len(runes))
			n := 1 + rng.IntN(min(6, len(runes)-i))
			stops = append(stops, string(runes[i:i+n]))
		}
		if trial%10 == 0 {
			stops = append(stops, "\uFFFD")
		}
		if trial%7 == 0 {
			stops = []string{"not in the text"}
		}
		want, got := firstStop(ref, ids, stops), firstStop(m, ids, stops)
		assert.Equal(t, want, got, "trial %d, stops %q", trial, stops)
		if want > 0 {
			found++
		}
		checked++
	}
	assert.Greater(t, found, 200, "most trials stop somewhere")
	assert.Less(t, found, checked, "some never stop")
}

// BenchmarkStopCheck is the stop strings' check a step costs over a long
// output (2,000 ids), one id at a time (stream) against decoding all the
// ids at every step (decode).
func BenchmarkStopCheck(b *testing.B) {
	_, model, _ := readRef(&testing.T{}, "tiny-a")
	m, err := Load(Options{ModelDir: model, DType: "f32"})
	if err != nil {
		b.Fatal(err)
	}
	ids := m.Tokenizer().Encode(strings.Repeat("Übersetze den Text ins Deutsche, Zeile für Zeile. ", 200))[:2000]
	stops := []string{"\n\n", "###"}
	for _, c := range []struct {
		name string
		m    *Model
	}{{"stream", m}, {"decode", &Model{codec: decodeOnly{m.codec}}}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if firstStop(c.m, ids, stops) != 0 {
					b.Fatal("stopped")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ids)), "ns/id")
		})
	}
}
