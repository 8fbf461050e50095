package jobs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"text/template"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/batchtrans/batchtrans/io/blobstore"
)

// Version is the job file version this package reads.
const Version = 1

// Job is a decoded job file. Paths are absolute after Load.
type Job struct {
	Version    int        `yaml:"version"`
	Input      Input      `yaml:"input"`
	Output     Output     `yaml:"output"`
	Model      Model      `yaml:"model"`
	Prompt     Prompt     `yaml:"prompt"`
	Generation Generation `yaml:"generation"`
	Runtime    Runtime    `yaml:"runtime"`
	Checkpoint Checkpoint `yaml:"checkpoint"`
	OnError    string     `yaml:"on_error"`

	// File is the job file's absolute path; Dir its folder. Not in YAML.
	File string `yaml:"-"`
	Dir  string `yaml:"-"`
}

// Input is the rows to translate.
type Input struct {
	// Path is the input's files: one path, a glob, or a list of either;
	// local paths or object-storage URLs. They are read in sorted order as
	// one input.
	Path      Paths  `yaml:"path"`
	Format    string `yaml:"format"`     // jsonl | csv | parquet; default from the extension
	IDField   string `yaml:"id_field"`   // empty: the 0-based row number
	TextField string `yaml:"text_field"` // required
	Delimiter string `yaml:"delimiter"`  // CSV only; one character, default ","

	// Written is Path as the job file wrote it, before Load resolved it:
	// the name messages about rows use. Not in YAML.
	Written Paths `yaml:"-"`
}

// Output is where the translations go.
type Output struct {
	Path       string `yaml:"path"`
	Format     string `yaml:"format"`
	Field      string `yaml:"field"`       // default "translation"
	ErrorField string `yaml:"error_field"` // default "error"
	// FinishReasonField holds each row's finish reason: "stop", "length"
	// (cut off at generation.max_new_tokens), null on a row that failed
	// before it was translated. Default "finish_reason".
	FinishReasonField string `yaml:"finish_reason_field"`
	// Keep lists the input fields carried over; nil means all of them and an
	// empty list none.
	Keep []string `yaml:"keep"`
}

// Model is the model folder and its options.
type Model struct {
	Path    string `yaml:"path"`
	Adapter string `yaml:"adapter"`
	DType   string `yaml:"dtype"` // f32 | bf16 | q8; default bf16 (the engine's)
}

// Prompt is how a row becomes a chat prompt.
type Prompt struct {
	System       string `yaml:"system"`
	User         string `yaml:"user"` // default "{{.Text}}"
	Source       string `yaml:"source"`
	Target       string `yaml:"target"`
	ChatTemplate string `yaml:"chat_template"` // model | none; default model
	// Date is the template's date_string; empty means the first run's start
	// date, frozen in the checkpoint.
	Date string `yaml:"date"`
}

// Generation is the decoding settings.
type Generation struct {
	MaxNewTokens int      `yaml:"max_new_tokens"` // default 256
	Temperature  float64  `yaml:"temperature"`    // 0 = greedy
	TopK         int      `yaml:"top_k"`          // 0 = off
	TopP         *float64 `yaml:"top_p"`          // default 1 (off)
	Seed         uint64   `yaml:"seed"`
	Stop         []string `yaml:"stop"`
	// AcceptCut makes a row cut off at max_new_tokens a good row. By
	// default it counts as failed (its partial text kept, handled per
	// on_error). It is applied when the output is written, not when the
	// row is translated, so changing it needs no --restart.
	AcceptCut bool `yaml:"accept_cut"`
}

// Runtime is how the job runs; it never changes the output.
type Runtime struct {
	Device  string `yaml:"device"`  // auto | cpu | cuda | mps; default auto
	Workers int    `yaml:"workers"` // 0 = the runner's default
}

