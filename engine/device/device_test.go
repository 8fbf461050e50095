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
	// linuxGPU as the CUDA driver answers it: usable, or not.
	h100    = []GPU{{Name: "NVIDIA H100 80GB HBM3", Memory: 80 << 30, CC: "9.0"}}
	cudaOK  = withCUDA(linuxGPU, &CUDAInfo{Library: "/usr/lib/x86_64-linux-gnu/libcuda.so.1", Driver: "12.4", GPUs: h100})
	cudaOld = withCUDA(linuxGPU, &CUDAInfo{Library: "/usr/lib/x86_64-linux-gnu/libcuda.so.1", Driver: "12.4",
		GPUs: []GPU{{Name: "Tesla T4", Memory: 15 << 30, CC: "7.5"}}, Err: "GPU 0 Tesla T4 has compute capability 7.5; the CUDA kernels need 8.0 or newer"})
	cudaNoLib  = withCUDA(linuxGPU, &CUDAInfo{Err: "no NVIDIA driver library: tried libcuda.so.1 (not found)"})
	noGPUNoLib = withCUDA(linuxX86, &CUDAInfo{Err: "no NVIDIA driver library: tried libcuda.so.1 (not found)"})
)

// gpuNotAsked is why a GPU that only /proc shows is not used.
var gpuNotAsked = map[bool]string{
	true:  "NVIDIA GPU found (NVIDIA H100 80GB HBM3) but the CUDA driver was not asked",
	false: "NVIDIA GPU found (NVIDIA H100 80GB HBM3) but this build has no CUDA backend",
}[HasCUDABackend]

func withCUDA(i Info, c *CUDAInfo) Info {
	i.CUDA = c
	return i
}

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
		{"gpu auto", cudaOK, "auto", CUDA, []string{"[INFO] Using CUDA: 1 GPU: NVIDIA H100 80GB HBM3 (80 GiB, compute 9.0), CUDA driver 12.4"}, ""},
		{"gpu cpu", cudaOK, "cpu", CPU, []string{LogForcedCPU}, ""},
		{"gpu cuda", cudaOK, "cuda", CUDA, []string{"[INFO] Using CUDA: 1 GPU: NVIDIA H100 80GB HBM3 (80 GiB, compute 9.0), CUDA driver 12.4"}, ""},
		{"old gpu auto", cudaOld, "auto", CPU, []string{"[INFO] CUDA not used (GPU 0 Tesla T4 has compute capability 7.5; the CUDA kernels need 8.0 or newer); using CPU"}, ""},
		{"old gpu cuda", cudaOld, "cuda", "", nil, "device cuda: GPU 0 Tesla T4 has compute capability 7.5"},
		{"no library auto", cudaNoLib, "auto", CPU, []string{"[INFO] CUDA not used (no NVIDIA driver library: tried libcuda.so.1 (not found)); using CPU"}, ""},
		{"no library cuda", cudaNoLib, "cuda", "", nil, "device cuda: no NVIDIA driver library"},
		{"no gpu no library auto", noGPUNoLib, "auto", CPU, nil, ""},
		{"no gpu no library cuda", noGPUNoLib, "cuda", "", nil, "device cuda: no NVIDIA GPU found on this machine (no NVIDIA driver library"},
		{"apple auto", macARM, "auto", CPU, []string{"[WARNING] MPS detected but has 4GB tensor limit", "[WARNING] Defaulting to CPU for stability"}, ""},
		{"apple cpu", macARM, "CPU", CPU, []string{"[INFO] Forcing CPU for inference (user requested)"}, ""},
		{"apple mps", macARM, "mps", "", nil, "this build has no MPS backend"},
		{"apple cuda", macARM, "cuda", "", nil, "no NVIDIA GPU found"},
		{"intel mac auto", macIntel, "auto", CPU, nil, ""},
		{"intel mac mps", macIntel, "mps", "", nil, "not a Mac with Apple Silicon"},
		{"unknown name", linuxX86, "tpu", "", nil, `unknown device "tpu"`},
		{"gpu not asked", linuxGPU, "auto", CPU, []string{"[INFO] CUDA not used (" + gpuNotAsked + "); using CPU"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.info.CUDA != nil && !HasCUDABackend {
				t.Skip("the CUDA driver's answers exist only in builds with the CUDA backend")
			}
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
		{"open kernel module", fstest.MapFS{
			"proc/cpuinfo":               cpuinfo,
			"proc/driver/nvidia/version": {Data: []byte("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  (dvs-builder@U22-I3-AE18-23-3)  Thu Oct  2 2025\n")},
		}, "AMD EPYC 9R45 64-Core Processor", "580.159.04", nil},
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
	assert.Contains(t, Describe(cudaOK), "cuda driver: /usr/lib/x86_64-linux-gnu/libcuda.so.1 (version 12.4)")
	assert.Contains(t, Describe(cudaOK), "cuda gpu 0: NVIDIA H100 80GB HBM3, 81920 MiB, compute capability 9.0")
	assert.Contains(t, Describe(cudaOld), "cuda: not usable: GPU 0 Tesla T4 has compute capability 7.5; the CUDA kernels need 8.0 or newer")
}
