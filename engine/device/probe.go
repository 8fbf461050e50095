package device

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"path"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sys/cpu"
)

// System probes the machine the program runs on.
func System() Prober {
	return systemProbe{root: os.DirFS("/"), goos: runtime.GOOS, goarch: runtime.GOARCH, cuda: probeCUDA}
}

// systemProbe reads the machine's files through root so tests can give it
// a fake file tree.
type systemProbe struct {
	root         fs.FS
	goos, goarch string
	cuda         func() *CUDAInfo // nil: do not ask the CUDA driver
}

// Probe gathers Info. It never fails: what it cannot read stays unknown.
func (p systemProbe) Probe() Info {
	info := Info{OS: p.goos, Arch: p.goarch, CPUs: runtime.NumCPU(), CPUFlags: cpuFlags(p.goarch)}
	switch p.goos {
	case "linux":
		info.CPUModel = linuxCPUModel(p.root)
		info.NVIDIADriver, info.GPUs = linuxNVIDIA(p.root)
		if p.cuda != nil {
			info.CUDA = p.cuda()
		}
	case "darwin":
		info.CPUModel, info.AppleSilicon, info.Rosetta = darwinCPU(p.goarch)
		info.AppleSilicon = info.AppleSilicon || p.goarch == "arm64"
	}
	return info
}

func linuxCPUModel(root fs.FS) string {
	b, err := fs.ReadFile(root, "proc/cpuinfo")
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// linuxNVIDIA reads the NVIDIA driver's version line and the GPU models it
// lists; a /dev/nvidia0 node alone also counts as a GPU.
func linuxNVIDIA(root fs.FS) (driver string, gpus []string) {
	if b, err := fs.ReadFile(root, "proc/driver/nvidia/version"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		driver = strings.TrimSpace(line)
		if i := strings.Index(driver, "Kernel Module"); i >= 0 {
			// "... Kernel Module  550.54.15  Tue Mar ..." or "... Open
			// Kernel Module for x86_64  580.159.04  Release Build ...":
			// the first field that is a dotted version.
			for _, f := range strings.Fields(driver[i+len("Kernel Module"):]) {
				if isVersion(f) {
					driver = f
					break
				}
			}
		}
	}
	dirs, _ := fs.ReadDir(root, "proc/driver/nvidia/gpus")
	for _, d := range dirs {
		b, err := fs.ReadFile(root, path.Join("proc/driver/nvidia/gpus", d.Name(), "information"))
		if err != nil {
			continue
		}
		for l := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "Model" {
				gpus = append(gpus, strings.TrimSpace(v))
			}
		}
	}
	if driver == "" && len(gpus) == 0 {
		if _, err := fs.Stat(root, "dev/nvidia0"); err == nil {
			driver = "unknown version"
		}
	}
	return driver, gpus
}

func cpuFlags(goarch string) []string {
	var f []string
	switch goarch {
	case "amd64":
		add := func(ok bool, name string) {
			if ok {
				f = append(f, name)
			}
		}
		add(cpu.X86.HasAVX2, "avx2")
		add(cpu.X86.HasFMA, "fma")
		add(cpu.X86.HasAVX512F, "avx512f")
		add(cpu.X86.HasAVX512BF16, "avx512bf16")
		add(cpu.X86.HasAVX512VNNI, "avx512vnni")
	case "arm64":
		if cpu.ARM64.HasASIMD || runtime.GOOS == "darwin" {
			f = append(f, "neon")
		}
	}
	return slices.Clip(f)
}

// isVersion reports whether s looks like "580.159.04": digits and dots,
// starting with a digit, with at least one dot.
func isVersion(s string) bool {
	if s == "" || s[0] < '0' || s[0] > '9' || !strings.Contains(s, ".") {
		return false
	}
	for _, c := range s {
		if c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