// Checkpoint is where progress is kept.
type Checkpoint struct {
	Path string `yaml:"path"` // default: output path + ".ckpt"
	// SyncEvery is how often an object-storage checkpoint uploads its new
	// records (default 30s); a checkpoint on a file system is durable at
	// every group commit instead.
	SyncEvery time.Duration `yaml:"sync_every"`
}

// Paths is one path or a list of them; in YAML a string or a sequence.
type Paths []string

// UnmarshalYAML takes a string or a sequence of strings.
func (p *Paths) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			*p = nil
			return nil
		}
		*p = Paths{n.Value}
		return nil
	case yaml.SequenceNode:
		out := make(Paths, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: a path list holds strings", c.Line)
			}
			out = append(out, c.Value)
		}
		*p = out
		return nil
	}
	return fmt.Errorf("line %d: want a path or a list of paths", n.Line)
}

// String is the one path, or the list in brackets.
func (p Paths) String() string {
	if len(p) == 1 {
		return p[0]
	}
	return "[" + strings.Join(p, ", ") + "]"
}

// First is the first path ("" if none).
func (p Paths) First() string {
	if len(p) == 0 {
		return ""
	}
	return p[0]
}

// The on_error policies.
const (
	OnErrorRecord = "record"
	OnErrorSkip   = "skip"
	OnErrorFail   = "fail"
)

// Formats this version knows.
var knownFormats = []string{"jsonl", "csv", "parquet"}

// Defaults fills every unset field with its default. It is the one place
// defaults live; Load calls it.
func (j *Job) Defaults() {
	if j.Input.Format == "" {
		j.Input.Format = FormatFromPath(j.Input.Path.First())
	}
	if j.Output.Format == "" {
		j.Output.Format = FormatFromPath(j.Output.Path)
	}
	if j.Output.Field == "" {
		j.Output.Field = "translation"
	}
	if j.Output.ErrorField == "" {
		j.Output.ErrorField = "error"
	}
	if j.Output.FinishReasonField == "" {
		j.Output.FinishReasonField = "finish_reason"
	}
	if j.Model.DType == "" {
		j.Model.DType = "bf16"
	}
	if j.Prompt.User == "" {
		j.Prompt.User = "{{.Text}}"
	}
	if j.Prompt.ChatTemplate == "" {
		j.Prompt.ChatTemplate = "model"
	}
	if j.Generation.MaxNewTokens == 0 {
		j.Generation.MaxNewTokens = 256
	}
	if j.Generation.TopP == nil {
		one := 1.0
		j.Generation.TopP = &one
	}
	if j.Runtime.Device == "" {
		j.Runtime.Device = "auto"
	}
	if j.Checkpoint.Path == "" && j.Output.Path != "" {
		j.Checkpoint.Path = blobstore.WithSuffix(j.Output.Path, ".ckpt")
	}
	if j.Checkpoint.SyncEvery == 0 {
		j.Checkpoint.SyncEvery = 30 * time.Second
	}
	if j.OnError == "" {
		j.OnError = OnErrorRecord
	}
}

// FormatFromPath guesses a format from a file name's extension ("" if none fits).
func FormatFromPath(p string) string {
	if blobstore.IsURL(p) {
		p, _, _ = strings.Cut(p, "?")
	}
	p = strings.ToLower(p)
	for _, z := range []string{".gz", ".zst"} {
		p = strings.TrimSuffix(p, z)
	}
	switch filepath.Ext(p) {
	case ".jsonl", ".ndjson":
		return "jsonl"
	case ".csv", ".tsv":
		return "csv"
	case ".parquet", ".pq":
		return "parquet"
	}
	return ""
}

// Load reads, strictly decodes and defaults the job file at path and
// resolves its relative paths against the file's folder. It does not
// validate: call Validate.
func Load(path string) (*Job, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read job file: %w", err)
	}
	j, err := Parse(data, path)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("job file %s: %w", path, err)
	}
	j.File = abs
	j.Dir = filepath.Dir(abs)
	j.resolve()
	j.Defaults()
	return j, nil
}

