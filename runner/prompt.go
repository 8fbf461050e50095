package runner

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"unicode/utf8"

	"github.com/batchtrans/batchtrans/engine"
	"github.com/batchtrans/batchtrans/io/blobstore"
	"github.com/batchtrans/batchtrans/io/dataset"
	"github.com/batchtrans/batchtrans/jobs"
)

// promptData is what the prompt templates see.
type promptData struct {
	Source, Target, Text string
	Row                  map[string]any
}

// builder turns records into requests; safe for concurrent use (templates
// are safe to execute concurrently).
type builder struct {
	job          *jobs.Job
	file         string // the input's base name, for messages
	system, user *template.Template
	date         string
}

func newBuilder(j *jobs.Job, date string) (*builder, error) {
	sys, err := jobs.NewTemplate("prompt.system", j.Prompt.System)
	if err != nil {
		return nil, fmt.Errorf("prompt.system: %w", err)
	}
	usr, err := jobs.NewTemplate("prompt.user", j.Prompt.User)
	if err != nil {
		return nil, fmt.Errorf("prompt.user: %w", err)
	}
	file := j.Input.Written.String()
	if file == "" {
		file = j.Input.Path.String()
	}
	return &builder{job: j, file: file, system: sys, user: usr, date: date}, nil
}

// failure is a record's failure, placed in the input as the job file
// wrote it; field is the input field at fault, if one is.
//
// A record of a many-file input (rec.File set) names its own file: its
// path relative to the job file's folder, or its URL; a Parquet record
// of one says its row within that file too.
func (b *builder) failure(rec dataset.Record, id, field, reason string) *RowFailure {
	f := &RowFailure{File: b.file, Line: rec.Line, Row: rec.Index, ID: id, Field: field, Reason: reason}
	if rec.File != "" {
		f.File = b.fileName(rec.File)
	}
	if b.job.Input.Format == "parquet" {
		if rec.File != "" {
			f.InFile = rec.Line // the row within its file, from 1
		}
		f.Line = 0 // a Parquet row has no line of its own
	}
	return f
}

// fileName names one file of a many-file input for messages.
func (b *builder) fileName(file string) string {
	if blobstore.IsURL(file) {
		return file
	}
	if rel, err := filepath.Rel(b.job.Dir, file); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return file
}

// where names a record's place for messages: "data/in.jsonl line 7 (row 6)".
func (b *builder) where(rec dataset.Record) string { return b.failure(rec, "", "", "").Place() }

// rowID is the record's id: the id field's value, or the row number.
func (b *builder) rowID(rec dataset.Record) (string, *RowFailure) {
	if b.job.Input.IDField == "" {
		return strconv.FormatInt(rec.Index, 10), nil
	}
	v, ok := field(rec, b.job.Input.IDField)
	if !ok || v == nil {
		return "", b.failure(rec, "", b.job.Input.IDField, "missing id")
	}
	return valueString(v), nil
}

// cutOff is the failure of a row whose translation max_new_tokens cut off,
// saying where it stops.
func (b *builder) cutOff(rec dataset.Record, id, text string) *RowFailure {
	tail := []rune(text)
	if len(tail) > 40 {
		tail = append([]rune("..."), tail[len(tail)-40:]...)
	}
	return b.failure(rec, id, "", fmt.Sprintf("translation cut off at generation.max_new_tokens (%d) after %q", b.job.Generation.MaxNewTokens, string(tail)))
}

// request builds the engine request for a parsed record; a failure is the
// row's fault.
func (b *builder) request(rec dataset.Record, id string) (engine.Request, *RowFailure) {
	tf := b.job.Input.TextField
	bad := func(reason string, a ...any) (engine.Request, *RowFailure) {
		return engine.Request{}, b.failure(rec, id, tf, fmt.Sprintf(reason, a...))
	}
	v, ok := field(rec, tf)
	if !ok {
		return bad("missing text field")
	}
	if raw, ok := v.(json.RawMessage); ok && len(raw) > 0 && raw[0] == '"' {
		// A field whose JSON type varies between rows arrives raw.
		var s string
		if json.Unmarshal(raw, &s) == nil {
			v = s
		}
	}
	text, isStr := v.(string)
	switch {
	case v == nil:
		return bad("text is null")
	case !isStr:
		return bad("text is %s, not a string", kindName(v))
	case !utf8.ValidString(text):
		return bad("text is not valid UTF-8")
	}
	row := make(map[string]any, len(rec.Fields))
	for _, f := range rec.Fields {
		if raw, ok := f.Value.(json.RawMessage); ok {
			row[f.Name] = string(raw)
		} else {
			row[f.Name] = f.Value
		}
	}
	d := promptData{Source: b.job.Prompt.Source, Target: b.job.Prompt.Target, Text: text, Row: row}
	var sb, ub bytes.Buffer
	if err := b.system.Execute(&sb, d); err != nil {
		return engine.Request{}, b.failure(rec, id, "", "prompt.system: "+err.Error())
	}
	if err := b.user.Execute(&ub, d); err != nil {
		return engine.Request{}, b.failure(rec, id, "", "prompt.user: "+err.Error())
	}
	g := b.job.Generation
	req := engine.Request{
		Date:         b.date,
		MaxNewTokens: g.MaxNewTokens,
		Temperature:  float32(g.Temperature),
		TopK:         g.TopK,
		TopP:         float32(*g.TopP),
		Seed:         RowSeed(g.Seed, id),
		Stop:         g.Stop,
	}
	if b.job.Prompt.ChatTemplate == "none" {
		req.NoTemplate = true
		req.Messages = []engine.Message{{Role: "user", Content: ub.String()}}
		return req, nil
	}
	if sb.Len() > 0 {
		req.Messages = append(req.Messages, engine.Message{Role: "system", Content: sb.String()})
	}
	req.Messages = append(req.Messages, engine.Message{Role: "user", Content: ub.String()})
	return req, nil
}

// RowSeed is a row's RNG seed: a function of the job's seed and the row's
// id only, so sampling does not depend on scheduling.
func RowSeed(seed uint64, id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	x := seed ^ h.Sum64()
	// splitmix64 finaliser: spreads nearby seeds and ids apart.
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func field(rec dataset.Record, name string) (any, bool) {
	for _, f := range rec.Fields {
		if f.Name == name {
			return f.Value, true
		}
	}
	return nil, false
}

func valueString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case json.RawMessage:
		return string(x)
	}
	return fmt.Sprint(v)
}

func kindName(v any) string {
	switch x := v.(type) {
	case int64, int:
		return "a number"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	case json.RawMessage:
		if len(x) > 0 && (x[0] == '[' || x[0] == '{') {
			return "an array or object"
		}
		return "a JSON value"
	}
	return fmt.Sprintf("%T", v)
}
