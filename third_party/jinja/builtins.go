package jinja

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// globalFunc is a built-in global function. It works within the render's
// limits.
type globalFunc func(l *limiter, args []Value, kwargs map[string]Value) (Value, error)

// builtinGlobals maps names to the built-in global functions. It is only
// read after package initialization. A render binds a global to its
// limiter when the template first uses it (see scope.get).
var builtinGlobals map[string]globalFunc

func init() {
	builtinGlobals = map[string]globalFunc{
		"namespace":       builtinNamespace,
		"raise_exception": builtinRaiseException,
		"range":           builtinRange,
		"joiner":          builtinJoiner,
		"dict":            builtinDict,
		"cycler":          builtinCycler,
		"strftime_now":    builtinStrftimeNow,
	}
}

// global returns the built-in global name bound to l.
func (l *limiter) global(name string) (Value, bool) {
	fn, ok := builtinGlobals[name]
	if !ok {
		return Undefined(), false
	}
	return NewCallable(name, func(args []Value, kwargs map[string]Value) (Value, error) {
		return fn(l, args, kwargs)
	}), true
}

func builtinNamespace(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if err := l.dict(len(kwargs)); err != nil {
		return Undefined(), err
	}
	d := NewDict()
	dict := d.AsDict()
	for k, v := range kwargs {
		dict.Set(k, v)
	}
	return d, nil
}

func builtinRaiseException(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 {
		return Undefined(), fmt.Errorf("raise_exception: missing message")
	}
	msg, err := l.text(args[0])
	if err != nil {
		return Undefined(), err
	}
	return Undefined(), fmt.Errorf("%s", msg)
}

func builtinRange(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	var start, stop, step int64
	switch len(args) {
	case 1:
		start = 0
		stop = toInt64(args[0])
		step = 1
	case 2:
		start = toInt64(args[0])
		stop = toInt64(args[1])
		step = 1
	case 3:
		start = toInt64(args[0])
		stop = toInt64(args[1])
		step = toInt64(args[2])
	default:
		return Undefined(), fmt.Errorf("range: expected 1-3 arguments, got %d", len(args))
	}

	if step == 0 {
		return Undefined(), fmt.Errorf("range: step must not be zero")
	}

	// Count the items first, in unsigned arithmetic so that no bounds
	// overflow, and check them before building the list.
	var span, stride uint64
	switch {
	case step > 0 && stop > start:
		span, stride = uint64(stop-start), uint64(step)
	case step < 0 && stop < start:
		span, stride = uint64(start-stop), uint64(-step)
	default:
		stride = 1
	}
	n := span / stride
	if span%stride != 0 {
		n++
	}
	if err := l.list(int(min(n, math.MaxInt32+1))); err != nil {
		return Undefined(), err
	}
	if n > math.MaxInt32 {
		return Undefined(), fmt.Errorf("range: %d items is too many", n)
	}
	if err := l.charge(int64(n) * intBytes); err != nil {
		return Undefined(), err
	}

	// Counting items rather than comparing with stop keeps the last
	// i += step from overflowing past stop into an endless loop.
	items := make([]Value, 0, n)
	for k, i := uint64(0), start; k < n; k, i = k+1, i+step {
		items = append(items, NewInt(i))
	}

	return NewList(items), nil
}

func builtinJoiner(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	sep := ""
	if len(args) > 0 {
		var err error
		if sep, err = l.text(args[0]); err != nil {
			return Undefined(), err
		}
	}

	if err := l.charge(callableBytes); err != nil {
		return Undefined(), err
	}
	first := true
	return NewCallable("joiner", func(args []Value, kwargs map[string]Value) (Value, error) {
		if first {
			first = false
			return NewString(""), nil
		}
		return NewString(sep), nil
	}), nil
}

func builtinDict(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if err := l.dict(len(kwargs)); err != nil {
		return Undefined(), err
	}
	d := NewDict()
	dict := d.AsDict()
	for k, v := range kwargs {
		dict.Set(k, v)
	}
	return d, nil
}

func builtinStrftimeNow(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	format := "%Y-%m-%d"
	if len(args) > 0 {
		var err error
		if format, err = l.text(args[0]); err != nil {
			return Undefined(), err
		}
	}

	// Convert Python strftime format to Go time format.
	now := time.Now()
	goFmt := strftimeToGo(format)
	return l.newStringValue(now.Format(goFmt))
}

// strftimeToGo converts a Python strftime format string to a Go time format.
func strftimeToGo(format string) string {
	r := strings.NewReplacer(
		"%Y", "2006",
		"%m", "01",
		"%d", "02",
		"%H", "15",
		"%M", "04",
		"%S", "05",
		"%B", "January",
		"%b", "Jan",
		"%A", "Monday",
		"%a", "Mon",
		"%p", "PM",
		"%I", "03",
		"%Z", "MST",
		"%%", "%",
	)
	return r.Replace(format)
}

func builtinCycler(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 {
		return Undefined(), fmt.Errorf("cycler: expected at least one argument")
	}
	if err := l.list(len(args)); err != nil {
		return Undefined(), err
	}
	if err := l.charge(dictBytes + 3*dictItemBytes + 2*callableBytes); err != nil {
		return Undefined(), err
	}

	idx := 0
	items := make([]Value, len(args))
	copy(items, args)

	d := NewDict()
	dict := d.AsDict()
	dict.Set("current", items[0])
	dict.Set("next", NewCallable("cycler.next", func(a []Value, kw map[string]Value) (Value, error) {
		v := items[idx]
		idx = (idx + 1) % len(items)
		dict.Set("current", items[idx])
		return v, nil
	}))
	dict.Set("reset", NewCallable("cycler.reset", func(a []Value, kw map[string]Value) (Value, error) {
		idx = 0
		dict.Set("current", items[0])
		return None(), nil
	}))

	return d, nil
}

