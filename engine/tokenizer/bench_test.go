package tokenizer

import (
	"strings"
	"testing"
	"time"
)

// benchText joins the multilingual reference texts (Debian package
// descriptions in 11 languages).
func benchText(b *testing.B) string {
	texts, _ := loadReference(b)
	var sb strings.Builder
	for _, tc := range texts {
		if tc.Lang != "edge" {
			sb.WriteString(tc.Text)
			sb.WriteString("\n")
		}
	}
	return sb.String()
}

// BenchmarkEncode measures literal encoding speed on real multilingual
// text (Debian package descriptions in 11 languages, ~300 KB), one
// goroutine, so MB/s is per core. Sub-benchmarks:
//
//	cold:    each pass starts with an empty piece cache (one pass over new text)
//	warm:    the cache keeps what earlier passes merged (text seen before)
//	nocache: no cache at all (the merge code alone)
//	markup:  EncodeSpecial, warm cache
func BenchmarkEncode(b *testing.B) {
	tok := llama3(b)
	text := benchText(b)
	run := func(b *testing.B, encode func() []int, reset func()) {
		b.SetBytes(int64(len(text)))
		var n int
		cpu0 := processCPU()
		for b.Loop() {
			reset()
			n = len(encode())
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
		reportCPU(b, cpu0, len(text))
	}
	fresh := *tok
	none := *tok
	none.cache = nil
	b.Run("cold", func(b *testing.B) {
		run(b, func() []int { return fresh.Encode(text) }, func() { fresh.cache = newPieceCache() })
	})
	b.Run("warm", func(b *testing.B) { run(b, func() []int { return tok.Encode(text) }, func() {}) })
	b.Run("nocache", func(b *testing.B) { run(b, func() []int { return none.Encode(text) }, func() {}) })
	b.Run("markup", func(b *testing.B) { run(b, func() []int { return tok.EncodeSpecial(text) }, func() {}) })
}

// BenchmarkDecode measures Decode on the ids of the same text.
func BenchmarkDecode(b *testing.B) {
	tok := llama3(b)
	text := benchText(b)
	ids := tok.Encode(text)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		tok.Decode(ids)
	}
}

// BenchmarkLoad measures loading the Llama 3 tokenizer.json.gz.
func BenchmarkLoad(b *testing.B) {
	for b.Loop() {
		if _, err := LoadFile("testdata/llama3/tokenizer.json.gz"); err != nil {
			b.Fatal(err)
		}
	}
}

// reportCPU reports MB per CPU-second ("cpu-MB/s"): on a shared machine the
// wall-clock MB/s understates the speed of one core.
func reportCPU(b *testing.B, cpu0 time.Duration, size int) {
	if d := processCPU() - cpu0; d > 0 {
		b.ReportMetric(float64(size)*float64(b.N)/1e6/d.Seconds(), "cpu-MB/s")
	}
}
