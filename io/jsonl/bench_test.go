package jsonl

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// BenchmarkRead reads 10,000 short rows (both passes), reporting rows/s.
func BenchmarkRead(b *testing.B) {
	var buf bytes.Buffer
	for i := range 10_000 {
		fmt.Fprintf(&buf, `{"id": %d, "text": "Product %d: a red shoe, size 42, \"classic\" model", "price": %d.5, "tags": ["a", "b"]}`+"\n", i, i, i)
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r, err := NewReader("bench.jsonl", bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := r.Read(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(10_000*b.N)/b.Elapsed().Seconds(), "rows/s")
}
