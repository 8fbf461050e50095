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

// TestGraphPolicy: a shape is recorded the second time it comes and
// replayed after; a failed shape stays direct; the set stops recording at
// maxGraphs; off means always direct.
func TestGraphPolicy(t *testing.T) {
	g := newGraphSet(false)
	g.on = true
	a, b := shape{1, 1}, shape{512, 512}
	assert.Equal(t, launchDirect, g.next(a))
	assert.Equal(t, record, g.next(a))
	g.rec[a] = 1
	assert.Equal(t, replay, g.next(a))
	assert.Equal(t, launchDirect, g.next(b))
	g.failed[b] = true
	assert.Equal(t, launchDirect, g.next(b))
	assert.Equal(t, launchDirect, g.next(b))
	for i := range maxGraphs {
		g.rec[shape{1000 + i, 0}] = 1
	}
	c := shape{7, 7}
	g.next(c)
	assert.Equal(t, launchDirect, g.next(c), "full set records no more")
	off := newGraphSet(true)
	off.next(a)
	assert.Equal(t, launchDirect, off.next(a), "profiling turns recording off")
}
