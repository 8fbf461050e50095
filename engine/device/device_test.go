package device

import (
	"errors"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The machines the tests fake.
var (
	linuxX86 = Info{OS: "linux", Arch: "amd64", CPUs: 16, CPUModel: "AMD EPYC 9R45"}
	linuxGPU = Info{OS: "linux", Arch: "amd64", CPUs: 32, NVIDIADriver: "550.54.15", GPUs: []string{"NVIDIA H100 80GB HBM3"}}
	macARM   = Info{OS: "darwin", Arch: "arm64", CPUs: 10, CPUModel: "Apple M2 Pro", AppleSilicon: true}
	macIntel = Info{OS: "darwin", Arch: "amd64", CPUs: 8, CPUModel: "Intel(R) Core(TM) i9-9880H"}
)

func TestChoose(t *testing.T) {
	cases := []struct {
		name      string
		info      Info
		requested string
		want      Device
		logs      []string
		err       string // "" = no error
	}{
		{"linux auto", linuxX86, "auto", CPU, nil, ""},
		{"linux default", linuxX86, "", CPU, nil, ""},
		{"linux cpu", linuxX86, "cpu", CPU, []string{LogForcedCPU}, ""},
		{"linux cuda", linuxX86, "cuda", "", nil, "no NVIDIA GPU found"},
		{"linux mps", linuxX86, "mps", "", nil, "not a Mac with Apple Silicon"},
		{"gpu auto", linuxGPU, "auto", CPU, []string{"[INFO] NVIDIA GPU found (NVIDIA H100 80GB HBM3) but this build has no CUDA backend; using CPU"}, ""},
		{"gpu cpu", linuxGPU, "cpu", CPU, []string{LogForcedCPU}, ""},
		{"gpu cuda", linuxGPU, "cuda", "", nil, "NVIDIA GPU found (NVIDIA H100 80GB HBM3) but this build has no CUDA backend"},
		{"apple auto", macARM, "auto", CPU, []string{"[WARNING] MPS detected but has 4GB tensor limit", "[WARNING] Defaulting to CPU for stability"}, ""},
		{"apple cpu", macARM, "CPU", CPU, []string{"[INFO] Forcing CPU for inference (user requested)"}, ""},
		{"apple mps", macARM, "mps", "", nil, "this build has no MPS backend"},
		{"apple cuda", macARM, "cuda", "", nil, "no NVIDIA GPU found"},
		{"intel mac auto", macIntel, "auto", CPU, nil, ""},
		{"intel mac mps", macIntel, "mps", "", nil, "not a Mac with Apple Silicon"},
		{"unknown name", linuxX86, "tpu", "", nil, `unknown device "tpu"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logs []string
			got, err := Choose(Static(tc.info).Probe(), tc.requested, func(s string) { logs = append(logs, s) })
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				assert.True(t, errors.Is(err, ErrUnavailable))
				assert.Empty(t, logs)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.logs, logs)
		})
	}
}

func TestSystemProbeLinux(t *testing.T) {
	cpuinfo := &fstest.MapFile{Data: []byte("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R45 64-Core Processor\n\nprocessor\t: 1\n")}
	cases := []struct {
		name   string
		fs     fstest.MapFS
		model  string
		driver string
		gpus   []string
	}{
		{"plain", fstest.MapFS{"proc/cpuinfo": cpuinfo}, "AMD EPYC 9R45 64-Core Processor", "", nil},
		{"nvidia driver", fstest.MapFS{
			"proc/cpuinfo":               cpuinfo,
			"proc/driver/nvidia/version": {Data: []byte("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\nGCC version:  gcc 12\n")},
			"proc/driver/nvidia/gpus/0000:01:00.0/information": {Data: []byte("Model: \t\t NVIDIA H100 80GB HBM3\nIRQ:   \t\t 42\n")},
		}, "AMD EPYC 9R45 64-Core Processor", "550.54.15", []string{"NVIDIA H100 80GB HBM3"}},
		{"device node only", fstest.MapFS{"dev/nvidia0": {}}, "", "unknown version", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			info := systemProbe{root: tc.fs, goos: "linux", goarch: "amd64"}.Probe()
			assert.Equal(t, tc.model, info.CPUModel)
			assert.Equal(t, tc.driver, info.NVIDIADriver)
			assert.Equal(t, tc.gpus, info.GPUs)
			assert.Equal(t, tc.driver != "", info.HasNVIDIA())
			assert.False(t, info.AppleSilicon)
		})
	}
	mac := systemProbe{root: fstest.MapFS{}, goos: "darwin", goarch: "arm64"}.Probe()
	assert.True(t, mac.AppleSilicon)
}

func TestDescribe(t *testing.T) {
	assert.Contains(t, Describe(linuxGPU), "nvidia gpu: NVIDIA H100 80GB HBM3 (driver: 550.54.15)")
	assert.Contains(t, Describe(linuxX86), "nvidia gpu: none")
	assert.Contains(t, Describe(macARM), "apple silicon: yes (MPS present)")
	assert.Contains(t, Describe(macIntel), "os: darwin/amd64")
}
