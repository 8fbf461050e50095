package duckcheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/batchtrans/batchtrans/io/dataset"
)

// Same reports whether theirs, a value of a Query result, equals ours, a
// value of a column of the given kind; it says how they differ when not.
func Same(kind dataset.Kind, ours, theirs any) (bool, string) {
	diff := fmt.Sprintf("ours %#v (%s), duckdb's %#v", ours, kind, theirs)
	if ours == nil || theirs == nil {
		return ours == nil && theirs == nil, diff
	}
	text := func(v any) (string, bool) {
		switch x := v.(type) {
		case string:
			return x, true
		case json.Number:
			return x.String(), true
		}
		return "", false
	}
	switch kind {
	case dataset.Int:
		s, ok := text(theirs)
		n, isInt := ours.(int64)
		return ok && isInt && s == strconv.FormatInt(n, 10), diff
	case dataset.Float:
		s, ok := text(theirs)
		if !ok {
			return false, diff
		}
		f, err := strconv.ParseFloat(s, 64)
		o, isFloat := ours.(float64)
		return err == nil && isFloat && f == o, diff
	case dataset.Bool:
		return theirs == ours, diff
	case dataset.String:
		s, ok := theirs.(string)
		return ok && s == ours, diff
	case dataset.JSON:
		var a, b []byte
		switch x := ours.(type) {
		case json.RawMessage:
			a = x
		default:
			a, _ = json.Marshal(x)
		}
		if s, ok := theirs.(string); ok {
			b = []byte(s)
		} else {
			b, _ = json.Marshal(theirs)
		}
		ca, ea := canonical(a)
		cb, eb := canonical(b)
		return ea == nil && eb == nil && bytes.Equal(ca, cb), diff
	}
	return false, diff
}

// canonical re-encodes JSON with sorted keys and numbers as written.
func canonical(b []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}
