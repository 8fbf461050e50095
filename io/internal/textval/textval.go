// Package textval formats dataset values as text, shared by the JSONL and
// CSV writers so that both spell numbers, booleans and JSON the same way.
package textval

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// AppendFloat appends f the way encoding/json spells a float64, plus ".0"
// when that spelling has neither a point nor an exponent, so that a value
// of a Float column reads back as a float. ok is false for NaN and ±Inf,
// which JSON cannot spell.
func AppendFloat(b []byte, f float64) (_ []byte, ok bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, false
	}
	start := len(b)
	abs := math.Abs(f)
	fmtc := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		fmtc = 'e'
	}
	b = strconv.AppendFloat(b, f, fmtc, -1, 64)
	if fmtc == 'e' {
		// clean up e-09 to e-9, as encoding/json does
		n := len(b) - start
		if n >= 4 && b[len(b)-4] == 'e' && b[len(b)-3] == '-' && b[len(b)-2] == '0' {
			b[len(b)-2] = b[len(b)-1]
			b = b[:len(b)-1]
		}
	}
	if !bytes.ContainsAny(b[start:], ".eE") {
		b = append(b, '.', '0')
	}
	return b, true
}

// AppendInt appends any Go integer type in decimal; ok is false for other types.
func AppendInt(b []byte, v any) (_ []byte, ok bool) {
	switch x := v.(type) {
	case int64:
		return strconv.AppendInt(b, x, 10), true
	case int:
		return strconv.AppendInt(b, int64(x), 10), true
	case int32:
		return strconv.AppendInt(b, int64(x), 10), true
	case int16:
		return strconv.AppendInt(b, int64(x), 10), true
	case int8:
		return strconv.AppendInt(b, int64(x), 10), true
	case uint64:
		return strconv.AppendUint(b, x, 10), true
	case uint:
		return strconv.AppendUint(b, uint64(x), 10), true
	case uint32:
		return strconv.AppendUint(b, uint64(x), 10), true
	case uint16:
		return strconv.AppendUint(b, uint64(x), 10), true
	case uint8:
		return strconv.AppendUint(b, uint64(x), 10), true
	}
	return b, false
}

// AppendJSONString appends s as a JSON string literal. Unlike
// encoding/json it leaves <, > and & alone; invalid UTF-8 becomes U+FFFD,
// as encoding/json does.
func AppendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// AppendJSON appends v as one line of compact JSON: strings, integers,
// floats (NaN and ±Inf as null), bools, nil, json.RawMessage and
// json.Number (validated and compacted), and anything else through
// encoding/json.
func AppendJSON(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return AppendJSONString(b, x), nil
	case []byte:
		return AppendJSONString(b, string(x)), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case float64:
		out, ok := AppendFloat(b, x)
		if !ok {
			return append(b, "null"...), nil
		}
		return out, nil
	case float32:
		out, ok := AppendFloat(b, float64(x))
		if !ok {
			return append(b, "null"...), nil
		}
		return out, nil
	case json.RawMessage:
		return appendCompact(b, x)
	case json.Number:
		return appendCompact(b, []byte(x))
	}
	if out, ok := AppendInt(b, v); ok {
		return out, nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	return append(b, raw...), nil
}

func appendCompact(b []byte, raw []byte) ([]byte, error) {
	buf := bytes.NewBuffer(b)
	if err := json.Compact(buf, raw); err != nil {
		return b, fmt.Errorf("invalid JSON value: %w", err)
	}
	return buf.Bytes(), nil
}

// AppendText appends v as CSV cell text: strings as they are, numbers and
// bools as JSON spells them, JSON values compact, nil as nothing. NaN and
// ±Inf are spelled NaN, +Inf and -Inf.
func AppendText(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return b, nil
	case string:
		return append(b, x...), nil
	case []byte:
		return append(b, x...), nil
	case float64:
		out, ok := AppendFloat(b, x)
		if !ok {
			return strconv.AppendFloat(b, x, 'g', -1, 64), nil
		}
		return out, nil
	case float32:
		out, ok := AppendFloat(b, float64(x))
		if !ok {
			return strconv.AppendFloat(b, float64(x), 'g', -1, 64), nil
		}
		return out, nil
	}
	return AppendJSON(b, v)
}
