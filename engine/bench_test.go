package engine

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/engine/llama"
)

// BenchmarkGenerate measures generated tokens per second through the step
// loop with 1 and 16 concurrent requests on a mid-sized random model: the
// gain from batching the requests' decode steps together.
func BenchmarkGenerate(b *testing.B) {
	cfg := &llama.Config{
		Vocab: testVocab, Hidden: 1024, Intermediate: 4096, Layers: 4, Heads: 16, KVHeads: 4, HeadDim: 64,
		MaxPositions: 2048, RMSNormEps: 1e-5, RopeTheta: 500000,
	}
	for _, conc := range []int{1, 16} {
		b.Run(fmt.Sprintf("concurrent=%d", conc), func(b *testing.B) {
			m, err := newModel(cfg, llama.NewCPU(testNet(b, cfg, 1)), letterCodec{}, 16, 512)
			require.NoError(b, err)
			tokens := 0
			var mu sync.Mutex
			for b.Loop() {
				var wg sync.WaitGroup
				for i := range conc {
					wg.Go(func() {
						res, err := m.Generate(b.Context(), userReq(fmt.Sprintf("request %d wants a translation", i), 32))
						if err != nil {
							b.Error(err)
							return
						}
						mu.Lock()
						tokens += len(res.OutputIDs)
						mu.Unlock()
					})
				}
				wg.Wait()
			}
			b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}
