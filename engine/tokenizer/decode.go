package tokenizer

import "unicode/utf8"

// Decode returns the text of ids. Added tokens (special ones included) come
// out as their content; ids out of range are skipped. Byte sequences that
// are not valid UTF-8 become U+FFFD, one per maximal invalid subsequence,
// as Hugging Face's decode does (Rust's String::from_utf8_lossy).
func (t *Tokenizer) Decode(ids []int) string {
	buf := make([]byte, 0, 4*len(ids))
	for _, id := range ids {
		buf = t.appendBytes(buf, id)
	}
	return string(appendLossy(nil, buf))
}

// appendBytes appends the bytes id decodes to.
func (t *Tokenizer) appendBytes(buf []byte, id int) []byte {
	if id < 0 || id >= len(t.tokenBytes) {
		return buf
	}
	return append(buf, t.tokenBytes[id]...)
}

// Decoder turns a stream of ids into text without ever splitting a
// character: bytes of an unfinished UTF-8 sequence wait for the next id.
// The concatenation of everything Add and Flush return equals Decode of all
// the ids. A Decoder belongs to one stream and is not safe for concurrent
// use.
type Decoder struct {
	t       *Tokenizer
	pending []byte
}

// NewDecoder returns a Decoder for one stream of ids.
func (t *Tokenizer) NewDecoder() *Decoder { return &Decoder{t: t} }

// Add takes the next id and returns the text that is now complete (often
// "", when id ends mid-character).
func (d *Decoder) Add(id int) string {
	d.pending = d.t.appendBytes(d.pending, id)
	n := completePrefix(d.pending)
	if n == 0 {
		return ""
	}
	out := string(appendLossy(nil, d.pending[:n]))
	d.pending = append(d.pending[:0], d.pending[n:]...)
	return out
}

// Held returns what Flush would return now, without resetting: Decode of
// every id so far is what Add has returned, then Held.
func (d *Decoder) Held() string { return string(appendLossy(nil, d.pending)) }

// Flush returns what is still held back (an unfinished character becomes
// U+FFFD) and resets the decoder.
func (d *Decoder) Flush() string {
	out := string(appendLossy(nil, d.pending))
	d.pending = d.pending[:0]
	return out
}

// completePrefix returns how many leading bytes of b can be decoded now:
// all but a trailing unfinished (but so far valid) UTF-8 sequence.
func completePrefix(b []byte) int {
	// A sequence is at most 4 bytes: only the last 3 can be unfinished.
	for k := max(len(b)-3, 0); k < len(b); k++ {
		if b[k] < 0xC2 || b[k] > 0xF4 {
			continue // not a lead byte
		}
		if _, incomplete := invalidLen(b[k:]); incomplete {
			return k
		}
	}
	return len(b)
}

// appendLossy appends b with every maximal invalid UTF-8 subsequence
// replaced by U+FFFD.
func appendLossy(dst, b []byte) []byte {
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			dst = append(dst, b[i])
			i++
			continue
		}
		r, w := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || w > 1 {
			dst = append(dst, b[i:i+w]...)
			i += w
			continue
		}
		n, _ := invalidLen(b[i:])
		dst = append(dst, "\uFFFD"...)
		i += n
	}
	return dst
}

// invalidLen returns the length of the maximal invalid subsequence at the
// start of b, which does not begin a valid character: the longest prefix
// of a well-formed sequence (at least 1). incomplete reports that the
// prefix ran into the end of b, so more bytes could still complete it.
func invalidLen(b []byte) (n int, incomplete bool) {
	c := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 2
	case c == 0xE0:
		need, lo = 3, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 3
	case c == 0xED:
		need, hi = 3, 0x9F
	case c == 0xF0:
		need, lo = 4, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 4
	case c == 0xF4:
		need, hi = 4, 0x8F
	default:
		return 1, false
	}
	for k := 1; k < need; k++ {
		if k >= len(b) {
			return k, true
		}
		if b[k] < lo || b[k] > hi {
			return k, false
		}
		lo, hi = 0x80, 0xBF
	}
	return need, false // a complete, valid sequence: not reached for invalid input
}