// =============================================================================
// Filter functions
// =============================================================================

// filterFunc is a built-in filter. It works within the render's limits.
type filterFunc func(l *limiter, args []Value, kwargs map[string]Value) (Value, error)

// builtinFilters maps filter names to the built-in filters. It is only
// read after package initialization.
var builtinFilters map[string]filterFunc

func init() {
	builtinFilters = map[string]filterFunc{
		"tojson":     filterTojson,
		"from_json":  filterFromjson,
		"fromjson":   filterFromjson,
		"items":      filterItems,
		"join":       filterJoin,
		"default":    filterDefault,
		"d":          filterDefault,
		"trim":       filterTrim,
		"lower":      filterLower,
		"upper":      filterUpper,
		"title":      filterTitle,
		"capitalize": filterCapitalize,
		"first":      filterFirst,
		"last":       filterLast,
		"length":     filterLength,
		"count":      filterLength,
		"reverse":    filterReverse,
		"sort":       filterSort,
		"unique":     filterUnique,
		"list":       filterList,
		"int":        filterInt,
		"float":      filterFloatConv,
		"string":     filterString,
		"safe":       filterSafe,
		"replace":    filterReplace,
		"round":      filterRound,
		"abs":        filterAbs,
		"map":        filterMap,
		"select":     filterSelect,
		"reject":     filterReject,
		"selectattr": filterSelectattr,
		"rejectattr": filterRejectattr,
		"indent":     filterIndent,
		"wordcount":  filterWordcount,
		"escape":     filterEscape,
		"e":          filterEscape,
		"dictsort":   filterDictsort,
		"max":        filterMax,
		"min":        filterMin,
		"sum":        filterSum,
		"batch":      filterBatch,
	}
}

// lookupFilter returns the built-in filter name.
func lookupFilter(name string) (filterFunc, bool) {
	f, ok := builtinFilters[name]
	return f, ok
}

// =============================================================================
// Test evaluation
// =============================================================================

func evalTest(l *limiter, name string, val Value, args []Value) (bool, error) {
	switch name {
	case "defined":
		return !val.IsUndefined(), nil
	case "undefined":
		return val.IsUndefined(), nil
	case "none":
		return val.IsNone(), nil
	case "boolean":
		return val.IsBool(), nil
	case "integer":
		return val.IsInt(), nil
	case "float":
		return val.IsFloat(), nil
	case "number":
		return val.IsNumber(), nil
	case "string":
		return val.IsString(), nil
	case "mapping":
		return val.IsDict(), nil
	case "iterable":
		return val.IsList() || val.IsDict() || val.IsString(), nil
	case "sequence":
		return val.IsList(), nil
	case "callable":
		return val.IsCallable(), nil
	case "true":
		return val.IsBool() && val.AsBool(), nil
	case "false":
		return val.IsBool() && !val.AsBool(), nil
	case "eq", "equalto", "==":
		if len(args) < 1 {
			return false, fmt.Errorf("test %q requires an argument", name)
		}
		return l.equal(val, args[0], 0)
	case "ne", "!=":
		if len(args) < 1 {
			return false, fmt.Errorf("test %q requires an argument", name)
		}
		eq, err := l.equal(val, args[0], 0)
		return !eq, err
	case "gt", "greaterthan", ">":
		if len(args) < 1 {
			return false, nil
		}
		return compareValues(val, args[0]) > 0, nil
	case "ge", ">=":
		if len(args) < 1 {
			return false, nil
		}
		return compareValues(val, args[0]) >= 0, nil
	case "lt", "lessthan", "<":
		if len(args) < 1 {
			return false, nil
		}
		return compareValues(val, args[0]) < 0, nil
	case "le", "<=":
		if len(args) < 1 {
			return false, nil
		}
		return compareValues(val, args[0]) <= 0, nil
	case "in":
		if len(args) < 1 {
			return false, nil
		}
		return l.containsValue(args[0], val)
	case "odd":
		if val.IsInt() {
			return val.AsInt()%2 != 0, nil
		}
		return false, nil
	case "even":
		if val.IsInt() {
			return val.AsInt()%2 == 0, nil
		}
		return false, nil
	case "upper":
		if val.IsString() {
			s := val.AsString()
			return s == strings.ToUpper(s), nil
		}
		return false, nil
	case "lower":
		if val.IsString() {
			s := val.AsString()
			return s == strings.ToLower(s), nil
		}
		return false, nil
	case "sameas":
		if len(args) < 1 {
			return false, nil
		}
		return l.equal(val, args[0], 0)
	}

	return false, fmt.Errorf("unknown test %q", name)
}

// =============================================================================
// Filter implementations
// =============================================================================

func filterTojson(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 {
		return NewString(""), nil
	}

	enc := jsonEncoder{l: l, b: l.newString(), itemSep: ", ", keySep: ": "}

	// indent works as in Python's json.dumps: a number of spaces or a
	// string, each item on a line of its own, and "," as the default
	// item separator. The width is checked before the indent is built.
	if indent, ok := kwargs["indent"]; ok && !indent.IsNone() && !indent.IsUndefined() {
		if indent.IsString() {
			enc.indent = indent.AsString()
		} else {
			n := max(toInt64(indent), 0)
			if n > int64(math.MaxInt32) {
				return Undefined(), l.str(-1)
			}
			if err := l.str(int(n)); err != nil {
				return Undefined(), err
			}
			enc.indent = strings.Repeat(" ", int(n))
		}
		enc.indented = true
		enc.itemSep = ","
	}

	if separators, ok := kwargs["separators"]; ok {
		if !separators.IsList() || separators.AsList().Len() != 2 {
			return Undefined(), fmt.Errorf("tojson: separators must contain two strings")
		}

		items := separators.AsList().Items
		if !items[0].IsString() || !items[1].IsString() {
			return Undefined(), fmt.Errorf("tojson: separators must contain two strings")
		}
		enc.itemSep = items[0].AsString()
		enc.keySep = items[1].AsString()
	}

	// Direct Value-tree encoder. Bypasses valueToGo's intermediate
	// map[string]any/[]any allocations and json.Marshal's reflection
	// path. Per-render allocations drop from ~80 (Dict.Set + valueToGo
	// + reflect) to a handful (one strings.Builder grow + one Marshal
	// per leaf string for escaping).
	if err := enc.encode(args[0], 0); err != nil {
		if l.err != nil {
			return Undefined(), l.err
		}
		return NewString(""), nil
	}
	return NewString(enc.b.String()), nil
}

