package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// The Llama 3 pre-tokenizer is a Split on this regex, pieces kept
// ("Isolated"):
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// Go's regexp cannot express the lookahead (?!\S), so splitter.next is a
// hand-written scanner for it: the alternatives are tried in order at each
// position, exactly as the backtracking engine Hugging Face uses does. The
// Qwen 2 pattern differs only in \p{N} (one digit per piece instead of up
// to three) and is handled by the same scanner.
const (
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwen2Pattern  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// class is the character class the pre-tokenizer regex distinguishes.
type class uint8

const (
	clsOther  class = iota // not \s, \p{L} or \p{N}: punctuation, symbols, marks, controls
	clsLetter              // \p{L}
	clsNumber              // \p{N}
	clsSpace               // \s (Unicode White_Space)
)

var asciiClass [128]class

func init() {
	for c := 0; c < 128; c++ {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			asciiClass[c] = clsLetter
		case c >= '0' && c <= '9':
			asciiClass[c] = clsNumber
		case c == ' ', c >= '\t' && c <= '\r':
			asciiClass[c] = clsSpace
		default:
			asciiClass[c] = clsOther
		}
	}
}

// classAt returns the class of the rune at s[i] and its width in bytes.
// Invalid UTF-8 bytes count as one-byte clsOther runes.
func classAt(s string, i int) (class, int) {
	c := s[i]
	if c < utf8.RuneSelf {
		return asciiClass[c], 1
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	if r < 0x10000 {
		return bmpClass[r], w
	}
	return classOf(r), w
}

// bmpClass caches classOf for the Basic Multilingual Plane.
var bmpClass = func() *[0x10000]class {
	var t [0x10000]class
	for r := range t {
		t[r] = classOf(rune(r))
	}
	return &t
}()

func classOf(r rune) class {
	switch {
	case unicode.IsLetter(r):
		return clsLetter
	case unicode.IsNumber(r):
		return clsNumber
	case unicode.IsSpace(r):
		return clsSpace
	}
	return clsOther
}

// splitter is a compiled pre-tokenizer split.
type splitter struct {
	maxDigits int // \p{N}{1,maxDigits}
}

// next returns the end of the piece that starts at s[i]; i < len(s).
// Pieces cover the text without gaps.
func (p splitter) next(s string, i int) int {
	c := s[i]
	// (?i:'s|'t|'re|'ve|'m|'ll|'d)
	if c == '\'' {
		if n := contraction(s, i+1); n > 0 {
			return i + 1 + n
		}
	}
	cl, w := classAt(s, i)
	switch cl {
	case clsLetter: // \p{L}+ (the optional prefix is absent)
		return p.letters(s, i+w)
	case clsNumber: // \p{N}{1,3}
		end := i + w
		for k := 1; k < p.maxDigits && end < len(s); k++ {
			cl2, w2 := classAt(s, end)
			if cl2 != clsNumber {
				break
			}
			end += w2
		}
		return end
	}
	// [^\r\n\p{L}\p{N}]\p{L}+: one other or space rune, then letters.
	if c != '\r' && c != '\n' && i+w < len(s) {
		if cl2, w2 := classAt(s, i+w); cl2 == clsLetter {
			return p.letters(s, i+w+w2)
		}
	}
	if cl == clsOther { // [^\s\p{L}\p{N}]+[\r\n]*
		return p.punct(s, i+w)
	}
	// " ?[^\s\p{L}\p{N}]+[\r\n]*" with the space.
	if c == ' ' && i+1 < len(s) {
		if cl2, w2 := classAt(s, i+1); cl2 == clsOther {
			return p.punct(s, i+1+w2)
		}
	}
	// A run of whitespace [i, j).
	j, lastNL, lastStart := i, -1, i
	for j < len(s) {
		cl2, w2 := classAt(s, j)
		if cl2 != clsSpace {
			break
		}
		if s[j] == '\r' || s[j] == '\n' {
			lastNL = j
		}
		lastStart = j
		j += w2
	}
	switch {
	case lastNL >= 0: // \s*[\r\n]+ ends at the run's last line break
		return lastNL + 1
	case j == len(s): // \s+(?!\S) at the end of the text
		return j
	case lastStart > i: // \s+(?!\S): leave the last space for the next word
		return lastStart
	}
	return j // \s+
}

func (p splitter) letters(s string, j int) int {
	for j < len(s) {
		cl, w := classAt(s, j)
		if cl != clsLetter {
			break
		}
		j += w
	}
	return j
}

func (p splitter) punct(s string, j int) int {
	for j < len(s) {
		cl, w := classAt(s, j)
		if cl != clsOther {
			break
		}
		j += w
	}
	for j < len(s) && (s[j] == '\r' || s[j] == '\n') {
		j++
	}
	return j
}

// contraction returns the length of a case-insensitive s, t, re, ve, m, ll
// or d at s[j:], or 0. U+017F (long s) folds to s under Unicode case
// folding, as in the regex engine.
func contraction(s string, j int) int {
	if j >= len(s) {
		return 0
	}
	switch s[j] | 0x20 {
	case 's', 't', 'm', 'd':
		if s[j] >= 'A' && s[j] <= 'z' {
			return 1
		}
	case 'r', 'v':
		if j+1 < len(s) && s[j+1]|0x20 == 'e' && isASCIILetter(s[j]) && isASCIILetter(s[j+1]) {
			return 2
		}
	case 'l':
		if j+1 < len(s) && s[j+1]|0x20 == 'l' && isASCIILetter(s[j]) && isASCIILetter(s[j+1]) {
			return 2
		}
	}
	if s[j] == 0xC5 && j+1 < len(s) && s[j+1] == 0xBF { // ſ
		return 2
	}
	return 0
}

func isASCIILetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// Split returns the pre-tokenizer's pieces of s (before byte-level mapping);
// their concatenation is s. It is exported for tests and tools; Encode does
// not need it.
func (t *Tokenizer) Split(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		e := t.split.next(s, i)
		out = append(out, s[i:e])
		i = e
	}
	return out
}
