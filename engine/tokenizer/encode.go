package tokenizer

import (
	"sort"
	"unicode"
	"unicode/utf8"
)

// Encode tokenizes text literally: special-token strings such as
// "<|eot_id|>" are plain text. Added tokens that are not special still
// become their ids, as in Hugging Face with encode_special_tokens=True. Use
// it for all user data. No BOS is added (see WithSpecial).
func (t *Tokenizer) Encode(text string) []int {
	return t.EncodeMixed(text, [][2]int{{0, len(text)}})
}

// EncodeSpecial tokenizes markup: every added-token string becomes its id,
// as Hugging Face's encode with add_special_tokens=False. Use it only for
// text the program builds itself.
func (t *Tokenizer) EncodeSpecial(text string) []int {
	return t.EncodeMixed(text, nil)
}

// EncodeMixed tokenizes a rendered prompt whose byte ranges literal
// (half-open [start, end) pairs, such as message contents from a chat
// template) hold user data: special tokens are matched only outside those
// ranges. The text between two matched added tokens is then encoded as one
// piece, across range boundaries, so the ids equal Hugging Face's for
// contents without special strings. Ranges may be unsorted or overlapping;
// parts outside the text are ignored.
func (t *Tokenizer) EncodeMixed(text string, literal [][2]int) []int {
	matches := t.matchAdded(text, normalizeRanges(literal, len(text)))
	ids := make([]int, 0, len(text)/3+len(matches)+1)
	pos := 0
	for _, m := range matches {
		ids = t.encodeOrdinary(ids, text[pos:m.start])
		ids = append(ids, m.id)
		pos = m.end
	}
	return t.encodeOrdinary(ids, text[pos:])
}

// encodeOrdinary appends the ids of text that holds no added tokens.
func (t *Tokenizer) encodeOrdinary(ids []int, text string) []int {
	var scratch [64]int32
	for i := 0; i < len(text); {
		e := t.split.next(text, i)
		ids = t.bpe(ids, text[i:e], scratch[:0])
		i = e
	}
	return ids
}

// bpe appends the ids of one pre-tokenizer piece.
func (t *Tokenizer) bpe(ids []int, piece string, sym []int32) []int {
	if len(piece) == 1 {
		if id := t.byteID[piece[0]]; id >= 0 {
			return append(ids, int(id))
		}
		return ids
	}
	if t.ignoreMerges {
		if id, ok := t.vocab[piece]; ok {
			return append(ids, int(id))
		}
	}
	cacheable := t.cache != nil && len(piece) >= cacheMinPieceLen && len(piece) <= cacheMaxPieceLen
	if cacheable {
		if cached, ok := t.cache.get(piece); ok {
			for _, id := range cached {
				ids = append(ids, int(id))
			}
			return ids
		}
	}
	for i := 0; i < len(piece); i++ {
		// Bytes without a token are dropped, as Hugging Face does for a
		// BPE without an unknown token.
		if id := t.byteID[piece[i]]; id >= 0 {
			sym = append(sym, id)
		}
	}
	if len(sym) >= heapThreshold {
		sym = t.mergeHeap(sym)
	} else {
		sym = t.mergeQuadratic(sym)
	}
	if cacheable {
		t.cache.put(piece, sym)
	}
	for _, s := range sym {
		ids = append(ids, int(s))
	}
	return ids
}

// match is an added token found in the text.
type match struct {
	start, end int // the bytes it replaces (lstrip/rstrip whitespace included)
	id         int
}

// indexAdded prepares the added-token tables: candidates by first byte,
// longest first, so that a scan finds the leftmost-longest match.
func (t *Tokenizer) indexAdded() {
	sort.SliceStable(t.added, func(i, j int) bool { return len(t.added[i].content) > len(t.added[j].content) })
	for i, a := range t.added {
		t.byFirst[a.content[0]] = append(t.byFirst[a.content[0]], int32(i))
	}
}