// jsonEncoder writes the JSON encoding of a Value tree within the render's
// limits, without going through an intermediate Go-typed tree.
//
// The output matches Python json.dumps's defaults so that prompts rendered by
// this engine are byte-for-byte identical to those produced by HuggingFace's
// reference Jinja2 implementation:
//
//   - Item separator is ", " (with a trailing space), key/value separator is
//     ": " — Python's default when no indent is given.
//   - HTML metacharacters '&', '<', '>' are NOT escaped to \u0026 / \u003c /
//     \u003e (Go's encoding/json escapes these by default; Python does not).
//   - Dicts keep their insertion order (sort_keys=False).
//
// These differences would otherwise change the tokenization of every tool
// definition that ends up in a chat prompt.
//
// Errors of b are sticky in its limiter, so writes are checked once per
// item.
type jsonEncoder struct {
	l        *limiter
	b        *builder
	itemSep  string
	keySep   string
	indent   string
	indented bool
}

// newline starts a line indented depth levels (indented output only).
func (enc *jsonEncoder) newline(depth int) {
	if !enc.indented {
		return
	}
	enc.b.WriteByte('\n')
	for range depth {
		if enc.b.WriteString(enc.indent) != nil {
			return
		}
	}
}

func (enc *jsonEncoder) encode(v Value, depth int) error {
	b := enc.b
	switch v.kind {
	case KindUndefined, KindNone, KindCallable:
		return b.WriteString("null")

	case KindBool:
		if v.AsBool() {
			return b.WriteString("true")
		}
		return b.WriteString("false")

	case KindInt:
		var buf [20]byte
		return b.writeBytes(strconv.AppendInt(buf[:0], v.AsInt(), 10))

	case KindFloat:
		f := v.AsFloat()
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return fmt.Errorf("tojson: cannot encode %v", f)
		}
		var buf [32]byte
		return b.writeBytes(strconv.AppendFloat(buf[:0], f, 'g', -1, 64))

	case KindString:
		return encodeJSONString(b, v.AsString())

	case KindList:
		if err := enc.l.nested(depth); err != nil {
			return err
		}
		items := v.AsList().Items
		if len(items) == 0 {
			return b.WriteString("[]")
		}
		b.WriteByte('[')
		for i, item := range items {
			if err := enc.l.step(); err != nil {
				return err
			}
			if i > 0 {
				b.WriteString(enc.itemSep)
			}
			enc.newline(depth + 1)
			if err := enc.encode(item, depth+1); err != nil {
				return err
			}
		}
		enc.newline(depth)
		return b.WriteByte(']')

	case KindDict:
		if err := enc.l.nested(depth); err != nil {
			return err
		}
		d := v.AsDict()
		if d.Len() == 0 {
			return b.WriteString("{}")
		}
		b.WriteByte('{')
		for i, key := range d.Keys {
			if err := enc.l.step(); err != nil {
				return err
			}
			if i > 0 {
				b.WriteString(enc.itemSep)
			}
			enc.newline(depth + 1)
			if err := encodeJSONString(b, key); err != nil {
				return err
			}
			b.WriteString(enc.keySep)
			if err := enc.encode(d.Data[key], depth+1); err != nil {
				return err
			}
		}
		enc.newline(depth)
		return b.WriteByte('}')
	}

	return b.WriteString("null")
}

// encodeJSONString writes the JSON encoding of s without HTML-escaping (no
// \u0026 / \u003c / \u003e), matching Python json.dumps's default behaviour.
// It writes what encoding/json's Encoder with SetEscapeHTML(false) writes
// (TestEncodeJSONStringMatchesEncodingJSON holds them together), straight
// into b: the size is checked before anything is written, and no
// intermediate buffer is allocated.
func encodeJSONString(b *builder, s string) error {
	size := 2
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			size += len(jsonEscape(c))
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			size += len(`\ufffd`)
		case r == '\u2028' || r == '\u2029':
			size += len(`\u2028`)
		default:
			size += n
		}
		i += n
	}
	if err := b.reserve(size); err != nil {
		return err
	}

	// Room is reserved and charged: write to the strings.Builder itself.
	sb := &b.sb
	sb.WriteByte('"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if esc := jsonEscape(c); len(esc) != 1 {
				sb.WriteString(s[start:i])
				sb.WriteString(esc)
				start = i + 1
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			sb.WriteString(s[start:i])
			sb.WriteString(`\ufffd`)
			start = i + n
		case r == '\u2028':
			sb.WriteString(s[start:i])
			sb.WriteString(`\u2028`)
			start = i + n
		case r == '\u2029':
			sb.WriteString(s[start:i])
			sb.WriteString(`\u2029`)
			start = i + n
		}
		i += n
	}
	sb.WriteString(s[start:])
	sb.WriteByte('"')
	return nil
}