// Parse strictly decodes a job file's bytes; name labels errors. Paths stay
// as written and defaults are not applied.
func Parse(data []byte, name string) (*Job, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty job file", name)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: the job file must be a mapping of keys (version, input, output, ...)", name, root.Line)
	}
	var problems []error
	checkKeys(root, reflect.TypeOf(Job{}), "", name, &problems)
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	var j Job
	if err := root.Decode(&j); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, m := range te.Errors {
				problems = append(problems, fmt.Errorf("%s: %s", name, m))
			}
			return nil, errors.Join(problems...)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &j, nil
}

// checkKeys walks a mapping node against a struct type and reports every
// key the struct lacks, with its dotted path and line.
func checkKeys(n *yaml.Node, t reflect.Type, prefix, name string, problems *[]error) {
	if n.Kind != yaml.MappingNode || t.Kind() != reflect.Struct {
		return
	}
	fields := map[string]reflect.Type{}
	var known []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		fields[tag] = f.Type
		known = append(known, tag)
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := prefix + k.Value
		if line, dup := seen[k.Value]; dup {
			*problems = append(*problems, fmt.Errorf("%s:%d: key %q repeated (first at line %d)", name, k.Line, key, line))
			continue
		}
		seen[k.Value] = k.Line
		ft, ok := fields[k.Value]
		if !ok {
			where := "the top level"
			if prefix != "" {
				where = strings.TrimSuffix(prefix, ".")
			}
			*problems = append(*problems, fmt.Errorf("%s:%d: unknown key %q in %s (known: %s)", name, k.Line, key, where, strings.Join(known, ", ")))
			continue
		}
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct {
			if v.Kind != yaml.MappingNode && !(v.Kind == yaml.ScalarNode && v.Tag == "!!null") {
				*problems = append(*problems, fmt.Errorf("%s:%d: key %q must be a mapping", name, v.Line, key))
				continue
			}
			checkKeys(v, ft, key+".", name, problems)
		}
	}
}

func (j *Job) resolve() {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) && !blobstore.IsURL(*p) {
			*p = filepath.Join(j.Dir, *p)
		}
	}
	j.Input.Written = slices.Clone(j.Input.Path)
	for i := range j.Input.Path {
		abs(&j.Input.Path[i])
	}
	abs(&j.Output.Path)
	abs(&j.Model.Path)
	abs(&j.Model.Adapter)
	abs(&j.Checkpoint.Path)
}

