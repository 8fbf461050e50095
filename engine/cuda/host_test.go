package cuda

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/engine/llama"
)

// The embedded PTX must be the compilation of the CUDA C beside it: a
// changed .cu or .cuh file needs csrc/gen.sh run again.
func TestPTXFresh(t *testing.T) {
	names, err := filepath.Glob("csrc/*.cu*")
	require.NoError(t, err)
	names = slices.DeleteFunc(names, func(n string) bool { return !strings.HasSuffix(n, ".cu") && !strings.HasSuffix(n, ".cuh") })
	slices.Sort(names)
	require.NotEmpty(t, names)
	h := sha256.New()
	for _, n := range names {
		b, err := os.ReadFile(n)
		require.NoError(t, err)
		h.Write(b)
	}
	assert.Equal(t, hex.EncodeToString(h.Sum(nil)), ptxDigest(), "kernels.ptx is stale: run engine/cuda/csrc/gen.sh (needs nvcc) and commit kernels.ptx")
	assert.Contains(t, string(kernelsPTX[:400]), ".target sm_80", "the PTX must target compute_80, the oldest architecture the kernels support")
}

func TestPoolPages(t *testing.T) {
	const page = 2 << 20
	cases := []struct {
		name        string
		free, limit int64
		want        int64
	}{
		{"all but the margin", 10<<30 + kvMargin, 0, 10 << 30 / page},
		{"capped", 10<<30 + kvMargin, 1 << 30, 1 << 30 / page},
		{"cap above what is free", 3<<30 + kvMargin, 8 << 30, 3 << 30 / page},
		{"less than the margin", kvMargin / 2, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, poolPages(tc.free, tc.limit, page))
		})
	}
}

func TestSameGPUs(t *testing.T) {
	h200 := gpu("NVIDIA H200", 9, 0)
	require.NoError(t, sameGPUs(gpus(h200, h200)))
	err := sameGPUs(gpus(h200, gpu("NVIDIA A100-SXM4-80GB", 8, 0)))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "0: NVIDIA H200 (9.0), 1: NVIDIA A100-SXM4-80GB (8.0)")
	assert.Contains(t, err.Error(), "CUDA_VISIBLE_DEVICES")
}

func TestToBF16MatchesCPU(t *testing.T) {
	src := []float32{0, -0, 1, 1.00390625, 1.005859375, 3.4e38, -1e-40, float32(1) / 3}
	dst := make([]uint16, len(src))
	toBF16(dst, src)
	assert.Equal(t, []uint16{0, 0, 0x3f80, 0x3f80, 0x3f81, 0x7f80, 0x8001, 0x3eab}, dst)
}

// TestKVBytesFollowDType: the KV cache's sizes follow its element (bf16
// with bf16 weights, float32 with f32), for Llama-3.2-1B's shape.
func TestKVBytesFollowDType(t *testing.T) {
	cfg := &llama.Config{Layers: 16, KVHeads: 8, HeadDim: 64}
	cases := []struct {
		name     string
		bf16     bool
		position int // 2 (K, V) x 16 layers x 8 KV heads x 64 dimensions x element
	}{
		{"bf16", true, 2 * 16 * 8 * 64 * 2},
		{"f32", false, 2 * 16 * 8 * 64 * 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := &Net{cfg: cfg, bf16: tc.bf16, reps: []*replica{{}, {}}}
			assert.Equal(t, tc.position, n.KVBytes(1))
			assert.Equal(t, 100*tc.position, n.KVBytes(100))
			assert.Equal(t, int64(pageSize*tc.position), n.pageBytes())
			// A 33-position prefix holds two pages on each of the two replicas.
			assert.Equal(t, 2*2*pageSize*tc.position, (&Prefix{net: n, n: 33}).Bytes())
		})
	}
}
