package tokenizer

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Limits on what a tokenizer.json may declare, so that a corrupt or hostile
// file fails cleanly instead of exhausting memory.
const (
	maxFileBytes = 1 << 30 // tokenizer.json, uncompressed
	maxTokenID   = 1 << 24 // ids must be below this
	maxTokenLen  = 1 << 16 // bytes in one vocabulary entry or added token
)

// Tokenizer is a loaded byte-level BPE tokenizer. It is immutable and safe
// for concurrent use.
type Tokenizer struct {
	path string

	vocab        map[string]int32 // raw bytes -> id
	byteID       [256]int32       // id of each single-byte token, -1 if none
	merges       *mergeTable
	ignoreMerges bool
	split        splitter
	cache        *pieceCache // nil: no cache (tests of the merge code)

	tokens     []string // id -> token as written in tokenizer.json ("" = no token)
	tokenBytes [][]byte // id -> bytes it decodes to
	present    []bool   // id -> whether the id exists
	special    []bool   // id -> added token flagged special

	added   []addedToken // longest content first
	byFirst [256][]int32 // indexes into added by first byte of content

	prefix, suffix []int // post-processor tokens around a single sequence
}

// addedToken is an entry of tokenizer.json's added_tokens.
type addedToken struct {
	id         int
	content    string
	special    bool
	lstrip     bool
	rstrip     bool
	singleWord bool
	normalized bool
}

// Load reads dir/tokenizer.json. A folder with only a SentencePiece
// tokenizer.model is refused with a message that says so.
func Load(dir string) (*Tokenizer, error) {
	path := filepath.Join(dir, "tokenizer.json")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(dir, "tokenizer.model")); err == nil {
			return nil, fmt.Errorf("load tokenizer: %s does not exist, and %s is a SentencePiece model, which is not supported: convert it to a byte-level BPE tokenizer.json", path, filepath.Join(dir, "tokenizer.model"))
		}
	}
	return LoadFile(path)
}

// LoadFile reads a tokenizer.json file (gzip-compressed if its name ends in
// .gz).
func LoadFile(path string) (*Tokenizer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("load tokenizer %s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	data, err := io.ReadAll(io.LimitReader(r, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("load tokenizer %s: %w", path, err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("load tokenizer %s: file larger than %d bytes", path, maxFileBytes)
	}
	t, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer %s: %w", path, err)
	}
	t.path = path
	return t, nil
}

// Parse builds a Tokenizer from the contents of a tokenizer.json file.
func Parse(data []byte) (*Tokenizer, error) { return parse(data) }

type fileJSON struct {
	AddedTokens   []addedJSON     `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         *modelJSON      `json:"model"`
}

type addedJSON struct {
	ID         *int   `json:"id"`
	Content    string `json:"content"`
	Special    bool   `json:"special"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	SingleWord bool   `json:"single_word"`
	Normalized bool   `json:"normalized"`
}

type modelJSON struct {
	Type                    string          `json:"type"`
	Vocab                   json.RawMessage `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
	IgnoreMerges            bool            `json:"ignore_merges"`
	ByteFallback            bool            `json:"byte_fallback"`
	Dropout                 *float64        `json:"dropout"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
}

// component is any typed part of tokenizer.json (pre-tokenizer, decoder...).
type component struct {
	Type           string          `json:"type"`
	Pretokenizers  []component     `json:"pretokenizers"`
	Processors     []component     `json:"processors"`
	Normalizers    []component     `json:"normalizers"`
	Pattern        *patternJSON    `json:"pattern"`
	Behavior       string          `json:"behavior"`
	Invert         bool            `json:"invert"`
	AddPrefixSpace bool            `json:"add_prefix_space"`
	UseRegex       *bool           `json:"use_regex"`
	Single         []templatePiece `json:"single"`
	SpecialTokens  map[string]struct {
		IDs []int `json:"ids"`
	} `json:"special_tokens"`
}

type patternJSON struct {
	Regex  *string `json:"Regex"`
	String *string `json:"String"`
}

type templatePiece struct {
	SpecialToken *struct {
		ID string `json:"id"`
	} `json:"SpecialToken"`
	Sequence *struct {
		ID string `json:"id"`
	} `json:"Sequence"`
}

