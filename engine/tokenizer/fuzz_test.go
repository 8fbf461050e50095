package tokenizer

import (
	"testing"
	"unicode/utf8"
)

// FuzzRoundTrip checks that decoding the ids of any valid UTF-8 text gives
// the text back, in both modes and through the streaming decoder, and that
// no input (invalid UTF-8, stray ranges) makes encoding panic.
func FuzzRoundTrip(f *testing.F) {
	tok := llama3(f)
	for _, s := range []string{
		"", " ", "Hello world", "a   b\t\tc\r\n\r\n", "don't I'M 'll", "1234567890",
		"日本語のテキスト", "👨‍👩‍👧 👍🏽", "e\u0301", "עברית العربية", "<|eot_id|>x<|begin_of_text|>",
		"<|eot_id", "\xff\xfe\xfd", "a\xe6\x97", "\x00\x01", "\u00a0\u3000\u2028",
	} {
		f.Add(s, 0, 3)
	}
	f.Fuzz(func(t *testing.T, s string, start, end int) {
		lit := tok.Encode(s)
		markup := tok.EncodeSpecial(s)
		mixed := tok.EncodeMixed(s, [][2]int{{start, end}, {end, start}})
		for _, ids := range [][]int{lit, markup, mixed} {
			got := tok.Decode(ids)
			d := tok.NewDecoder()
			var streamed string
			for i, id := range ids {
				piece := d.Add(id)
				if !utf8.ValidString(piece) {
					t.Fatalf("decoder emitted invalid UTF-8 %q", piece)
				}
				streamed += piece
				if sofar := tok.Decode(ids[:i+1]); streamed+d.Held() != sofar {
					t.Fatalf("after %d ids: stream %q + held %q != decode %q", i+1, streamed, d.Held(), sofar)
				}
			}
			streamed += d.Flush()
			if streamed != got {
				t.Fatalf("stream %q != decode %q", streamed, got)
			}
			if utf8.ValidString(s) && got != s {
				t.Fatalf("decode(encode(%q)) = %q", s, got)
			}
			if !utf8.ValidString(s) && got != string(appendLossy(nil, []byte(s))) {
				t.Fatalf("decode of invalid %q = %q", s, got)
			}
		}
	})
}
