package device

import (
	"errors"
	"fmt"
	"strings"
)

// Device is where inference runs.
type Device string

// The devices. This build has a backend for CPU only.
const (
	CPU  Device = "cpu"
	CUDA Device = "cuda"
	MPS  Device = "mps"
)

// HasCUDABackend and HasMPSBackend report which accelerator backends this
// build carries.
const (
	HasCUDABackend = false
	HasMPSBackend  = false
)

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
		if info.HasNVIDIA() {
			if HasCUDABackend {
				return CUDA, nil
			}
			log(fmt.Sprintf("[INFO] NVIDIA GPU found (%s) but this build has no CUDA backend; using CPU", gpuNames(info)))
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
		if !info.HasNVIDIA() {
			return "", fmt.Errorf("device cuda: no NVIDIA GPU found on this machine (use --device cpu or auto): %w", ErrUnavailable)
		}
		if !HasCUDABackend {
			return "", fmt.Errorf("device cuda: NVIDIA GPU found (%s) but this build has no CUDA backend (use --device cpu or auto): %w", gpuNames(info), ErrUnavailable)
		}
		return CUDA, nil
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
	lines = append(lines, fmt.Sprintf("backends in this build: cpu (cuda: %s, mps: %s)", yesNo(HasCUDABackend), yesNo(HasMPSBackend)))
	return lines
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
