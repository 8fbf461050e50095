package kernels

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestGeneratedNEONQ8UpToDate regenerates kernels_q8_arm64.s and holds the
// committed file to it, so an edit to the generator cannot be forgotten.
func TestGeneratedNEONQ8UpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the generator with go run")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to run the generator")
	}
	out := filepath.Join(t.TempDir(), "q8.s")
	cmd := exec.Command(gobin, "run", "gen_q8_arm64.go", out)
	// The generator runs on the host, also when these tests are built for
	// another architecture and run under an emulator.
	cmd.Env = append(os.Environ(), "GOOS=", "GOARCH=")
	msg, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", msg)
	want, err := os.ReadFile(out)
	require.NoError(t, err)
	got, err := os.ReadFile("kernels_q8_arm64.s")
	require.NoError(t, err)
	assert.Equal(t, string(want), string(got), "kernels_q8_arm64.s is stale: run go generate ./engine/kernels")
}
