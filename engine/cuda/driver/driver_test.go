package driver

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The library named by BATCHTRANS_LIBCUDA is the only one tried, and a
// failure names it and the variable.
func TestOpenNamedLibrary(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the CUDA backend runs on Linux only")
	}
	missing := filepath.Join(t.TempDir(), "libcuda.so.1")
	t.Setenv(EnvLibrary, missing)
	_, err := open()
	require.Error(t, err)
	assert.Contains(t, err.Error(), missing)
	assert.Contains(t, err.Error(), EnvLibrary)

	// A file that is not a shared library is refused the same way, never
	// loaded.
	require.NoError(t, os.WriteFile(missing, []byte("not an ELF file"), 0o644))
	_, err = open()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no NVIDIA driver library")
}

// Probe never fails or panics: on a machine without a usable GPU its
// report says why.
func TestProbeReports(t *testing.T) {
	r := Probe()
	if r.Err == nil {
		require.NotEmpty(t, r.GPUs)
		assert.NotEmpty(t, r.Driver)
		for _, g := range r.GPUs {
			assert.GreaterOrEqual(t, g.Major, MinMajor)
			assert.GreaterOrEqual(t, g.SharedOptin, 48<<10, "every GPU of compute capability 8.0 or newer lets a block opt in past 48 KiB")
		}
		return
	}
	assert.NotEmpty(t, r.Err.Error())
}

func TestVersionString(t *testing.T) {
	assert.Equal(t, "13.0", VersionString(13000))
	assert.Equal(t, "11.8", VersionString(11080))
	assert.Equal(t, "12.4", VersionString(12040))
}

func TestErrorNamesTheCall(t *testing.T) {
	e := &Error{Call: "cuMemAlloc_v2", Code: ErrOutOfMemory, Name: "CUDA_ERROR_OUT_OF_MEMORY", Msg: "out of memory"}
	assert.Equal(t, "cuMemAlloc_v2: CUDA_ERROR_OUT_OF_MEMORY (2): out of memory", e.Error())
	assert.True(t, IsCode(e, ErrOutOfMemory))
	assert.False(t, IsCode(e, ErrNoDevice))
}
