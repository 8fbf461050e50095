package jsonl

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
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/io/dataset"
	"github.com/batchtrans/batchtrans/io/internal/datatest"
	"github.com/batchtrans/batchtrans/io/internal/duckcheck"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	return path
}

func values(rec dataset.Record) map[string]any {
	m := map[string]any{}
	for _, f := range rec.Fields {
		m[f.Name] = f.Value
	}
	return m
}

func TestColumnsAndKinds(t *testing.T) {
	path := writeFile(t, "in.jsonl", strings.Join([]string{
		`{"id": 1, "text": "Hello", "score": 1, "ok": true, "meta": {"a": [1, 2]}, "mixed": 1, "nul": null}`,
		`{"id": 2, "text": "World", "score": 2.5, "ok": false, "meta": null, "mixed": "x", "nul": null, "late": 9223372036854775808}`,
		`{"text": "no id", "id": 3}`,
	}, "\n"))
	r, err := Open(path)
	require.NoError(t, err)
	defer r.Close()
	assert.Equal(t, []dataset.Column{
		{Name: "id", Kind: dataset.Int},
		{Name: "text", Kind: dataset.String},
		{Name: "score", Kind: dataset.Float},
		{Name: "ok", Kind: dataset.Bool},
		{Name: "meta", Kind: dataset.JSON},
		{Name: "mixed", Kind: dataset.JSON},
		{Name: "nul", Kind: dataset.String},
		{Name: "late", Kind: dataset.JSON},
	}, r.Columns())

	recs := datatest.ReadAll(t, r)
	require.Len(t, recs, 3)
	for _, rec := range recs {
		require.NoError(t, rec.Err)
	}
	assert.Equal(t, map[string]any{
		"id": int64(1), "text": "Hello", "score": float64(1), "ok": true,
		"meta": json.RawMessage(`{"a": [1, 2]}`), "mixed": json.RawMessage(`1`), "nul": nil,
	}, values(recs[0]))
	assert.Equal(t, json.RawMessage(`9223372036854775808`), values(recs[1])["late"], "a number beyond int64 and float64 precision is kept as its text")
	// Fields come in column order even when the line has them in another order,
	// and a missing field is absent rather than null.
	assert.Equal(t, []dataset.Field{{Name: "id", Value: int64(3)}, {Name: "text", Value: "no id"}}, recs[2].Fields)
}

func TestBadLinesAreRowsWithErrors(t *testing.T) {
	lines := []string{
		`{"id": "a", "text": "one"}`,          // line 1
		`{"id": "b", "text": `,                // 2: truncated
		``,                                    // 3: blank, skipped
		`   `,                                 // 4: blank, skipped
		`["not", "an", "object"]`,             // 5
		"{\"id\": \"c\", \"text\": \"\xff\"}", // 6: invalid UTF-8
		`{"id": "d", "id": "e"}`,              // 7: duplicate key
		`{"id": "f"} {"id": "g"}`,             // 8: two objects
		`{"id": "h", "text": "last"}`,         // 9
	}
	path := writeFile(t, "bad.jsonl", strings.Join(lines, "\r\n")+"\r\n")
	r, err := Open(path)
	require.NoError(t, err)
	defer r.Close()
	recs := datatest.ReadAll(t, r)
	require.Len(t, recs, 7)

	tests := []struct {
		line    int64
		wantErr string
	}{
		{1, ""},
		{2, "malformed JSON"},
		{5, "want a JSON object, found an array"},
		{6, "invalid UTF-8"},
		{7, `duplicate field "id"`},
		{8, "data after the object"},
		{9, ""},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprintf("line %d", tt.line), func(t *testing.T) {
			rec := recs[i]
			assert.Equal(t, int64(i), rec.Index, "Index counts bad rows, not blank lines")
			assert.Equal(t, tt.line, rec.Line)
			if tt.wantErr == "" {
				assert.NoError(t, rec.Err)
				assert.NotEmpty(t, rec.Fields)
				return
			}
			require.Error(t, rec.Err)
			assert.Contains(t, rec.Err.Error(), tt.wantErr)
			assert.NotContains(t, rec.Err.Error(), path, "the caller names the place")
			assert.Empty(t, rec.Fields)
		})
	}
	assert.Equal(t, "last", values(recs[6])["text"])
}

func TestLongLine(t *testing.T) {
	long := `{"text": "` + strings.Repeat("x", 200) + `"}`
	input := `{"text": "short"}` + "\n" + long + "\n" + `{"text": "after"}`
	r, err := newReaderLimit("mem.jsonl", strings.NewReader(input), 100)
	require.NoError(t, err)
	recs := datatest.ReadAll(t, r)
	require.Len(t, recs, 3)
	assert.NoError(t, recs[0].Err)
	require.Error(t, recs[1].Err)
	assert.Equal(t, "line longer than 100 bytes", recs[1].Err.Error())
	assert.Equal(t, "after", values(recs[2])["text"])
	assert.Equal(t, int64(3), recs[2].Line)
}

