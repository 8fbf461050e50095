package tokenizer

import "unicode/utf8"

// byteToRune is the GPT-2 byte-level alphabet: every byte maps to a printable
// rune, so that byte strings can be stored as JSON text in tokenizer.json.
var byteToRune [256]rune

// runeToByte inverts byteToRune; runes outside the alphabet map to -1.
var runeToByte = map[rune]int{}

func init() {
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = rune(256 + n)
			n++
		}
	}
	for b, r := range byteToRune {
		runeToByte[r] = b
	}
}

// byteLevelDecode maps a token string in the byte-level alphabet to its raw
// bytes. ok is false when a rune lies outside the alphabet; Hugging Face's
// ByteLevel decoder then keeps the token's own UTF-8 bytes.
func byteLevelDecode(s string) (b []byte, ok bool) {
	b = make([]byte, 0, len(s))
	for _, r := range s {
		v, found := runeToByte[r]
		if !found {
			return []byte(s), false
		}
		b = append(b, byte(v))
	}
	return b, true
}

// byteLevelEncode maps raw bytes to the byte-level alphabet.
func byteLevelEncode(b []byte) string {
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = utf8.AppendRune(out, byteToRune[c])
	}
	return string(out)
}
