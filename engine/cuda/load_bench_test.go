package cuda

import (
	"os"
	"testing"
	"time"

	"github.com/batchtrans/batchtrans/engine/llama"
	"github.com/batchtrans/batchtrans/engine/llama/synth"
)

// BenchmarkLoadHost times the host side of Load on a Llama-3.2-1B-shaped
// checkpoint (bf16, random weights) without and with an r=16 adapter on
// all seven linear modules: llama.LoadHost reading the safetensors and
// merging, into the uploader with no GPU, which converts each tensor to
// the device format and uploads nowhere. convert-s/op is the uploader's
// share. It writes 2.5 GB, so it runs only with BATCHTRANS_BIG=1;
// BATCHTRANS_BIG_DIR keeps the model between runs (the same folders as
// engine/llama's TestBigLlama32Shape).
func BenchmarkLoadHost(b *testing.B) {
	if os.Getenv("BATCHTRANS_BIG") != "1" {
		b.Skip("set BATCHTRANS_BIG=1 to load a 1.24 B-parameter model (2.5 GB on disk)")
	}
	root := os.Getenv("BATCHTRANS_BIG_DIR")
	if root == "" {
		root = b.TempDir()
	}
	mdir, adir, err := synth.BigFolders(root)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		adapter string
		bf16    bool
	}{
		{"bf16", "", true}, {"bf16+lora", adir, true}, {"f32", "", false}, {"f32+lora", adir, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var convert time.Duration
			for b.Loop() {
				up := &uploader{n: &Net{bf16: tc.bf16}}
				if _, err := llama.LoadHost(mdir, tc.adapter, tc.bf16, up.put); err != nil {
					b.Fatal(err)
				}
				convert += up.convert
			}
			b.ReportMetric(convert.Seconds()/float64(b.N), "convert-s/op")
		})
	}
}
