package llama

import (
	"os"
	"slices"
	"strings"

	"github.com/batchtrans/batchtrans/engine/safetensors"
)

// Info describes a model folder (and adapter) as checked by Inspect.
type Info struct {
	Config      *Config
	Params      int64    // weights the config describes (output layer once when tied)
	SourceDType string   // config.json's dtype / torch_dtype, e.g. "bfloat16"
	Files       []string // the checkpoint's safetensors files
	FileBytes   int64    // their total size
	Adapter     *AdapterInfo
}

// AdapterInfo summarises a PEFT LoRA adapter.
type AdapterInfo struct {
	Dir           string
	Rank          int
	Alpha         float64
	RSLoRA        bool
	Modules       int      // linear weights the adapter changes
	Targets       []string // their kinds, e.g. q_proj, v_proj
	ModulesToSave []string // base tensors the adapter replaces whole
	DType         string   // of the LoRA weights
}

// Inspect checks a model folder and optional adapter the way Load does
// (config, every tensor name, dtype and shape, every adapter tensor against
// the base) reading only file headers, and reports what it found. It is the
// cheap check behind `batchtrans validate`.
func Inspect(modelDir, adapterDir string) (*Info, error) {
	cfg, rc, err := loadConfig(modelDir)
	if err != nil {
		return nil, err
	}
	set, err := safetensors.OpenDir(modelDir)
	if err != nil {
		return nil, err
	}
	defer set.Close()
	shapes := expectedShapes(cfg)
	if err := checkCheckpoint(modelDir, cfg, set, shapes); err != nil {
		return nil, err
	}
	info := &Info{Config: cfg, Params: cfg.ParamCount(), SourceDType: rc.sourceDType(), Files: set.Files()}
	for _, f := range info.Files {
		if st, err := os.Stat(f); err == nil {
			info.FileBytes += st.Size()
		}
	}
	if adapterDir == "" {
		return info, nil
	}
	ad, err := OpenAdapter(adapterDir)
	if err != nil {
		return nil, err
	}
	defer ad.Close()
	plan, err := ad.plan(cfg, shapes)
	if err != nil {
		return nil, err
	}
	ai := &AdapterInfo{Dir: adapterDir, Rank: ad.Rank, Alpha: ad.Alpha, RSLoRA: ad.RSLoRA, Modules: len(plan.deltas), DType: string(plan.dtype)}
	for name := range plan.deltas {
		mod := strings.TrimSuffix(name, ".weight")
		kind := mod[strings.LastIndexByte(mod, '.')+1:]
		if !slices.Contains(ai.Targets, kind) {
			ai.Targets = append(ai.Targets, kind)
		}
	}
	slices.Sort(ai.Targets)
	for name := range plan.replace {
		ai.ModulesToSave = append(ai.ModulesToSave, strings.TrimSuffix(name, ".weight"))
	}
	slices.Sort(ai.ModulesToSave)
	info.Adapter = ai
	return info, nil
}
