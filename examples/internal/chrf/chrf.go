package chrf

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Order is the largest character n-gram order (sacreBLEU's char_order).
const Order = 6

// Beta weighs recall beta times as much as precision (sacreBLEU's beta).
const Beta = 2.0

// Stats holds, for each order n = 1..Order at index 3*(n-1), the hypothesis
// n-gram count, the reference n-gram count and the matched count. Stats of
// several segments add up to the corpus statistics.
type Stats [3 * Order]int

// Add adds o's counts to s.
func (s *Stats) Add(o Stats) {
	for i := range s {
		s[i] += o[i]
	}
}

// Segment returns the statistics of one hypothesis against its reference.
func Segment(hyp, ref string) Stats {
	h, r := stripSpace(hyp), stripSpace(ref)
	var st Stats
	for n := 1; n <= Order; n++ {
		hc, rc := ngrams(h, n), ngrams(r, n)
		hypCount, refCount, match := 0, 0, 0
		for _, c := range rc {
			refCount += c
		}
		for g, c := range hc {
			hypCount += c
			if rcount, ok := rc[g]; ok {
				match += min(c, rcount)
			}
		}
		if len(rc) == 0 {
			// sacreBLEU counts no hypothesis n-grams where the reference
			// has none of this order.
			hypCount = 0
		}
		st[3*(n-1)], st[3*(n-1)+1], st[3*(n-1)+2] = hypCount, refCount, match
	}
	return st
}

// Score is the chrF score (0..100) of statistics summed over segments.
func (s Stats) Score() float64 {
	var prec, rec float64
	eff := 0
	for n := 0; n < Order; n++ {
		hyp, ref, match := s[3*n], s[3*n+1], s[3*n+2]
		if hyp > 0 && ref > 0 {
			prec += float64(match) / float64(hyp)
			rec += float64(match) / float64(ref)
			eff++
		}
	}
	if eff == 0 {
		return 0
	}
	prec /= float64(eff)
	rec /= float64(eff)
	if prec+rec == 0 {
		return 0
	}
	b2 := Beta * Beta
	return 100 * (1 + b2) * prec * rec / (b2*prec + rec)
}

// Sentence is the chrF score of one hypothesis against one reference.
func Sentence(hyp, ref string) float64 { return Segment(hyp, ref).Score() }

// Corpus is the corpus-level chrF of hyps against refs, paired by index:
// statistics summed over the pairs, then scored (not a mean of sentence
// scores). It is an error for the slices to differ in length.
func Corpus(hyps, refs []string) (float64, error) {
	if len(hyps) != len(refs) {
		return 0, fmt.Errorf("chrf: %d hypotheses but %d references", len(hyps), len(refs))
	}
	var total Stats
	for i := range hyps {
		total.Add(Segment(hyps[i], refs[i]))
	}
	return total.Score(), nil
}

// isSpace reports whether Python's str.split() treats r as whitespace:
// Go's unicode.IsSpace plus the information separators U+001C..U+001F.
func isSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// stripSpace returns the code points of s without whitespace. Invalid
// UTF-8 bytes become U+FFFD, one per byte, as Go decodes them.
func stripSpace(s string) []rune {
	out := make([]rune, 0, utf8.RuneCountInString(s))
	for _, r := range s {
		if !isSpace(r) {
			out = append(out, r)
		}
	}
	return out
}

// ngrams counts the n-grams of code points in rs.
func ngrams(rs []rune, n int) map[string]int {
	m := make(map[string]int, max(0, len(rs)-n+1))
	for i := 0; i+n <= len(rs); i++ {
		m[string(rs[i:i+n])]++
	}
	return m
}