func TestLastLineWithoutNewlineAndEmptyFile(t *testing.T) {
	r, err := NewReader("x.jsonl", strings.NewReader(`{"a":1}`+"\n"+`{"a":2}`))
	require.NoError(t, err)
	assert.Len(t, datatest.ReadAll(t, r), 2)

	r, err = NewReader("empty.jsonl", strings.NewReader(""))
	require.NoError(t, err)
	assert.Empty(t, r.Columns())
	assert.Empty(t, datatest.ReadAll(t, r))
}

func TestTooManyFields(t *testing.T) {
	var line strings.Builder
	line.WriteString(`{"a0": 0`)
	for i := 1; i <= MaxColumns; i++ {
		fmt.Fprintf(&line, `, "a%d": %d`, i, i)
	}
	line.WriteString("}\n")
	_, err := NewReader("wide.jsonl", strings.NewReader(line.String()))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "read wide.jsonl line 1: more than 10000 distinct fields")
}

func TestGzip(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write([]byte(`{"id": 7, "text": "Guten Tag"}` + "\n"))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	path := writeFile(t, "in.jsonl.gz", buf.String())
	r, err := Open(path)
	require.NoError(t, err)
	defer r.Close()
	recs := datatest.ReadAll(t, r)
	require.Len(t, recs, 1)
	assert.Equal(t, "Guten Tag", values(recs[0])["text"])
}

func TestOpenMissingFile(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "nope.jsonl"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nope.jsonl")
	assert.True(t, errors.Is(err, os.ErrNotExist))
}

// roundTripInput has every kind, escapes, unicode and nulls.
const roundTripInput = `{"id": 1, "text": "Hello, \"world\"\n<b>&</b> \u2028 ünïcødé 😀", "n": 42, "x": 0.1, "ok": true, "meta": {"k": [1, "two", null]}}
{"id": 2, "text": "", "n": -9223372036854775808, "x": 1e300, "ok": false, "meta": [1.5e-7]}
{"id": 3, "text": null, "n": null, "x": 3, "ok": null, "meta": null}
{"id": 4, "text": "tab\there", "n": 9223372036854775807, "x": -0.0000001, "ok": true, "meta": "str"}
`

// TestRoundTrip reads JSONL, writes it back with the Writer, then reads the
// output with this package and with DuckDB: values, order and types hold.
func TestRoundTrip(t *testing.T) {
	in := writeFile(t, "in.jsonl", roundTripInput)
	r, err := Open(in)
	require.NoError(t, err)
	cols := r.Columns()
	recs := datatest.ReadAll(t, r)
	require.NoError(t, r.Close())

	out := filepath.Join(t.TempDir(), "out.jsonl")
	f, err := os.Create(out)
	require.NoError(t, err)
	w, err := NewWriter(f, cols)
	require.NoError(t, err)
	for _, rec := range recs {
		require.NoError(t, rec.Err)
		row := make([]dataset.Field, len(cols))
		vals := values(rec)
		for i, c := range cols {
			row[i] = dataset.Field{Name: c.Name, Value: vals[c.Name]}
		}
		require.NoError(t, w.Write(row))
	}
	require.NoError(t, w.Close())
	require.NoError(t, f.Close())

	r2, err := Open(out)
	require.NoError(t, err)
	defer r2.Close()
	assert.Equal(t, cols, r2.Columns(), "kinds survive a round trip")
	recs2 := datatest.ReadAll(t, r2)
	require.Len(t, recs2, len(recs))
	for i := range recs {
		a, b := values(recs[i]), values(recs2[i])
		for k, v := range a {
			if raw, ok := v.(json.RawMessage); ok {
				assert.JSONEq(t, string(raw), string(b[k].(json.RawMessage)), "row %d field %s", i, k)
				continue
			}
			assert.Equal(t, v, b[k], "row %d field %s", i, k)
		}
	}

	// DuckDB reads the output with the types the columns declare.
	res := duckcheck.Query(t, `SELECT * FROM read_json(`+duckcheck.Quote(out)+`, format='newline_delimited',
		columns={id: 'BIGINT', text: 'VARCHAR', n: 'BIGINT', x: 'DOUBLE', ok: 'BOOLEAN', meta: 'JSON'})`)
	require.Len(t, res.Rows, len(recs))
	assert.Equal(t, []string{"id", "text", "n", "x", "ok", "meta"}, res.Columns)
	for i, rec := range recs {
		vals := values(rec)
		for j, c := range cols {
			same, diff := duckcheck.Same(c.Kind, vals[c.Name], res.Rows[i][j])
			assert.True(t, same, "row %d column %s: %s", i, c.Name, diff)
		}
	}
}