func isNull(m json.RawMessage) bool {
	s := bytes.TrimSpace(m)
	return len(s) == 0 || bytes.Equal(s, []byte("null"))
}

func parse(data []byte) (*Tokenizer, error) {
	var f fileJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("corrupt JSON: %w", err)
	}
	if f.Model == nil {
		return nil, errors.New("no \"model\" section")
	}
	m := f.Model
	switch m.Type {
	case "BPE":
	case "":
		return nil, errors.New("model has no \"type\" (want BPE)")
	default:
		return nil, fmt.Errorf("unsupported model type %q: only byte-level BPE tokenizers are supported", m.Type)
	}
	switch {
	case m.ByteFallback:
		return nil, errors.New("unsupported BPE with byte_fallback (SentencePiece style): only byte-level BPE is supported")
	case m.Dropout != nil && *m.Dropout > 0:
		return nil, fmt.Errorf("unsupported BPE dropout %g", *m.Dropout)
	case m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "":
		return nil, errors.New("unsupported BPE continuing_subword_prefix")
	case m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "":
		return nil, errors.New("unsupported BPE end_of_word_suffix")
	}
	if err := checkNormalizer(f.Normalizer); err != nil {
		return nil, err
	}
	t := &Tokenizer{ignoreMerges: m.IgnoreMerges, cache: newPieceCache()}
	var err error
	if t.split, err = parsePreTokenizer(f.PreTokenizer); err != nil {
		return nil, err
	}
	if err := checkDecoder(f.Decoder); err != nil {
		return nil, err
	}

	var vocab map[string]int
	if err := json.Unmarshal(m.Vocab, &vocab); err != nil {
		return nil, fmt.Errorf("model.vocab: want an object of token to id: %w", err)
	}
	size := 0
	for tok, id := range vocab {
		if id < 0 || id >= maxTokenID {
			return nil, fmt.Errorf("model.vocab: token %q has id %d out of range [0, %d)", tok, id, maxTokenID)
		}
		if len(tok) > maxTokenLen {
			return nil, fmt.Errorf("model.vocab: token of %d bytes is too long", len(tok))
		}
		size = max(size, id+1)
	}
	for i, a := range f.AddedTokens {
		if a.ID == nil || *a.ID < 0 || *a.ID >= maxTokenID {
			return nil, fmt.Errorf("added_tokens[%d]: missing or out-of-range id", i)
		}
		if a.Content == "" || len(a.Content) > maxTokenLen {
			return nil, fmt.Errorf("added_tokens[%d]: content empty or too long", i)
		}
		size = max(size, *a.ID+1)
	}
	t.tokens = make([]string, size)
	t.tokenBytes = make([][]byte, size)
	t.present = make([]bool, size)
	t.special = make([]bool, size)
	t.vocab = make(map[string]int32, len(vocab))
	for tok, id := range vocab {
		if t.present[id] {
			return nil, fmt.Errorf("model.vocab: id %d used twice (%q and %q)", id, t.tokens[id], tok)
		}
		raw, ok := byteLevelDecode(tok)
		if !ok {
			return nil, fmt.Errorf("model.vocab: token %q is not in the byte-level alphabet (not a byte-level BPE vocabulary)", tok)
		}
		t.tokens[id], t.tokenBytes[id], t.present[id] = tok, raw, true
		t.vocab[string(raw)] = int32(id)
	}
	for b := range t.byteID {
		t.byteID[b] = -1
		if id, ok := t.vocab[string([]byte{byte(b)})]; ok {
			t.byteID[b] = id
		}
	}
	if err := t.parseMerges(m.Merges, vocab); err != nil {
		return nil, err
	}
	for _, a := range f.AddedTokens {
		id := *a.ID
		t.tokens[id] = a.Content
		t.tokenBytes[id], _ = byteLevelDecode(a.Content)
		t.present[id] = true
		t.special[id] = a.Special
		t.added = append(t.added, addedToken{id: id, content: a.Content, special: a.Special,
			lstrip: a.LStrip, rstrip: a.RStrip, singleWord: a.SingleWord, normalized: a.Normalized})
	}
	if err := t.parsePostProcessor(f.PostProcessor); err != nil {
		return nil, err
	}
	t.indexAdded()
	return t, nil
}

