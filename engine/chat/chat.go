package chat

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ardanlabs/jinja"
)

// Limits that keep a hostile or broken template from hanging the program
// or eating its memory. The render limits are enforced inside the
// template library, before the value they guard is built (see render).
const (
	maxConfigBytes   = 64 << 20  // tokenizer_config.json
	maxTemplateBytes = 1 << 20   // the template source
	maxOutputBytes   = 16 << 20  // one rendered prompt, and any one string a template builds
	maxListItems     = 1 << 20   // any one list or dict a template builds (range included)
	maxRenderBytes   = 128 << 20 // everything one render builds (strings, lists, dicts, scopes, output), garbage or not
	maxRenderSteps   = 1 << 20   // loop passes, macro calls and items visited in one render
	maxMacroDepth    = 200       // nested macro calls in one render
)

// renderTimeout bounds one render (a variable for tests).
var renderTimeout = 5 * time.Second

// Message is one chat turn.
type Message struct {
	Role    string
	Content string
}

// Options are the per-render inputs besides the messages.
type Options struct {
	// AddGenerationPrompt ends the prompt with the assistant header.
	AddGenerationPrompt bool
	// Date is the template's date_string (such as "25 Nov 2026"), and
	// strftime_now formats this date (at midnight UTC) instead of the
	// clock. Empty leaves date_string undefined; strftime_now then fails.
	Date string
}

// Template is a compiled chat template with its BOS and EOS strings.
type Template struct {
	source string
	tmpl   *jinja.Template
	bos    string
	eos    string
	origin string // file it came from, for errors
}

// Load reads the chat template of a Hugging Face model folder: the file
// chat_template.jinja if present (it takes precedence, as in transformers),
// else the chat_template of tokenizer_config.json, which is a string or a
// list of {"name", "template"} from which "default" is used. bos_token and
// eos_token come from tokenizer_config.json, as strings or
// {"content": ...} objects.
func Load(dir string) (*Template, error) {
	cfgPath := filepath.Join(dir, "tokenizer_config.json")
	jinjaPath := filepath.Join(dir, "chat_template.jinja")
	var cfg config
	cfgData, err := readCapped(cfgPath, maxConfigBytes)
	switch {
	case errors.Is(err, os.ErrNotExist):
		cfgPath = ""
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal(cfgData, &cfg); err != nil {
			return nil, fmt.Errorf("chat template: parse %s: %w", cfgPath, err)
		}
	}
	bos, err := tokenString(cfg.BOS)
	if err != nil {
		return nil, fmt.Errorf("chat template: %s: bos_token: %w", cfgPath, err)
	}
	eos, err := tokenString(cfg.EOS)
	if err != nil {
		return nil, fmt.Errorf("chat template: %s: eos_token: %w", cfgPath, err)
	}
	src, err := readCapped(jinjaPath, maxTemplateBytes)
	if err == nil {
		return Parse(string(src), bos, eos, jinjaPath)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if cfgPath == "" {
		return nil, fmt.Errorf("chat template: %s has neither tokenizer_config.json nor chat_template.jinja", dir)
	}
	source, err := pickTemplate(cfg.ChatTemplate)
	if err != nil {
		return nil, fmt.Errorf("chat template: %s: chat_template: %w", cfgPath, err)
	}
	return Parse(source, bos, eos, cfgPath)
}

type config struct {
	ChatTemplate json.RawMessage `json:"chat_template"`
	BOS          json.RawMessage `json:"bos_token"`
	EOS          json.RawMessage `json:"eos_token"`
}

func readCapped(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("chat template: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("chat template: read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("chat template: %s is larger than %d bytes", path, limit)
	}
	return data, nil
}

// tokenString reads a bos_token/eos_token value: a string, null, or an
// object with "content".
func tokenString(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var obj struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Content == nil {
		return "", errors.New("want a string or an object with \"content\"")
	}
	return *obj.Content, nil
}

// pickTemplate reads chat_template: a string, or a list of named templates
// of which "default" is used.
func pickTemplate(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", errors.New("missing (and no chat_template.jinja beside it)")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var named []struct {
		Name     string `json:"name"`
		Template string `json:"template"`
	}
	if err := json.Unmarshal(raw, &named); err != nil {
		return "", errors.New("want a string or a list of {\"name\", \"template\"}")
	}
	var names []string
	for _, n := range named {
		if n.Name == "default" {
			return n.Template, nil
		}
		names = append(names, strconv.Quote(n.Name))
	}
	return "", fmt.Errorf("no template named \"default\" (have %s)", strings.Join(names, ", "))
}

// Parse compiles a template source. origin names where it came from in
// errors.
func Parse(source, bos, eos, origin string) (*Template, error) {
	if len(source) > maxTemplateBytes {
		return nil, fmt.Errorf("chat template %s: larger than %d bytes", origin, maxTemplateBytes)
	}
	if strings.TrimSpace(source) == "" {
		return nil, fmt.Errorf("chat template %s: empty", origin)
	}
	tmpl, err := compile(source)
	if err != nil {
		return nil, fmt.Errorf("chat template %s: %w", origin, err)
	}
	return &Template{source: source, tmpl: tmpl, bos: bos, eos: eos, origin: origin}, nil
}

// compile turns a panic of the template library into an error. The
// library bounds the nesting it parses, so that a template cannot
// overflow the stack.
func compile(source string) (t *jinja.Template, err error) {
	defer func() {
		if r := recover(); r != nil {
			t, err = nil, fmt.Errorf("compile: %v", r)
		}
	}()
	return jinja.Compile(source)
}