// jsonEscapes holds the JSON encoding of each ASCII byte.
var jsonEscapes = func() [utf8.RuneSelf]string {
	const hex = "0123456789abcdef"
	var t [utf8.RuneSelf]string
	for c := range t {
		switch c {
		case '\\', '"':
			t[c] = `\` + string(rune(c))
		case '\b':
			t[c] = `\b`
		case '\f':
			t[c] = `\f`
		case '\n':
			t[c] = `\n`
		case '\r':
			t[c] = `\r`
		case '\t':
			t[c] = `\t`
		default:
			if c < 0x20 {
				t[c] = `\u00` + string(hex[c>>4]) + string(hex[c&0xF])
			} else {
				t[c] = string(rune(c))
			}
		}
	}
	return t
}()

// jsonEscape returns the JSON encoding of the ASCII byte c.
func jsonEscape(c byte) string { return jsonEscapes[c] }

func filterFromjson(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 || !args[0].IsString() {
		return Undefined(), nil
	}

	// Decoded token by token so that each list, dict and string is
	// checked before it is built: json.Unmarshal into any would first
	// build Go values of many times the text's size. The decoder
	// buffers the whole text.
	if err := l.charge(int64(len(args[0].AsString()))); err != nil {
		return Undefined(), err
	}
	dec := json.NewDecoder(strings.NewReader(args[0].AsString()))
	dec.UseNumber()
	v, err := decodeJSON(l, dec, 0)
	if err == nil {
		if _, e := dec.Token(); e != io.EOF {
			err = errors.New("invalid character after top-level value")
		}
	}
	if err != nil {
		if l.err != nil {
			return Undefined(), l.err
		}
		return Undefined(), fmt.Errorf("fromjson: %w", err)
	}
	return v, nil
}

// jsonTokenBytes is charged for each JSON token decoded.
const jsonTokenBytes = 256

// decodeJSON reads one JSON value from dec. Objects keep their key order,
// as Python's json.loads does; a key given twice keeps its first place and
// its last value. Integers become ints, other numbers floats.
func decodeJSON(l *limiter, dec *json.Decoder, depth int) (Value, error) {
	if err := l.nested(depth); err != nil {
		return Undefined(), err
	}
	// Each token costs the decoder a few allocations: charged so that
	// decoding a long text stays within the render's budget.
	if err := l.charge(jsonTokenBytes); err != nil {
		return Undefined(), err
	}
	t, err := dec.Token()
	if err != nil {
		return Undefined(), err
	}
	switch t := t.(type) {
	case json.Delim:
		switch t {
		case '[':
			if err := l.list(0); err != nil {
				return Undefined(), err
			}
			var items []Value
			for dec.More() {
				item, err := decodeJSON(l, dec, depth+1)
				if err != nil {
					return Undefined(), err
				}
				if items, err = l.appendItem(items, item); err != nil {
					return Undefined(), err
				}
			}
			if _, err := dec.Token(); err != nil {
				return Undefined(), err
			}
			return NewList(items), nil
		case '{':
			if err := l.dict(0); err != nil {
				return Undefined(), err
			}
			d := NewDict()
			dict := d.AsDict()
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return Undefined(), err
				}
				key, ok := kt.(string)
				if !ok {
					return Undefined(), fmt.Errorf("object key %v is not a string", kt)
				}
				if err := l.items(dict.Len() + 1); err != nil {
					return Undefined(), err
				}
				if err := l.charge(dictItemBytes + int64(len(key))); err != nil {
					return Undefined(), err
				}
				val, err := decodeJSON(l, dec, depth+1)
				if err != nil {
					return Undefined(), err
				}
				dict.Set(key, val)
			}
			if _, err := dec.Token(); err != nil {
				return Undefined(), err
			}
			return d, nil
		}
		return Undefined(), fmt.Errorf("unexpected %v", t)
	case string:
		return l.newStringValue(t)
	case json.Number:
		return FromGoValue(t), nil
	case bool:
		return NewBool(t), nil
	case nil:
		return None(), nil
	}
	return Undefined(), fmt.Errorf("unexpected token %v", t)
}

func filterItems(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 || args[0].IsUndefined() {
		return NewList(nil), nil
	}

	// Python jinja2's |items filter raises TemplateError when applied to
	// anything that isn't a mapping, and several chat templates rely on
	// that error to bail out of an unsupported branch (e.g. when a
	// tool_call's `arguments` is a JSON string instead of an object).
	// Silently returning an empty list here let those templates render
	// invalid prompts. The wording deliberately matches Python jinja2 so
	// templates that surface this string get an identical message.
	if !args[0].IsDict() {
		//lint:ignore ST1005 message text mirrors Python jinja2 verbatim
		return Undefined(), fmt.Errorf("Can only get item pairs from a mapping.")
	}

	d := args[0].AsDict()
	if err := l.pairs(d.Len()); err != nil {
		return Undefined(), err
	}
	items := make([]Value, 0, d.Len())
	for _, key := range d.Keys {
		pair := NewList([]Value{NewString(key), d.Data[key]})
		items = append(items, pair)
	}

	return NewList(items), nil
}

func filterJoin(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 {
		return NewString(""), nil
	}

	if !args[0].IsList() {
		s, err := l.text(args[0])
		return NewString(s), err
	}

	var err error
	sep := ""
	if len(args) > 1 {
		if sep, err = l.text(args[1]); err != nil {
			return Undefined(), err
		}
	}
	if s, ok := kwargs["d"]; ok {
		if sep, err = l.text(s); err != nil {
			return Undefined(), err
		}
	}

	attr := ""
	if a, ok := kwargs["attribute"]; ok {
		if attr, err = l.text(a); err != nil {
			return Undefined(), err
		}
	}

	// The joined size is summed, without overflow, and checked before
	// strings.Join allocates it.
	list := args[0].AsList()
	parts := make([]string, list.Len())
	size := 0
	for i, item := range list.Items {
		if err := l.step(); err != nil {
			return Undefined(), err
		}
		if attr != "" && item.IsDict() {
			v, ok := item.AsDict().Get(attr)
			if ok {
				item = v
			}
		}
		if parts[i], err = l.text(item); err != nil {
			return Undefined(), err
		}
		add := len(parts[i])
		if i > 0 {
			add += len(sep)
		}
		if add > math.MaxInt-size {
			return Undefined(), l.str(-1)
		}
		size += add
		if l.lim.MaxStringBytes > 0 && size > l.lim.MaxStringBytes {
			return Undefined(), l.str(size)
		}
	}
	if err := l.str(size); err != nil {
		return Undefined(), err
	}

	return NewString(strings.Join(parts, sep)), nil
}

func filterDefault(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 {
		return Undefined(), nil
	}

	val := args[0]
	defVal := NewString("")
	if len(args) > 1 {
		defVal = args[1]
	}

	boolean := false
	if len(args) > 2 && args[2].IsBool() {
		boolean = args[2].AsBool()
	} else if b, ok := kwargs["boolean"]; ok && b.IsBool() {
		boolean = b.AsBool()
	}

	if val.IsUndefined() {
		return defVal, nil
	}

	if boolean && !val.IsTruthy() {
		return defVal, nil
	}

	return val, nil
}

func filterTrim(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 {
		return NewString(""), nil
	}
	s, err := l.text(args[0])
	if err != nil {
		return Undefined(), err
	}
	if len(args) > 1 {
		chars, err := l.text(args[1])
		if err != nil {
			return Undefined(), err
		}
		s = strings.Trim(s, chars)
	} else {
		s = strings.TrimSpace(s)
	}
	return NewString(s), nil
}

func filterLower(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 {
		return NewString(""), nil
	}
	s, err := l.text(args[0])
	if err != nil {
		return Undefined(), err
	}
	return l.newStringValue(strings.ToLower(s))
}

func filterUpper(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 {
		return NewString(""), nil
	}
	s, err := l.text(args[0])
	if err != nil {
		return Undefined(), err
	}
	return l.newStringValue(strings.ToUpper(s))
}

func filterTitle(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 {
		return NewString(""), nil
	}

	s, err := l.text(args[0])
	if err != nil {
		return Undefined(), err
	}
	runes, err := l.runes(s)
	if err != nil {
		return Undefined(), err
	}
	inWord := false
	for i, r := range runes {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			if !inWord {
				runes[i] = unicode.ToUpper(r)
				inWord = true
			} else {
				runes[i] = unicode.ToLower(r)
			}
		} else {
			inWord = false
		}
	}
	return l.newStringValue(string(runes))
}

func filterCapitalize(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 {
		return NewString(""), nil
	}
	s, err := l.text(args[0])
	if err != nil || len(s) == 0 {
		return NewString(""), err
	}
	runes, err := l.runes(s)
	if err != nil {
		return Undefined(), err
	}
	runes[0] = unicode.ToUpper(runes[0])
	for i := 1; i < len(runes); i++ {
		runes[i] = unicode.ToLower(runes[i])
	}
	return l.newStringValue(string(runes))
}

func filterFirst(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 || !args[0].IsList() {
		return Undefined(), nil
	}
	list := args[0].AsList()
	if list.Len() == 0 {
		return Undefined(), nil
	}
	return list.Get(0), nil
}

func filterLast(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 || !args[0].IsList() {
		return Undefined(), nil
	}
	list := args[0].AsList()
	if list.Len() == 0 {
		return Undefined(), nil
	}
	return list.Get(list.Len() - 1), nil
}

func filterLength(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 {
		return NewInt(0), nil
	}

	v := args[0]
	switch {
	case v.IsList():
		return NewInt(int64(v.AsList().Len())), nil
	case v.IsDict():
		return NewInt(int64(v.AsDict().Len())), nil
	case v.IsString():
		return NewInt(int64(utf8.RuneCountInString(v.AsString()))), nil
	}

	return NewInt(0), nil
}

func filterReverse(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 {
		return NewList(nil), nil
	}

	v := args[0]
	if v.IsString() {
		runes, err := l.runes(v.AsString())
		if err != nil {
			return Undefined(), err
		}
		for i, j := 0, len(runes)-1; i < j; i, j = i+1, j-1 {
			runes[i], runes[j] = runes[j], runes[i]
		}
		return l.newStringValue(string(runes))
	}

	if v.IsList() {
		src := v.AsList().Items
		if err := l.list(len(src)); err != nil {
			return Undefined(), err
		}
		items := make([]Value, len(src))
		for i, item := range src {
			items[len(src)-1-i] = item
		}
		return NewList(items), nil
	}

	return v, nil
}

func filterSort(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 || !args[0].IsList() {
		return NewList(nil), nil
	}

	src := args[0].AsList().Items
	if err := l.list(len(src)); err != nil {
		return Undefined(), err
	}
	items := make([]Value, len(src))
	copy(items, src)

	reverse := false
	if r, ok := kwargs["reverse"]; ok && r.IsBool() {
		reverse = r.AsBool()
	}

	// Each comparison is a step; once the limits are hit, the rest of
	// the sort compares nothing.
	var err error
	sort.SliceStable(items, func(i, j int) bool {
		if err != nil {
			return false
		}
		if err = l.step(); err != nil {
			return false
		}
		cmp := compareValues(items[i], items[j])
		if reverse {
			return cmp > 0
		}
		return cmp < 0
	})
	if err != nil {
		return Undefined(), err
	}

	return NewList(items), nil
}

func filterUnique(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 || !args[0].IsList() {
		return NewList(nil), nil
	}

	src := args[0].AsList().Items
	if err := l.list(len(src)); err != nil {
		return Undefined(), err
	}
	seen := make(map[string]bool)
	items := make([]Value, 0, len(src))
	for _, item := range src {
		if err := l.step(); err != nil {
			return Undefined(), err
		}
		key, err := l.text(item)
		if err != nil {
			return Undefined(), err
		}
		if !seen[key] {
			if err := l.charge(dictItemBytes + int64(len(key))); err != nil {
				return Undefined(), err
			}
			seen[key] = true
			items = append(items, item)
		}
	}

	return NewList(items), nil
}

func filterList(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 {
		return NewList(nil), nil
	}

	v := args[0]
	if v.IsList() {
		return v, nil
	}
	if v.IsString() {
		s := v.AsString()
		if err := l.list(utf8.RuneCountInString(s)); err != nil {
			return Undefined(), err
		}
		items := make([]Value, 0, utf8.RuneCountInString(s))
		for _, r := range s {
			items = append(items, NewString(string(r)))
		}
		return NewList(items), nil
	}

	return NewList([]Value{v}), nil
}

func filterInt(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 {
		return NewInt(0), nil
	}
	return NewInt(toInt64(args[0])), nil
}

func filterFloatConv(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 {
		return NewFloat(0), nil
	}
	return NewFloat(toFloat64(args[0])), nil
}

func filterString(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 {
		return NewString(""), nil
	}
	s, err := l.text(args[0])
	return NewString(s), err
}

func filterSafe(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 {
		return NewString(""), nil
	}
	return args[0], nil
}

func filterReplace(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) < 3 {
		return NewString(""), fmt.Errorf("replace: expected at least 3 arguments")
	}
	var strs [3]string
	for i := range strs {
		var err error
		if strs[i], err = l.text(args[i]); err != nil {
			return Undefined(), err
		}
	}
	s, old, newStr := strs[0], strs[1], strs[2]

	count := -1
	if len(args) > 3 {
		count = int(toInt64(args[3]))
	}
	if c, ok := kwargs["count"]; ok {
		count = int(toInt64(c))
	}

	return l.replace(s, old, newStr, count)
}

func filterRound(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 {
		return NewFloat(0), nil
	}

	precision := int64(0)
	if len(args) > 1 {
		precision = toInt64(args[1])
	}
	if p, ok := kwargs["precision"]; ok {
		precision = toInt64(p)
	}

	f := toFloat64(args[0])
	pow := math.Pow(10, float64(precision))
	rounded := math.Round(f*pow) / pow

	if precision == 0 {
		return NewFloat(rounded), nil
	}
	return NewFloat(rounded), nil
}

func filterAbs(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 {
		return NewInt(0), nil
	}

	v := args[0]
	if v.IsInt() {
		n := v.AsInt()
		if n < 0 {
			n = -n
		}
		return NewInt(n), nil
	}
	if v.IsFloat() {
		return NewFloat(math.Abs(v.AsFloat())), nil
	}

	return NewInt(0), nil
}

func filterMap(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 || !args[0].IsList() {
		return NewList(nil), nil
	}

	list := args[0].AsList()

	// map(attribute="name") form
	if attr, ok := kwargs["attribute"]; ok {
		attrName, err := l.text(attr)
		if err != nil {
			return Undefined(), err
		}
		defVal := Undefined()
		if d, ok := kwargs["default"]; ok {
			defVal = d
		}

		if err := l.list(list.Len()); err != nil {
			return Undefined(), err
		}
		items := make([]Value, list.Len())
		for i, item := range list.Items {
			if item.IsDict() {
				v, found := item.AsDict().Get(attrName)
				if found {
					items[i] = v
				} else {
					items[i] = defVal
				}
			} else {
				items[i] = defVal
			}
		}
		return NewList(items), nil
	}

	return NewList(list.Items), nil
}

func filterSelect(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 || !args[0].IsList() {
		return NewList(nil), nil
	}

	list := args[0].AsList()
	testName := ""
	if len(args) > 1 && args[1].IsString() {
		testName = args[1].AsString()
	}

	testArgs := args[2:]

	if err := l.list(list.Len()); err != nil {
		return Undefined(), err
	}
	items := make([]Value, 0, list.Len())
	for _, item := range list.Items {
		if err := l.step(); err != nil {
			return Undefined(), err
		}
		if testName == "" {
			if item.IsTruthy() {
				items = append(items, item)
			}
		} else {
			result, err := evalTest(l, testName, item, testArgs)
			if err != nil {
				return Undefined(), err
			}
			if result {
				items = append(items, item)
			}
		}
	}

	return NewList(items), nil
}

func filterReject(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 || !args[0].IsList() {
		return NewList(nil), nil
	}

	list := args[0].AsList()
	testName := ""
	if len(args) > 1 && args[1].IsString() {
		testName = args[1].AsString()
	}

	testArgs := args[2:]

	if err := l.list(list.Len()); err != nil {
		return Undefined(), err
	}
	items := make([]Value, 0, list.Len())
	for _, item := range list.Items {
		if err := l.step(); err != nil {
			return Undefined(), err
		}
		if testName == "" {
			if !item.IsTruthy() {
				items = append(items, item)
			}
		} else {
			result, err := evalTest(l, testName, item, testArgs)
			if err != nil {
				return Undefined(), err
			}
			if !result {
				items = append(items, item)
			}
		}
	}

	return NewList(items), nil
}

func filterSelectattr(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) < 2 || !args[0].IsList() {
		return NewList(nil), nil
	}

	list := args[0].AsList()
	attrName, err := l.text(args[1])
	if err != nil {
		return Undefined(), err
	}
	testName := "truthy"
	if len(args) > 2 {
		if testName, err = l.text(args[2]); err != nil {
			return Undefined(), err
		}
	}

	testArgs := args[3:]

	if err := l.list(list.Len()); err != nil {
		return Undefined(), err
	}
	items := make([]Value, 0, list.Len())
	for _, item := range list.Items {
		if err := l.step(); err != nil {
			return Undefined(), err
		}
		attrVal := Undefined()
		if item.IsDict() {
			if v, ok := item.AsDict().Get(attrName); ok {
				attrVal = v
			}
		}

		if testName == "truthy" {
			if attrVal.IsTruthy() {
				items = append(items, item)
			}
		} else {
			result, err := evalTest(l, testName, attrVal, testArgs)
			if err != nil {
				return Undefined(), err
			}
			if result {
				items = append(items, item)
			}
		}
	}

	return NewList(items), nil
}

func filterRejectattr(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) < 2 || !args[0].IsList() {
		return NewList(nil), nil
	}

	list := args[0].AsList()
	attrName, err := l.text(args[1])
	if err != nil {
		return Undefined(), err
	}
	testName := "truthy"
	if len(args) > 2 {
		if testName, err = l.text(args[2]); err != nil {
			return Undefined(), err
		}
	}

	testArgs := args[3:]

	if err := l.list(list.Len()); err != nil {
		return Undefined(), err
	}
	items := make([]Value, 0, list.Len())
	for _, item := range list.Items {
		if err := l.step(); err != nil {
			return Undefined(), err
		}
		attrVal := Undefined()
		if item.IsDict() {
			if v, ok := item.AsDict().Get(attrName); ok {
				attrVal = v
			}
		}

		if testName == "truthy" {
			if !attrVal.IsTruthy() {
				items = append(items, item)
			}
		} else {
			result, err := evalTest(l, testName, attrVal, testArgs)
			if err != nil {
				return Undefined(), err
			}
			if !result {
				items = append(items, item)
			}
		}
	}

	return NewList(items), nil
}

func filterIndent(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 {
		return NewString(""), nil
	}

	s, err := l.text(args[0])
	if err != nil {
		return Undefined(), err
	}
	width := int64(4)
	if len(args) > 1 {
		width = toInt64(args[1])
	}
	if w, ok := kwargs["width"]; ok {
		width = toInt64(w)
	}
	width = max(width, 0) // as Python's ' ' * width

	indentFirst := false
	if len(args) > 2 {
		indentFirst = args[2].IsTruthy()
	}
	if f, ok := kwargs["first"]; ok {
		indentFirst = f.IsTruthy()
	}

	// Count the lines that get the indent and check the result's size
	// before building it.
	padded := int64(0)
	for i, rest := 0, s; ; i++ {
		line, after, found := strings.Cut(rest, "\n")
		if line != "" && (i > 0 || indentFirst) {
			padded++
		}
		if !found {
			break
		}
		rest = after
	}
	if padded > 0 && width > (math.MaxInt32-int64(len(s)))/padded {
		return Undefined(), l.str(-1)
	}
	size := int(int64(len(s)) + padded*width)
	if err := l.str(size); err != nil {
		return Undefined(), err
	}

	pad := strings.Repeat(" ", int(width))
	var b strings.Builder
	b.Grow(size)
	for i, rest := 0, s; ; i++ {
		line, after, found := strings.Cut(rest, "\n")
		if line != "" && (i > 0 || indentFirst) {
			b.WriteString(pad)
		}
		b.WriteString(line)
		if !found {
			break
		}
		b.WriteByte('\n')
		rest = after
	}

	return NewString(b.String()), nil
}

func filterWordcount(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 {
		return NewInt(0), nil
	}
	s, err := l.text(args[0])
	if err != nil {
		return Undefined(), err
	}
	// Counted as strings.Fields splits, without building the fields.
	n, inWord := 0, false
	for _, r := range s {
		switch {
		case unicode.IsSpace(r):
			inWord = false
		case !inWord:
			inWord = true
			n++
		}
	}
	return NewInt(int64(n)), nil
}

// htmlEscaper replaces in one pass what filterEscape escapes.
var htmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#39;")

func filterEscape(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 {
		return NewString(""), nil
	}
	s, err := l.text(args[0])
	if err != nil {
		return Undefined(), err
	}
	size := len(s) + 4*strings.Count(s, "&") + 3*strings.Count(s, "<") + 3*strings.Count(s, ">") +
		5*strings.Count(s, `"`) + 4*strings.Count(s, "'")
	if size == len(s) {
		return NewString(s), nil
	}
	if err := l.fits(size); err != nil {
		return Undefined(), err
	}
	b := l.newString()
	if err := b.reserve(size); err != nil {
		return Undefined(), err
	}
	if _, err := htmlEscaper.WriteString(&b.sb, s); err != nil {
		return Undefined(), err
	}
	return NewString(b.String()), nil
}

func filterDictsort(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 || !args[0].IsDict() {
		return NewList(nil), nil
	}

	d := args[0].AsDict()
	reverse := false
	if r, ok := kwargs["reverse"]; ok && r.IsBool() {
		reverse = r.AsBool()
	}

	if err := l.pairs(d.Len()); err != nil {
		return Undefined(), err
	}
	keys := make([]string, len(d.Keys))
	copy(keys, d.Keys)

	sort.SliceStable(keys, func(i, j int) bool {
		if reverse {
			return keys[i] > keys[j]
		}
		return keys[i] < keys[j]
	})

	items := make([]Value, len(keys))
	for i, key := range keys {
		items[i] = NewList([]Value{NewString(key), d.Data[key]})
	}

	return NewList(items), nil
}

func filterMax(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 || !args[0].IsList() {
		return Undefined(), nil
	}

	list := args[0].AsList()
	if list.Len() == 0 {
		return Undefined(), nil
	}

	maxVal := list.Items[0]
	for _, item := range list.Items[1:] {
		if err := l.step(); err != nil {
			return Undefined(), err
		}
		if compareValues(item, maxVal) > 0 {
			maxVal = item
		}
	}

	return maxVal, nil
}

func filterMin(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 || !args[0].IsList() {
		return Undefined(), nil
	}

	list := args[0].AsList()
	if list.Len() == 0 {
		return Undefined(), nil
	}

	minVal := list.Items[0]
	for _, item := range list.Items[1:] {
		if err := l.step(); err != nil {
			return Undefined(), err
		}
		if compareValues(item, minVal) < 0 {
			minVal = item
		}
	}

	return minVal, nil
}

func filterSum(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) == 0 || !args[0].IsList() {
		return NewInt(0), nil
	}

	list := args[0].AsList()
	var sumF float64
	isFloat := false

	for _, item := range list.Items {
		if item.IsFloat() {
			isFloat = true
			sumF += item.AsFloat()
		} else if item.IsInt() {
			sumF += float64(item.AsInt())
		}
	}

	if isFloat {
		return NewFloat(sumF), nil
	}
	return NewInt(int64(sumF)), nil
}

func filterBatch(l *limiter, args []Value, kwargs map[string]Value) (Value, error) {
	if len(args) < 2 || !args[0].IsList() {
		return NewList(nil), nil
	}

	list := args[0].AsList()
	linecount := int(toInt64(args[1]))
	if linecount <= 0 {
		return NewList(nil), nil
	}

	batchCount := (list.Len() + linecount - 1) / linecount
	if err := l.list(batchCount); err != nil {
		return Undefined(), err
	}
	if err := l.charge(int64(batchCount)*listBytes + int64(list.Len())*listItemBytes); err != nil {
		return Undefined(), err
	}
	var batches []Value
	for i := 0; i < list.Len(); i += linecount {
		end := min(i+linecount, list.Len())
		batch := make([]Value, end-i)
		copy(batch, list.Items[i:end])
		batches = append(batches, NewList(batch))
	}

	return NewList(batches), nil
}

// =============================================================================
// Helpers
// =============================================================================

func toInt64(v Value) int64 {
	switch {
	case v.IsInt():
		return v.AsInt()
	case v.IsFloat():
		return int64(v.AsFloat())
	case v.IsBool():
		if v.AsBool() {
			return 1
		}
		return 0
	case v.IsString():
		s := v.AsString()
		var n int64
		if mayScanNumber(s) {
			fmt.Sscanf(s, "%d", &n)
		}
		return n
	}
	return 0
}

func toFloat64(v Value) float64 {
	switch {
	case v.IsFloat():
		return v.AsFloat()
	case v.IsInt():
		return float64(v.AsInt())
	case v.IsBool():
		if v.AsBool() {
			return 1
		}
		return 0
	case v.IsString():
		s := v.AsString()
		var f float64
		if mayScanNumber(s) {
			fmt.Sscanf(s, "%f", &f)
		}
		return f
	}
	return 0
}

// mayScanNumber reports whether fmt.Sscanf could read a number from s:
// false when s starts with a character no number or the space before one
// starts with. Skipping Sscanf then gives the same zero without its
// allocations, which sorting and comparing strings would repeat for
// every comparison.
func mayScanNumber(s string) bool {
	if s == "" {
		return false
	}
	c := s[0]
	return c >= utf8.RuneSelf || ('0' <= c && c <= '9') || strings.IndexByte(" \t\r\n+-._iInN", c) >= 0
}

func compareValues(a, b Value) int {
	af := toFloat64(a)
	bf := toFloat64(b)
	if af < bf {
		return -1
	}
	if af > bf {
		return 1
	}
	if a.IsString() && b.IsString() {
		return strings.Compare(a.AsString(), b.AsString())
	}
	return 0
}

func containsValue(container, item Value) bool {
	if container.IsList() {
		for _, v := range container.AsList().Items {
			if v.Equals(item) {
				return true
			}
		}
		return false
	}
	if container.IsDict() && item.IsString() {
		return container.AsDict().Has(item.AsString())
	}
	if container.IsString() && item.IsString() {
		return strings.Contains(container.AsString(), item.AsString())
	}
	return false
}

// valueToGo converts a Value back to a plain Go type suitable for
// json.Marshal.
func valueToGo(v Value) any {
	switch v.kind {
	case KindUndefined, KindNone:
		return nil
	case KindBool:
		return v.AsBool()
	case KindInt:
		return v.AsInt()
	case KindFloat:
		return v.AsFloat()
	case KindString:
		return v.AsString()
	case KindList:
		list := v.AsList()
		out := make([]any, list.Len())
		for i, item := range list.Items {
			out[i] = valueToGo(item)
		}
		return out
	case KindDict:
		d := v.AsDict()
		out := make(map[string]any, d.Len())
		for _, key := range d.Keys {
			out[key] = valueToGo(d.Data[key])
		}
		return out
	case KindCallable:
		return nil
	}
	return nil
}

// printValue converts a Value to its template output string. Unlike
// String() which returns a Python-style repr, printValue returns the
// raw text for template rendering (no quotes around strings, empty
// string for None/Undefined).
func printValue(v Value) string {
	switch v.kind {
	case KindUndefined:
		return ""
	case KindNone:
		return ""
	case KindBool:
		if v.AsBool() {
			return "True"
		}
		return "False"
	case KindInt:
		return fmt.Sprintf("%d", v.AsInt())
	case KindFloat:
		f := v.AsFloat()
		s := fmt.Sprintf("%g", f)
		return s
	case KindString:
		return v.AsString()
	case KindList:
		return v.String()
	case KindDict:
		return v.String()
	case KindCallable:
		return ""
	}
	return ""
}
