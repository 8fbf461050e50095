package runner_test

import (
	"fmt"
	"testing"

	"github.com/batchtrans/batchtrans/runner"
)

// BenchmarkRunRows measures the runner's own per-row cost (reading,
// prompting, checkpointing, merging) with an instant translator.
func BenchmarkRunRows(b *testing.B) {
	const n = 20000
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf(`{"id":"S%07d","text":"product %d is a fine thing to own","price":%d.5}`, i, i, i)
	}
	for b.Loop() {
		b.StopTimer()
		j := setup(b, lines, "")
		b.StartTimer()
		if _, err := runner.Run(b.Context(), config(j, &fakeTranslator{}, 16)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
}
