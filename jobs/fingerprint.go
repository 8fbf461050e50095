package jobs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/batchtrans/batchtrans/io/dataset"
)

// Fingerprint maps each component that shapes a job's translations to a
// value or digest. Two runs may share a checkpoint only if their
// fingerprints are equal; Diff names what changed.
type Fingerprint map[string]string

// Compute fingerprints the job. prompt.date is taken as written: an empty
// date means "frozen at the first run", and the frozen value lives in the
// checkpoint beside the fingerprint. input is the input's digest (see
// io/source: every file's content); Compute reads the model and adapter
// folders' small files.
func Compute(j *Job, input string) (Fingerprint, error) {
	f := Fingerprint{
		"version":                   fmt.Sprint(j.Version),
		"input.format":              j.Input.Format,
		"input.id_field":            j.Input.IDField,
		"input.text_field":          j.Input.TextField,
		"input.delimiter":           j.Input.Delimiter,
		"model.dtype":               j.Model.DType,
		"prompt.system":             j.Prompt.System,
		"prompt.user":               j.Prompt.User,
		"prompt.source":             j.Prompt.Source,
		"prompt.target":             j.Prompt.Target,
		"prompt.chat_template":      j.Prompt.ChatTemplate,
		"prompt.date":               j.Prompt.Date,
		"generation.max_new_tokens": fmt.Sprint(j.Generation.MaxNewTokens),
		"generation.temperature":    fmt.Sprint(j.Generation.Temperature),
		"generation.top_k":          fmt.Sprint(j.Generation.TopK),
		"generation.seed":           fmt.Sprint(j.Generation.Seed),
	}
	if j.Generation.TopP != nil {
		f["generation.top_p"] = fmt.Sprint(*j.Generation.TopP)
	}
	stop, _ := json.Marshal(j.Generation.Stop)
	f["generation.stop"] = string(stop)

	f["input.file"] = input
	if err := folderDigest(f, "model", j.Model.Path); err != nil {
		return nil, err
	}
	if j.Model.Adapter != "" {
		if err := folderDigest(f, "adapter", j.Model.Adapter); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// Diff lists, sorted, the components whose values differ between f and
// old (the checkpoint's), as "generation.temperature" etc.
func (f Fingerprint) Diff(old Fingerprint) []string {
	var out []string
	for k, v := range f {
		if ov, ok := old[k]; !ok || ov != v {
			out = append(out, k)
		}
	}
	for k := range old {
		if _, ok := f[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Describe turns a Diff into a phrase for a person: "input file changed,
// generation.temperature changed (0 -> 0.7)".
func (f Fingerprint) Describe(old Fingerprint) string {
	var parts []string
	for _, k := range f.Diff(old) {
		switch k {
		case "input.file":
			if strings.Contains(f[k], " files:") || strings.Contains(old[k], " files:") {
				parts = append(parts, "input files changed")
			} else {
				parts = append(parts, "input file changed")
			}
		case "model.config", "adapter.config":
			parts = append(parts, strings.TrimSuffix(k, ".config")+" config files changed")
		case "model.weights", "adapter.weights":
			parts = append(parts, strings.TrimSuffix(k, ".weights")+" weights changed")
		case "prompt.system", "prompt.user", "generation.stop":
			parts = append(parts, k+" changed")
		default:
			parts = append(parts, fmt.Sprintf("%s changed (%q -> %q)", k, old[k], f[k]))
		}
	}
	return strings.Join(parts, ", ")
}

var weightExts = map[string]bool{".safetensors": true, ".bin": true, ".pt": true, ".pth": true, ".gguf": true}
var configExts = map[string]bool{".json": true, ".jinja": true, ".model": true, ".txt": true}

// folderDigest adds prefix.config (content hashes of the small files) and
// prefix.weights (name, size and mtime of the weight files) for a model or
// adapter folder. Large weight files are not hashed: see the package doc.
func folderDigest(f Fingerprint, prefix, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("fingerprint %s folder: %w", prefix, err)
	}
	cfg, wts := sha256.New(), sha256.New()
	for _, e := range entries { // ReadDir sorts by name
		if !e.Type().IsRegular() && e.Type()&os.ModeSymlink == 0 {
			continue
		}
		p := filepath.Join(dir, e.Name())
		ext := strings.ToLower(filepath.Ext(e.Name()))
		switch {
		case weightExts[ext]:
			st, err := os.Stat(p)
			if err != nil {
				return fmt.Errorf("fingerprint %s: %w", p, err)
			}
			fmt.Fprintf(wts, "%s\x00%d\x00%d\n", e.Name(), st.Size(), st.ModTime().UnixNano())
		case configExts[ext]:
			d, err := dataset.FileDigest(p)
			if err != nil {
				return fmt.Errorf("fingerprint %s: %w", p, err)
			}
			fmt.Fprintf(cfg, "%s\x00%s\n", e.Name(), d)
		}
	}
	f[prefix+".config"] = hex.EncodeToString(cfg.Sum(nil))
	f[prefix+".weights"] = hex.EncodeToString(wts.Sum(nil))
	return nil
}
