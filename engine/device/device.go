package device

import (
	"errors"
	"fmt"
	"strings"
)

// Device is where inference runs.
type Device string

// The devices.
const (
	CPU  Device = "cpu"
	CUDA Device = "cuda"
	MPS  Device = "mps"
)

// HasMPSBackend reports whether this build carries an MPS backend (none
// does: Apple Silicon runs on the CPU). HasCUDABackend (cuda_on.go,
// cuda_off.go) says whether it carries the CUDA one.
const HasMPSBackend = false

// ErrUnavailable is wrapped by Choose when the requested device is missing
// from this build or this machine; commands map it to a usage error.
var ErrUnavailable = errors.New("device unavailable")

// Info is what the probe found.
type Info struct {
	OS       string // runtime.GOOS
	Arch     string // runtime.GOARCH
	CPUs     int
	CPUModel string   // "" if unknown
	CPUFlags []string // SIMD features the kernels care about, e.g. "avx2"
	// NVIDIADriver is the driver's version line; "" when no NVIDIA driver
	// answers. GPUs names the GPUs it lists (may be empty when only the
	// device node was seen).
	NVIDIADriver string
	GPUs         []string
	AppleSilicon bool // macOS on an Apple M-series chip
	Rosetta      bool // an amd64 binary translated on Apple Silicon
	// CUDA is what the CUDA driver itself answered, nil when this build
	// has no CUDA backend or the probe did not ask it.
	CUDA *CUDAInfo
}

// CUDAInfo is the CUDA driver's answer: its library and version and the
// GPUs it sees, or why CUDA cannot be used.
type CUDAInfo struct {
	Library string // path of libcuda
	Driver  string // driver API version, e.g. "13.0"
	GPUs    []GPU
	Err     string // why CUDA cannot be used ("" when it can)
}

// GPU is one device the CUDA driver lists.
type GPU struct {
	Name   string
	Memory int64  // bytes
	CC     string // compute capability, "9.0"
}

// Usable reports whether the CUDA backend can run here.
func (c *CUDAInfo) Usable() bool { return c != nil && c.Err == "" && len(c.GPUs) > 0 }

// describe is a one-line account of the GPUs: "1 GPU: NVIDIA H200 (139 GiB,
// compute 9.0), driver 13.0".
func (c *CUDAInfo) describe() string {
	var gs []string
	for _, g := range c.GPUs {
		gs = append(gs, fmt.Sprintf("%s (%d GiB, compute %s)", g.Name, g.Memory>>30, g.CC))
	}
	n := "GPUs"
	if len(c.GPUs) == 1 {
		n = "GPU"
	}
	return fmt.Sprintf("%d %s: %s, CUDA driver %s", len(c.GPUs), n, strings.Join(gs, ", "), c.Driver)
}

// HasNVIDIA reports whether an NVIDIA GPU driver was found.
func (i Info) HasNVIDIA() bool { return i.NVIDIADriver != "" || len(i.GPUs) > 0 }

// Prober reports the machine. System is the real one.
type Prober interface {
	Probe() Info
}

// Static is a Prober that returns a fixed Info (for tests and for a probe
// taken once and reused).
type Static Info

// Probe returns the fixed Info.
func (s Static) Probe() Info { return Info(s) }

// The log lines DESIGN.md fixes.
const (
	LogMPSLimit  = "[WARNING] MPS detected but has 4GB tensor limit"
	LogMPSToCPU  = "[WARNING] Defaulting to CPU for stability"
	LogForcedCPU = "[INFO] Forcing CPU for inference (user requested)"
)