// merge is one entry of model.merges in either of its two forms.
type merge [2]string

func (m *merge) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		parts := strings.Split(s, " ")
		if len(parts) != 2 {
			return fmt.Errorf("merge %q: want two tokens separated by one space", s)
		}
		m[0], m[1] = parts[0], parts[1]
		return nil
	}
	var pair []string
	if err := json.Unmarshal(b, &pair); err != nil {
		return fmt.Errorf("merge %s: want \"a b\" or [\"a\", \"b\"]", truncate(string(b), 40))
	}
	if len(pair) != 2 {
		return fmt.Errorf("merge %s: want two tokens", truncate(string(b), 40))
	}
	m[0], m[1] = pair[0], pair[1]
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func (t *Tokenizer) parseMerges(raw json.RawMessage, vocab map[string]int) error {
	if isNull(raw) {
		t.merges = newMergeTable(0, len(t.tokens))
		return nil
	}
	var merges []merge
	if err := json.Unmarshal(raw, &merges); err != nil {
		return fmt.Errorf("model.merges: %w", err)
	}
	if len(merges) >= maxTokenID {
		return fmt.Errorf("model.merges: %d entries, more than %d", len(merges), maxTokenID)
	}
	t.merges = newMergeTable(len(merges), len(t.tokens))
	for rank, mg := range merges {
		a, okA := vocab[mg[0]]
		b, okB := vocab[mg[1]]
		if !okA || !okB {
			return fmt.Errorf("model.merges[%d]: %q + %q: token not in vocab", rank, mg[0], mg[1])
		}
		n, ok := vocab[mg[0]+mg[1]]
		if !ok {
			return fmt.Errorf("model.merges[%d]: merged token %q not in vocab", rank, mg[0]+mg[1])
		}
		// A later duplicate overrides an earlier one, as in Hugging Face.
		t.merges.put(int32(a), int32(b), rank, int32(n))
	}
	return nil
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

func checkNormalizer(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("normalizer: %w", err)
	}
	if c.Type == "Sequence" && len(c.Normalizers) == 0 {
		return nil
	}
	return fmt.Errorf("unsupported normalizer %q: only tokenizers without a normalizer (such as Llama 3) are supported", c.Type)
}

func parsePreTokenizer(raw json.RawMessage) (splitter, error) {
	if isNull(raw) {
		return splitter{}, errors.New("no pre_tokenizer: want the Llama 3 Split + ByteLevel sequence")
	}
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return splitter{}, fmt.Errorf("pre_tokenizer: %w", err)
	}
	if c.Type != "Sequence" || len(c.Pretokenizers) != 2 || c.Pretokenizers[0].Type != "Split" || c.Pretokenizers[1].Type != "ByteLevel" {
		return splitter{}, fmt.Errorf("unsupported pre_tokenizer %s: want a Sequence of Split and ByteLevel (Llama 3 style)", describe(c))
	}
	sp, bl := c.Pretokenizers[0], c.Pretokenizers[1]
	if bl.AddPrefixSpace || (bl.UseRegex != nil && *bl.UseRegex) {
		return splitter{}, errors.New("unsupported pre_tokenizer: ByteLevel with add_prefix_space or use_regex after a Split")
	}
	if sp.Pattern == nil || sp.Pattern.Regex == nil || sp.Behavior != "Isolated" || sp.Invert {
		return splitter{}, errors.New("unsupported pre_tokenizer Split: want an Isolated regex split")
	}
	switch *sp.Pattern.Regex {
	case llama3Pattern:
		return splitter{maxDigits: 3}, nil
	case qwen2Pattern:
		return splitter{maxDigits: 1}, nil
	}
	return splitter{}, fmt.Errorf("unsupported pre_tokenizer Split regex %q: only the Llama 3 and Qwen 2 patterns are implemented", truncate(*sp.Pattern.Regex, 120))
}

