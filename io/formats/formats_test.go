package formats

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/io/dataset"
	"github.com/batchtrans/batchtrans/io/internal/duckcheck"
)

func TestFormatOf(t *testing.T) {
	tests := []struct {
		path, format, want, wantErr string
	}{
		{path: "a/b.jsonl", want: "jsonl"},
		{path: "b.NDJSON", want: "jsonl"},
		{path: "b.jsonl.gz", want: "jsonl"},
		{path: "b.csv", want: "csv"},
		{path: "b.parquet", want: "parquet"},
		{path: "b.txt", format: "CSV", want: "csv"},
		{path: "b.txt", wantErr: `no format for extension ".txt"`},
		{path: "b.gz", wantErr: `no format for extension ".gz"`},
		{path: "b.csv", format: "xlsx", wantErr: `format "xlsx" (known: csv, jsonl, parquet)`},
	}
	for _, tt := range tests {
		t.Run(tt.path+"/"+tt.format, func(t *testing.T) {
			got, err := dataset.FormatOf(tt.path, tt.format)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.ErrorIs(t, err, dataset.ErrUnknownFormat)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	assert.Equal(t, []string{"csv", "jsonl", "parquet"}, dataset.Formats())
	_, err := dataset.NewWriter(io.Discard, "", nil, dataset.Options{})
	assert.ErrorIs(t, err, dataset.ErrUnknownFormat)
}

// inputRows is a small input: ids, text and carried fields of each kind.
const inputRows = `{"sku": "A-1", "text": "Red shoe, size 42", "price": 19.99, "stock": 3, "tags": ["a", "b"], "sale": true}
{"sku": "A-2", "text": "Blue \"sky\" shirt\nwith two lines", "price": null, "stock": 0, "tags": null, "sale": false}
{"sku": "A-3", "text": "Grüne Jacke 😀", "price": 5, "stock": -7, "tags": {"k": 1}, "sale": null}
`

// TestOutputsReadBack does what a job does: read JSONL, add translation and
// error columns, write every format, then reads each output with
// dataset.Open and with DuckDB: every row, id and carried field, in order.
func TestOutputsReadBack(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	require.NoError(t, os.WriteFile(in, []byte(inputRows), 0o644))
	r, err := dataset.Open(in, "", dataset.Options{})
	require.NoError(t, err)
	inCols := r.Columns()
	outCols := append(inCols, dataset.Column{Name: "translation"}, dataset.Column{Name: "error"})
	var rows [][]dataset.Field
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		require.NoError(t, rec.Err)
		row := make([]dataset.Field, 0, len(outCols))
		byName := map[string]any{}
		for _, f := range rec.Fields {
			byName[f.Name] = f.Value
		}
		for _, c := range inCols {
			row = append(row, dataset.Field{Name: c.Name, Value: byName[c.Name]})
		}
		var tr, bad any = "DE: " + byName["text"].(string), nil
		if rec.Index == 1 {
			tr, bad = nil, "prompt too long"
		}
		row = append(row, dataset.Field{Name: "translation", Value: tr}, dataset.Field{Name: "error", Value: bad})
		rows = append(rows, row)
	}
	require.NoError(t, r.Close())
	require.Len(t, rows, 3)

	paths := map[string]string{}
	for _, format := range []string{"jsonl", "csv", "parquet"} {
		path := filepath.Join(dir, "out."+format)
		paths[format] = path
		f, err := os.Create(path)
		require.NoError(t, err)
		w, err := dataset.NewWriter(f, format, outCols, dataset.Options{})
		require.NoError(t, err)
		for _, row := range rows {
			require.NoError(t, w.Write(row))
		}
		require.NoError(t, w.Close())
		require.NoError(t, f.Close())
	}

	// This package's readers, chosen by extension.
	for format, path := range paths {
		t.Run(format, func(t *testing.T) {
			r, err := dataset.Open(path, "", dataset.Options{})
			require.NoError(t, err)
			defer r.Close()
			cols := r.Columns()
			require.Len(t, cols, len(outCols))
			for i, c := range cols {
				assert.Equal(t, outCols[i].Name, c.Name)
			}
			for i := 0; ; i++ {
				rec, err := r.Read()
				if errors.Is(err, io.EOF) {
					assert.Equal(t, len(rows), i)
					break
				}
				require.NoError(t, err)
				require.NoError(t, rec.Err)
				got := map[string]any{}
				for _, f := range rec.Fields {
					got[f.Name] = f.Value
				}
				for _, f := range rows[i] {
					want := f.Value
					if format == "csv" { // CSV has text only, and no null
						b, err := textOf(want)
						require.NoError(t, err)
						want = b
					}
					if raw, ok := want.(interface{ MarshalJSON() ([]byte, error) }); ok && want != nil {
						gb, _ := got[f.Name].(interface{ MarshalJSON() ([]byte, error) })
						require.NotNil(t, gb, "row %d %s: %#v", i, f.Name, got[f.Name])
						a, _ := raw.MarshalJSON()
						b, _ := gb.MarshalJSON()
						assert.JSONEq(t, string(a), string(b))
						continue
					}
					assert.Equal(t, want, got[f.Name], "row %d field %s", i, f.Name)
				}
			}
		})
	}

	// DuckDB, as an independent reader: ids, order and carried fields.
	all := duckcheck.QueryAll(t,
		"SELECT sku, text, price, stock, to_json(tags)::VARCHAR, sale, translation, error FROM read_json("+duckcheck.Quote(paths["jsonl"])+
			", format='newline_delimited', columns={sku: 'VARCHAR', text: 'VARCHAR', price: 'DOUBLE', stock: 'BIGINT', tags: 'JSON', sale: 'BOOLEAN', translation: 'VARCHAR', error: 'VARCHAR'})",
		"SELECT sku, text, price, stock, tags, sale, translation, error FROM read_csv("+duckcheck.Quote(paths["csv"])+", header=true, all_varchar=true)",
		"SELECT sku, text, price, stock, tags, sale, translation, error FROM read_parquet("+duckcheck.Quote(paths["parquet"])+")")
	for k, format := range []string{"jsonl", "csv", "parquet"} {
		res := all[k]
		require.Len(t, res.Rows, len(rows), format)
		for i, row := range rows {
			for j, f := range row {
				kind := outCols[j].Kind
				want := f.Value
				if format == "csv" {
					kind = dataset.String
					s, _ := textOf(want)
					if want = s; s == "" {
						want = nil // DuckDB reads an empty CSV field as NULL
					}
				}
				same, diff := duckcheck.Same(kind, want, res.Rows[i][j])
				assert.True(t, same, "%s row %d column %s: %s", format, i, f.Name, diff)
			}
		}
	}
}

// textOf is how the CSV writer spells a value.
func textOf(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case int64, bool:
		return fmt.Sprint(x), nil
	case float64:
		if x == float64(int64(x)) {
			return fmt.Sprintf("%d.0", int64(x)), nil
		}
		return fmt.Sprint(x), nil
	case json.RawMessage:
		var b bytes.Buffer
		err := json.Compact(&b, x)
		return b.String(), err
	}
	return "", fmt.Errorf("unexpected %T", v)
}