// Choose picks the device for requested ("", "auto", "cpu", "cuda" or
// "mps") on the machine info describes, calling log once per line to say
// why. A request for a device this build or machine lacks is an error
// wrapping ErrUnavailable; an unknown name is an error too.
func Choose(info Info, requested string, log func(string)) (Device, error) {
	if log == nil {
		log = func(string) {}
	}
	switch strings.ToLower(strings.TrimSpace(requested)) {
	case "", "auto":
		if info.CUDA.Usable() {
			log("[INFO] Using CUDA: " + info.CUDA.describe())
			return CUDA, nil
		}
		if why := cudaWhyNot(info); why != "" {
			log("[INFO] CUDA not used (" + why + "); using CPU")
			return CPU, nil
		}
		if info.AppleSilicon {
			log(LogMPSLimit)
			log(LogMPSToCPU)
			return CPU, nil
		}
		return CPU, nil
	case "cpu":
		log(LogForcedCPU)
		return CPU, nil
	case "cuda":
		if info.CUDA.Usable() {
			log("[INFO] Using CUDA: " + info.CUDA.describe())
			return CUDA, nil
		}
		why := cudaWhyNot(info)
		if why == "" {
			why = "no NVIDIA GPU found on this machine"
			if info.CUDA != nil && info.CUDA.Err != "" {
				why += " (" + info.CUDA.Err + ")"
			}
		}
		return "", fmt.Errorf("device cuda: %s (use --device cpu or auto): %w", why, ErrUnavailable)
	case "mps":
		if !info.AppleSilicon {
			return "", fmt.Errorf("device mps: this machine is not a Mac with Apple Silicon (use --device cpu or auto): %w", ErrUnavailable)
		}
		if !HasMPSBackend {
			return "", fmt.Errorf("device mps: this build has no MPS backend (MPS has a 4GB tensor limit; use --device cpu or auto): %w", ErrUnavailable)
		}
		return MPS, nil
	}
	return "", fmt.Errorf("unknown device %q (want auto, cpu, cuda or mps): %w", requested, ErrUnavailable)
}

// cudaWhyNot says why CUDA is not used where there is a sign of an NVIDIA
// GPU or driver; "" where there is none.
func cudaWhyNot(info Info) string {
	switch {
	case !HasCUDABackend && info.HasNVIDIA():
		return fmt.Sprintf("NVIDIA GPU found (%s) but this build has no CUDA backend", gpuNames(info))
	case info.CUDA != nil && info.CUDA.Err != "" && (info.HasNVIDIA() || info.CUDA.Library != ""):
		return info.CUDA.Err
	case info.HasNVIDIA() && info.CUDA == nil:
		return fmt.Sprintf("NVIDIA GPU found (%s) but the CUDA driver was not asked", gpuNames(info))
	}
	return ""
}

func gpuNames(info Info) string {
	if len(info.GPUs) == 0 {
		return "driver " + info.NVIDIADriver
	}
	return strings.Join(info.GPUs, ", ")
}

// Describe writes a short human-readable account of info, one fact a line.
func Describe(info Info) []string {
	cpu := info.CPUModel
	if cpu == "" {
		cpu = "unknown model"
	}
	lines := []string{
		fmt.Sprintf("os: %s/%s", info.OS, info.Arch),
		fmt.Sprintf("cpu: %s, %d logical cores", cpu, info.CPUs),
	}
	if len(info.CPUFlags) > 0 {
		lines = append(lines, "cpu features: "+strings.Join(info.CPUFlags, " "))
	}
	switch {
	case info.HasNVIDIA():
		g := "nvidia gpu: " + strings.Join(info.GPUs, ", ")
		if len(info.GPUs) == 0 {
			g = "nvidia gpu: yes"
		}
		if info.NVIDIADriver != "" {
			g += " (driver: " + info.NVIDIADriver + ")"
		}
		lines = append(lines, g)
	default:
		lines = append(lines, "nvidia gpu: none")
	}
	if info.AppleSilicon {
		as := "apple silicon: yes (MPS present)"
		if info.Rosetta {
			as += ", running under Rosetta"
		}
		lines = append(lines, as)
	}
	if c := info.CUDA; c != nil {
		if c.Library != "" {
			lines = append(lines, fmt.Sprintf("cuda driver: %s (version %s)", c.Library, c.Driver))
		}
		for i, g := range c.GPUs {
			lines = append(lines, fmt.Sprintf("cuda gpu %d: %s, %d MiB, compute capability %s", i, g.Name, g.Memory>>20, g.CC))
		}
		if c.Err != "" {
			lines = append(lines, "cuda: not usable: "+c.Err)
		}
	}
	lines = append(lines, fmt.Sprintf("backends in this build: cpu (cuda: %s, mps: %s)", yesNo(HasCUDABackend), yesNo(HasMPSBackend)))
	return lines
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
