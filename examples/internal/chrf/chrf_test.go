package chrf

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The expected values are worked out by hand (see each case's note) or are
// sacreBLEU's published outputs.
func TestSentence(t *testing.T) {
	tests := []struct {
		name     string
		hyp, ref string
		want     float64
	}{
		// Orders 1 and 2 match fully; orders 3-6 have no n-grams.
		{"identical short", "ab", "ab", 100},
		// Orders 1..3: P = R = (2/3 + 1/2 + 0)/3 = 7/18, and F = P when P = R.
		{"one char differs", "abc", "abd", 100 * 7.0 / 18},
		// Whitespace is dropped: "ab" vs "abc". P = (2/2 + 1/1)/2 = 1,
		// R = (2/3 + 1/2)/2 = 7/12; order 3 has no hypothesis n-gram, so it
		// is left out. F = 5*(7/12) / (4 + 7/12) = 7/11.
		{"whitespace ignored", "a b", "abc", 100 * 7.0 / 11},
		// Clipping: "aaa" vs "aa". Order 1: 2 of 3, order 2: 1 of 2 (the
		// reference has one "aa"). P = (2/3 + 1/2)/2 = 7/12, R = 1.
		// F = 5*(7/12) / (4*(7/12) + 1) = 35/40.
		{"repeated n-grams are clipped", "aaa", "aa", 87.5},
		// Code points, not bytes: "für" vs "fur" share f and r only.
		// P = R = (2/3 + 0 + 0)/3 = 2/9.
		{"code points", "für", "fur", 100 * 2.0 / 9},
		{"empty hypothesis", "", "abc", 0},
		{"empty reference", "abc", "", 0},
		{"both empty", "", "", 0},
		{"nothing in common", "xyz", "abc", 0},
		// sacreBLEU's documented example (chrF2, its defaults).
		{"sacrebleu example",
			"The relationship between Obama and Netanyahu is not exactly friendly.",
			"The ties between Obama and Netanyahu are not particularly friendly.",
			61.576379378113785},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.InDelta(t, tc.want, Sentence(tc.hyp, tc.ref), 1e-9)
		})
	}
}

func TestSegmentStats(t *testing.T) {
	// "a b" vs "abc": per order [hyp, ref, match]; order 3 has a reference
	// n-gram but no hypothesis one; orders 4-6 are empty.
	got := Segment("a b", "abc")
	want := Stats{2, 3, 2, 1, 2, 1, 0, 1, 0}
	assert.Equal(t, want, got)

	// No reference n-gram of an order: the hypothesis's are not counted.
	got = Segment("abcd", "ab")
	assert.Equal(t, Stats{4, 2, 2, 3, 1, 1}, got)
}

func TestWhitespaceSetMatchesPython(t *testing.T) {
	// Python's str.split() splits on these; all are dropped.
	for _, sep := range []string{" ", "\t", "\n", "\r", "\v", "\f", "\x1c", "\x1f", "\u0085", "\u00a0", "\u2003", "\u3000", "\u2028"} {
		assert.InDelta(t, 100, Sentence("ab"+sep+"cd", "abcd"), 1e-12, "separator %q", sep)
	}
	// Not whitespace for Python: kept as a character.
	assert.Less(t, Sentence("ab\u200bcd", "abcd"), 100.0)
}

func TestCorpusSumsStatistics(t *testing.T) {
	// Summed statistics of ("ab","ab") and ("abc","abd"): order 1: 4 of 5,
	// order 2: 2 of 3, order 3: 0 of 1. P = R = (4/5 + 2/3 + 0)/3 = 22/45.
	// The mean of the sentence scores would be (100 + 38.9)/2 instead.
	got, err := Corpus([]string{"ab", "abc"}, []string{"ab", "abd"})
	require.NoError(t, err)
	assert.InDelta(t, 100*22.0/45, got, 1e-9)

	// sacreBLEU's documented two-segment example.
	got, err = Corpus(
		[]string{
			"The relationship between cats and dogs is not exactly friendly.",
			"a good bookshop is just a genteel black hole that knows how to read.",
		},
		[]string{
			"The relationship between dogs and cats is not exactly friendly.",
			"A good bookshop is just a genteel Black Hole that knows how to read.",
		})
	require.NoError(t, err)
	assert.InDelta(t, 84.64214891738334, got, 1e-9)

	got, err = Corpus(nil, nil)
	require.NoError(t, err)
	assert.Equal(t, 0.0, got)

	_, err = Corpus([]string{"a"}, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "1 hypotheses but 0 references")
}

func TestStatsAdd(t *testing.T) {
	var s Stats
	s.Add(Segment("ab", "ab"))
	s.Add(Segment("abc", "abd"))
	assert.Equal(t, Stats{5, 5, 4, 3, 3, 2, 1, 1, 0}, s)
}