// normalizeRanges sorts, clips and merges byte ranges.
func normalizeRanges(rs [][2]int, n int) [][2]int {
	out := make([][2]int, 0, len(rs))
	for _, r := range rs {
		s, e := max(r[0], 0), min(r[1], n)
		if s < e {
			out = append(out, [2]int{s, e})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	merged := out[:0]
	for _, r := range out {
		if k := len(merged) - 1; k >= 0 && r[0] <= merged[k][1] {
			merged[k][1] = max(merged[k][1], r[1])
			continue
		}
		merged = append(merged, r)
	}
	return merged
}

// matchAdded finds the added tokens in text: all of them outside the
// literal ranges, only the non-special ones inside. As in Hugging Face,
// tokens with normalized=false are matched first and the others in the gaps
// they leave; within each group the leftmost-longest match wins.
func (t *Tokenizer) matchAdded(text string, literal [][2]int) []match {
	if len(t.added) == 0 || len(text) == 0 {
		return nil
	}
	var out []match
	pos := 0
	region := func(start, end int, allowSpecial bool) {
		if start >= end {
			return
		}
		first := t.matchGroup(nil, text, start, end, allowSpecial, false)
		gap := start
		var all []match
		for _, m := range first {
			all = t.matchGroup(all, text, gap, m.start, allowSpecial, true)
			all = append(all, m)
			gap = m.end
		}
		all = t.matchGroup(all, text, gap, end, allowSpecial, true)
		out = append(out, all...)
	}
	for _, r := range literal {
		region(pos, r[0], true)
		region(r[0], r[1], false)
		pos = r[1]
	}
	region(pos, len(text), true)
	return out
}

// matchGroup appends the leftmost-longest matches in text[start:end] of the
// added tokens whose normalized flag equals normalized.
func (t *Tokenizer) matchGroup(out []match, text string, start, end int, allowSpecial, normalized bool) []match {
	seg := text[start:end]
	for i := 0; i < len(seg); i++ {
		for _, k := range t.byFirst[seg[i]] { // longest first
			a := &t.added[k]
			if a.normalized != normalized || (a.special && !allowSpecial) {
				continue
			}
			if len(a.content) > len(seg)-i || seg[i:i+len(a.content)] != a.content {
				continue
			}
			s, e := i, i+len(a.content)
			if a.singleWord && (isWordBefore(seg, s) || isWordAfter(seg, e)) {
				continue
			}
			if a.lstrip {
				floor := 0
				if k := len(out) - 1; k >= 0 && out[k].end-start > 0 {
					floor = out[k].end - start
				}
				for s > floor {
					r, w := utf8.DecodeLastRuneInString(seg[:s])
					if !unicode.IsSpace(r) {
						break
					}
					s -= w
				}
			}
			if a.rstrip {
				for e < len(seg) {
					r, w := utf8.DecodeRuneInString(seg[e:])
					if !unicode.IsSpace(r) {
						break
					}
					e += w
				}
			}
			out = append(out, match{start: start + s, end: start + e, id: a.id})
			i = e - 1
			break
		}
	}
	return out
}

func isWordRune(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r) }

func isWordBefore(s string, i int) bool {
	if i == 0 {
		return false
	}
	r, _ := utf8.DecodeLastRuneInString(s[:i])
	return isWordRune(r)
}

func isWordAfter(s string, i int) bool {
	if i >= len(s) {
		return false
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	return isWordRune(r)
}

// mergeQuadratic applies the merges to sym in place: repeatedly merge the
// adjacent pair of the lowest rank, the leftmost among equals. Simple and
// fast for short pieces; the reference for mergeHeap.
func (t *Tokenizer) mergeQuadratic(sym []int32) []int32 {
	// ranks[i] is the merge rank of (sym[i], sym[i+1]); noMerge when the
	// pair has no merge.
	var rankBuf [heapThreshold]uint32
	ranks := rankBuf[:0]
	for i := 0; i+1 < len(sym); i++ {
		ranks = append(ranks, t.merges.rank(sym[i], sym[i+1]))
	}
	for len(sym) > 1 {
		best := -1
		bestRank := noMerge
		for i, r := range ranks {
			if r < bestRank {
				best, bestRank = i, r
			}
		}
		if best < 0 {
			break
		}
		// Replace sym[best], sym[best+1] with the merged token; the
		// leftmost pair of the lowest rank goes first, as in Hugging Face.
		sym[best] = t.merges.mergedByRank[bestRank]
		sym = append(sym[:best+1], sym[best+2:]...)
		ranks = append(ranks[:best], ranks[best+1:]...)
		if best > 0 {
			ranks[best-1] = t.merges.rank(sym[best-1], sym[best])
		}
		if best+1 < len(sym) {
			ranks[best] = t.merges.rank(sym[best], sym[best+1])
		}
	}
	return sym
}