// TestReadDuckDBOutput reads JSONL that DuckDB wrote.
func TestReadDuckDBOutput(t *testing.T) {
	out := filepath.Join(t.TempDir(), "duck.jsonl")
	duckcheck.Query(t, `COPY (SELECT i AS id, 'row ' || i AS text, i * 0.5 AS half, i % 2 = 0 AS even,
		CASE WHEN i % 3 = 0 THEN NULL ELSE {'k': i} END AS meta FROM range(1, 101) t(i) ORDER BY i)
		TO `+duckcheck.Quote(out)+` (FORMAT json)`)
	r, err := Open(out)
	require.NoError(t, err)
	defer r.Close()
	assert.Equal(t, []dataset.Column{
		{Name: "id", Kind: dataset.Int}, {Name: "text", Kind: dataset.String},
		{Name: "half", Kind: dataset.Float}, {Name: "even", Kind: dataset.Bool}, {Name: "meta", Kind: dataset.JSON},
	}, r.Columns())
	recs := datatest.ReadAll(t, r)
	require.Len(t, recs, 100)
	for i, rec := range recs {
		n := int64(i + 1)
		v := values(rec)
		assert.Equal(t, n, v["id"])
		assert.Equal(t, fmt.Sprintf("row %d", n), v["text"])
		assert.Equal(t, float64(n)*0.5, v["half"])
		assert.Equal(t, n%2 == 0, v["even"])
		if n%3 == 0 {
			assert.Nil(t, v["meta"])
		} else {
			assert.JSONEq(t, fmt.Sprintf(`{"k": %d}`, n), string(v["meta"].(json.RawMessage)))
		}
	}
}

func TestWriterChecksRows(t *testing.T) {
	w, err := NewWriter(io.Discard, []dataset.Column{{Name: "a"}, {Name: "b"}})
	require.NoError(t, err)
	assert.ErrorContains(t, w.Write([]dataset.Field{{Name: "a"}}), "row has 1 fields, want 2")
	assert.ErrorContains(t, w.Write([]dataset.Field{{Name: "a"}, {Name: "c"}}), `field 1 is "c", want "b"`)
	assert.ErrorContains(t, w.Write([]dataset.Field{{Name: "a", Value: json.RawMessage(`{`)}, {Name: "b"}}), `field "a": invalid JSON value`)
	_, err = NewWriter(io.Discard, []dataset.Column{{Name: "a"}, {Name: "a"}})
	assert.ErrorContains(t, err, `duplicate column "a"`)
}

func FuzzJSONL(f *testing.F) {
	f.Add([]byte(roundTripInput))
	f.Add([]byte("{\"a\":1}\n{\"a\":\n\n[1]\n{\"a\":\"\xff\"}"))
	f.Add([]byte(`{"a":{"b":[1,{"c":null}]},"a":2}`))
	f.Add([]byte(`{"a":1e999,"b":-0,"c":12345678901234567890}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := newReaderLimit("fuzz.jsonl", bytes.NewReader(data), 1<<10)
		if err != nil {
			return
		}
		cols := r.Columns()
		w, err := NewWriter(io.Discard, cols)
		require.NoError(t, err)
		var index int64
		for {
			rec, err := r.Read()
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
			require.Equal(t, index, rec.Index)
			index++
			if rec.Err != nil {
				require.Positive(t, rec.Line, "a bad row says its line: %v", rec.Err)
				continue
			}
			// Every good record writes back out.
			vals := values(rec)
			row := make([]dataset.Field, len(cols))
			for i, c := range cols {
				row[i] = dataset.Field{Name: c.Name, Value: vals[c.Name]}
			}
			require.NoError(t, w.Write(row))
		}
		require.NoError(t, w.Close())
	})
}

// splitObject's byte scan (splitValid) and the decoder's path
// (splitDecoded) agree on every line: the same members and raw values, or
// the same error.
func FuzzSplitObject(f *testing.F) {
	for _, s := range []string{
		`{"id": 1, "text": "a \"quoted\" word", "n": -1.5e3, "t": true, "x": null}`,
		` { "a" : [1, {"b": "}"}, "]"] , "c":{"d":{}} } `, `{}`, `{ }`, `[1]`, `"s"`, `{"a":1,"a":2}`, `{"":1}`,
		`{"a\u0062":1}`, `{"a\\b":1}`, `{"a":"\u00e9\n"}`, "{\"a\":1}\t\r\n", `{"a":1} x`, `{"a":}`, "{\"a\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		want, wantErr := splitDecoded(line, nil)
		got, err := splitObject(line, nil)
		if wantErr != nil {
			require.EqualError(t, err, wantErr.Error())
			return
		}
		require.NoError(t, err)
		require.Equal(t, len(want), len(got))
		for i := range want {
			require.Equal(t, want[i].key, got[i].key)
			require.Equal(t, string(want[i].raw), string(got[i].raw))
		}
	})
}