// Validate reports every problem with the job at once (errors.Join), each
// naming its key. It checks the file's own consistency only: whether the
// input and model exist is for the commands to check.
func (j *Job) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, a...)))
	}
	if j.Version != Version {
		bad("version", "must be %d, got %d", Version, j.Version)
	}
	if len(j.Input.Path) == 0 {
		bad("input.path", "is required")
	}
	for i, p := range j.Input.Path {
		if p == "" {
			bad(fmt.Sprintf("input.path[%d]", i), "is empty")
		}
	}
	checkFormat := func(key, format, path string) {
		switch {
		case format == "" && path != "":
			bad(key, "cannot tell the format of %s from its extension; set %s (%s)", filepath.Base(path), key, strings.Join(knownFormats, ", "))
		case format != "" && !contains(knownFormats, format):
			bad(key, "unknown format %q (want %s)", format, strings.Join(knownFormats, ", "))
		}
	}
	checkFormat("input.format", j.Input.Format, j.Input.Path.First())
	if j.Input.TextField == "" {
		bad("input.text_field", "is required")
	}
	if j.Input.Delimiter != "" && (len([]rune(j.Input.Delimiter)) != 1 || j.Input.Format != "csv") {
		bad("input.delimiter", "must be one character, for csv input only")
	}
	if j.Output.Path == "" {
		bad("output.path", "is required")
	}
	checkFormat("output.format", j.Output.Format, j.Output.Path)
	if j.Output.Path != "" && contains(j.Input.Path, j.Output.Path) {
		bad("output.path", "is an input file")
	}
	if j.Output.Field == j.Output.ErrorField {
		bad("output.error_field", "must differ from output.field (%q)", j.Output.Field)
	}
	if f := j.Output.FinishReasonField; f == j.Output.Field || f == j.Output.ErrorField {
		bad("output.finish_reason_field", "must differ from output.field and output.error_field (%q)", f)
	}
	for _, k := range j.Output.Keep {
		if j.Output.IsResultField(k) {
			bad("output.keep", "field %q clashes with output.field, error_field or finish_reason_field", k)
		}
	}
	if j.Model.Path == "" {
		bad("model.path", "is required")
	}
	if !contains([]string{"f32", "bf16", "q8"}, j.Model.DType) {
		bad("model.dtype", "unknown dtype %q (want f32, bf16 or q8)", j.Model.DType)
	}
	for key, text := range map[string]string{"prompt.system": j.Prompt.System, "prompt.user": j.Prompt.User} {
		if _, err := NewTemplate(key, text); err != nil {
			bad(key, "%v", err)
		}
	}
	if !contains([]string{"model", "none"}, j.Prompt.ChatTemplate) {
		bad("prompt.chat_template", "must be model or none, got %q", j.Prompt.ChatTemplate)
	}
	g := j.Generation
	if g.MaxNewTokens < 1 {
		bad("generation.max_new_tokens", "must be at least 1, got %d", g.MaxNewTokens)
	}
	if g.Temperature < 0 {
		bad("generation.temperature", "must be >= 0, got %g", g.Temperature)
	}
	if g.TopK < 0 {
		bad("generation.top_k", "must be >= 0, got %d", g.TopK)
	}
	if g.TopP != nil && (*g.TopP <= 0 || *g.TopP > 1) {
		bad("generation.top_p", "must be in (0, 1], got %g", *g.TopP)
	}
	for i, s := range g.Stop {
		if s == "" {
			bad(fmt.Sprintf("generation.stop[%d]", i), "is empty")
		}
	}
	if !contains([]string{"auto", "cpu", "cuda", "mps"}, j.Runtime.Device) {
		bad("runtime.device", "must be auto, cpu, cuda or mps, got %q", j.Runtime.Device)
	}
	if j.Runtime.Workers < 0 {
		bad("runtime.workers", "must be >= 0, got %d", j.Runtime.Workers)
	}
	if j.Checkpoint.Path != "" && (j.Checkpoint.Path == j.Output.Path || contains(j.Input.Path, j.Checkpoint.Path)) {
		bad("checkpoint.path", "must differ from the input and output paths")
	}
	if j.Checkpoint.SyncEvery < 0 {
		bad("checkpoint.sync_every", "must be > 0, got %s", j.Checkpoint.SyncEvery)
	}
	if !contains([]string{OnErrorRecord, OnErrorSkip, OnErrorFail}, j.OnError) {
		bad("on_error", "must be record, skip or fail, got %q", j.OnError)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("job file %s: %w", j.File, errors.Join(errs...))
}

// IsResultField reports whether name is one of the columns the run adds
// to the output: the translation, error and finish reason fields.
func (o Output) IsResultField(name string) bool {
	return name == o.Field || name == o.ErrorField || name == o.FinishReasonField
}

// ErrorsPath is where skipped rows are listed: the output path plus
// ".errors.jsonl".
func (j *Job) ErrorsPath() string { return blobstore.WithSuffix(j.Output.Path, ".errors.jsonl") }

// NewTemplate parses a prompt template. Missing keys of .Row are errors at
// execution, so a row without a field the template reads fails visibly.
func NewTemplate(name, text string) (*template.Template, error) {
	return template.New(name).Option("missingkey=error").Parse(text)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
