//go:build !purego

package kernels

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBF16EncodingsMatchAs assembles, with GNU as, the instruction written
// above each BYTE-encoded define of kernels_bf16_amd64.s and holds the
// bytes to what as emits, so a hand-encoded VDPBF16PS cannot be wrong.
func TestBF16EncodingsMatchAs(t *testing.T) {
	as, errAs := exec.LookPath("as")
	objdump, errObj := exec.LookPath("objdump")
	if errAs != nil || errObj != nil {
		t.Skip("needs GNU as and objdump")
	}
	src, err := os.ReadFile("kernels_bf16_amd64.s")
	require.NoError(t, err)
	re := regexp.MustCompile(`(?m)^// (v\S+ .*)\n#define \w+ ((?:BYTE \$0x[0-9a-f]{2}(?:; )?)+)$`)
	var insns, want []string
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		insns = append(insns, m[1])
		want = append(want, strings.ReplaceAll(strings.ReplaceAll(m[2], "BYTE $0x", ""), "; ", ""))
	}
	require.GreaterOrEqual(t, len(insns), 16, "no encoded instructions found")
	dir := t.TempDir()
	s, o := filepath.Join(dir, "e.s"), filepath.Join(dir, "e.o")
	require.NoError(t, os.WriteFile(s, []byte(strings.Join(insns, "\n")+"\n"), 0o644))
	out, err := exec.Command(as, "--64", s, "-o", o).CombinedOutput()
	require.NoError(t, err, "%s", out)
	out, err = exec.Command(objdump, "-d", o).CombinedOutput()
	require.NoError(t, err, "%s", out)
	var got []string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Split(l, "\t")
		if len(f) >= 3 && strings.HasSuffix(strings.TrimSpace(f[0]), ":") {
			got = append(got, strings.ReplaceAll(strings.TrimSpace(f[1]), " ", ""))
		}
	}
	require.Len(t, got, len(want))
	for i := range want {
		assert.Equal(t, want[i], got[i], "%s", insns[i])
	}
}