// BOS returns the bos_token string ("" if none).
func (t *Template) BOS() string { return t.bos }

// EOS returns the eos_token string ("" if none).
func (t *Template) EOS() string { return t.eos }

// Source returns the template text.
func (t *Template) Source() string { return t.source }

// Render renders the conversation. content lists the byte ranges of text
// where message contents landed (after the template's own transformations
// such as trim), sorted; empty contents have none. Contents must be
// tokenized literally (tokenizer.EncodeMixed) so that special-token strings
// in user data cannot act as markup.
//
// Ranges are found by rendering a second time with each content replaced by
// a unique marker and aligning the two outputs. A template that changes a
// content other than by trimming whitespace, or that branches on it, cannot
// be aligned: Render then fails rather than return unprotected text.
func (t *Template) Render(msgs []Message, opt Options) (text string, content [][2]int, err error) {
	text, err = t.render(msgs, opt)
	if err != nil {
		return "", nil, err
	}
	open, closeR := t.pickMarker(msgs)
	marked := make([]Message, len(msgs))
	for i, m := range msgs {
		marked[i] = m
		if m.Content != "" {
			marked[i].Content = string(open) + strconv.Itoa(i) + string(closeR)
		}
	}
	mtext, err := t.render(marked, opt)
	if err != nil {
		return "", nil, fmt.Errorf("chat template %s: locate message contents: %w", t.origin, err)
	}
	parts, err := splitMarked(mtext, open, closeR, len(msgs))
	if err != nil {
		return "", nil, fmt.Errorf("chat template %s: locate message contents: %w", t.origin, err)
	}
	a := aligner{text: text, parts: parts, msgs: msgs, failed: map[[2]int]bool{}}
	if !a.align(0, 0) {
		return "", nil, fmt.Errorf("chat template %s: message contents are transformed in a way that cannot be located in the prompt, so they cannot be tokenized literally", t.origin)
	}
	sort.Slice(a.ranges, func(i, j int) bool { return a.ranges[i][0] < a.ranges[j][0] })
	return text, a.ranges, nil
}

// pickMarker returns two private-use runes that appear in no content and not
// in the template.
func (t *Template) pickMarker(msgs []Message) (rune, rune) {
	for r := rune(0x10FC00); r < 0x10FFF0; r += 2 {
		used := strings.ContainsRune(t.source, r) || strings.ContainsRune(t.source, r+1)
		for _, m := range msgs {
			used = used || strings.ContainsRune(m.Content, r) || strings.ContainsRune(m.Content, r+1)
		}
		if !used {
			return r, r + 1
		}
	}
	return 0xF8F0, 0xF8F1 // unreachable for real text; alignment still verifies
}

// part is a piece of the marked rendering: literal template output, or the
// content of message msg (msg >= 0).
type part struct {
	lit string
	msg int
}

func splitMarked(s string, open, closeR rune, n int) ([]part, error) {
	var parts []part
	for {
		i := strings.IndexRune(s, open)
		if i < 0 {
			return append(parts, part{lit: s, msg: -1}), nil
		}
		rest := s[i+utf8.RuneLen(open):]
		j := strings.IndexRune(rest, closeR)
		if j < 0 {
			return nil, errors.New("a content marker was cut by the template")
		}
		k, err := strconv.Atoi(rest[:j])
		if err != nil || k < 0 || k >= n {
			return nil, errors.New("a content marker was changed by the template")
		}
		parts = append(parts, part{lit: s[:i], msg: -1}, part{msg: k})
		s = rest[j+utf8.RuneLen(closeR):]
	}
}

// aligner matches the marked rendering against the real one, choosing for
// each marker which form of the content (as is, or trimmed) the template
// emitted.
type aligner struct {
	text   string
	parts  []part
	msgs   []Message
	ranges [][2]int
	failed map[[2]int]bool
	steps  int
}

func (a *aligner) align(pi, pos int) bool {
	for pi < len(a.parts) && a.parts[pi].msg < 0 {
		if !strings.HasPrefix(a.text[pos:], a.parts[pi].lit) {
			return false
		}
		pos += len(a.parts[pi].lit)
		pi++
	}
	if pi == len(a.parts) {
		return pos == len(a.text)
	}
	key := [2]int{pi, pos}
	a.steps++
	if a.failed[key] || a.steps > 100_000 {
		return false
	}
	for _, form := range contentForms(a.msgs[a.parts[pi].msg].Content) {
		if !strings.HasPrefix(a.text[pos:], form) {
			continue
		}
		n := len(a.ranges)
		if form != "" {
			a.ranges = append(a.ranges, [2]int{pos, pos + len(form)})
		}
		if a.align(pi+1, pos+len(form)) {
			return true
		}
		a.ranges = a.ranges[:n]
	}
	a.failed[key] = true
	return false
}

// contentForms lists what a template may emit for a content: the content,
// and the content trimmed the ways templates trim (Python's str.strip,
// Go's TrimSpace, one side only), distinct, longest first.
func contentForms(c string) []string {
	forms := []string{c, pyStrip(c), strings.TrimSpace(c), strings.TrimLeftFunc(c, isPySpace), strings.TrimRightFunc(c, isPySpace)}
	sort.SliceStable(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	out := forms[:0]
	for _, f := range forms {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// isPySpace is Python's str.isspace for one character: Unicode White_Space
// plus the ASCII separators U+001C..U+001F.
func isPySpace(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1C && r <= 0x1F) }

func pyStrip(s string) string { return strings.TrimFunc(s, isPySpace) }