func describe(c component) string {
	var parts []string
	for _, p := range c.Pretokenizers {
		parts = append(parts, p.Type)
	}
	if len(parts) == 0 {
		return c.Type
	}
	return c.Type + "[" + strings.Join(parts, ", ") + "]"
}

func checkDecoder(raw json.RawMessage) error {
	if isNull(raw) {
		return errors.New("no decoder: want ByteLevel")
	}
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("decoder: %w", err)
	}
	if c.Type != "ByteLevel" {
		return fmt.Errorf("unsupported decoder %q: want ByteLevel", c.Type)
	}
	return nil
}

// parsePostProcessor records the tokens that TemplateProcessing puts around
// a single sequence; ByteLevel post-processing adds none.
func (t *Tokenizer) parsePostProcessor(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("post_processor: %w", err)
	}
	return t.applyPostProcessor(c, 0)
}

func (t *Tokenizer) applyPostProcessor(c component, depth int) error {
	switch c.Type {
	case "ByteLevel":
		return nil
	case "Sequence":
		if depth > 4 {
			return errors.New("post_processor: sequences nested too deep")
		}
		for _, p := range c.Processors {
			if err := t.applyPostProcessor(p, depth+1); err != nil {
				return err
			}
		}
		return nil
	case "TemplateProcessing":
		seen := false
		for _, p := range c.Single {
			switch {
			case p.Sequence != nil:
				seen = true
			case p.SpecialToken != nil:
				st, ok := c.SpecialTokens[p.SpecialToken.ID]
				if !ok {
					return fmt.Errorf("post_processor: special token %q has no ids", p.SpecialToken.ID)
				}
				for _, id := range st.IDs {
					if id < 0 || id >= len(t.tokens) || !t.present[id] {
						return fmt.Errorf("post_processor: special token %q id %d not in the vocabulary", p.SpecialToken.ID, id)
					}
				}
				if seen {
					t.suffix = append(t.suffix, st.IDs...)
				} else {
					t.prefix = append(t.prefix, st.IDs...)
				}
			}
		}
		return nil
	}
	return fmt.Errorf("unsupported post_processor %q", c.Type)
}

// VocabSize is the number of ids: one more than the largest id of the
// vocabulary and the added tokens.
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// Path is the file the tokenizer was loaded from ("" if parsed from memory).
func (t *Tokenizer) Path() string { return t.path }

// TokenID returns the id of a token as written in tokenizer.json (the
// byte-level alphabet for vocabulary entries, the literal content for added
// tokens such as "<|eot_id|>").
func (t *Tokenizer) TokenID(s string) (int, bool) {
	for _, a := range t.added {
		if a.content == s {
			return a.id, true
		}
	}
	raw, ok := byteLevelDecode(s)
	if !ok {
		return 0, false
	}
	id, ok := t.vocab[string(raw)]
	if !ok || t.tokens[id] != s {
		return 0, false
	}
	return int(id), true
}

// Token returns the token of id as written in tokenizer.json, or "" if the
// id is out of range or unused.
func (t *Tokenizer) Token(id int) string {
	if id < 0 || id >= len(t.tokens) {
		return ""
	}
	return t.tokens[id]
}

// IsSpecial reports whether id is an added token flagged special (BOS, EOS,
// header markers...).
func (t *Tokenizer) IsSpecial(id int) bool {
	return id >= 0 && id < len(t.special) && t.special[id]
}

// BOS returns the token the post-processor puts before a sequence (Llama 3's
// <|begin_of_text|> when its tokenizer.json says so). ok is false when the
// post-processor adds nothing in front.
func (t *Tokenizer) BOS() (id int, ok bool) {
	if len(t.prefix) == 0 {
		return 0, false
	}
	return t.prefix[0], true
}

// WithSpecial returns ids wrapped in the post-processor's tokens for a single
// sequence, as Hugging Face's tokenizer(text) with add_special_tokens=True.
func (t *Tokenizer) WithSpecial(ids []int) []int {
	out := make([]int, 0, len(t.prefix)+len(ids)+len(t.suffix))
	out = append(out, t.prefix...)
	out = append(out, ids...)
	return append(out, t.suffix...)
}
