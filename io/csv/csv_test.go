package csvfile

import (
	"bytes"
	"fmt"
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

func strs(rec dataset.Record) []string {
	var out []string
	for _, f := range rec.Fields {
		out = append(out, f.Value.(string))
	}
	return out
}

func TestRead(t *testing.T) {
	tests := []struct {
		name      string
		input     string
		delim     rune
		wantCols  []string
		wantRows  [][]string
		wantLines []int64
	}{
		{
			name:      "quotes, commas and newlines",
			input:     "id,text\n1,\"a, b\"\n2,\"say \"\"hi\"\"\"\n3,\"two\nlines\"\n4,plain\n",
			wantCols:  []string{"id", "text"},
			wantRows:  [][]string{{"1", "a, b"}, {"2", `say "hi"`}, {"3", "two\nlines"}, {"4", "plain"}},
			wantLines: []int64{2, 3, 4, 6},
		},
		{
			name:      "BOM and CRLF",
			input:     "\xEF\xBB\xBFid,text\r\n1,x\r\n2,\"y\r\nz\"\r\n",
			wantCols:  []string{"id", "text"},
			wantRows:  [][]string{{"1", "x"}, {"2", "y\nz"}},
			wantLines: []int64{2, 3},
		},
		{
			name:      "semicolon delimiter",
			input:     "id;text\n1;a,b\n2;\"c;d\"",
			delim:     ';',
			wantCols:  []string{"id", "text"},
			wantRows:  [][]string{{"1", "a,b"}, {"2", "c;d"}},
			wantLines: []int64{2, 3},
		},
		{
			name:      "tab delimiter and empty fields",
			input:     "a\tb\tc\n\t\t\nx\t\"\"\tz\n",
			delim:     '\t',
			wantCols:  []string{"a", "b", "c"},
			wantRows:  [][]string{{"", "", ""}, {"x", "", "z"}},
			wantLines: []int64{2, 3},
		},
		{
			name:     "header only",
			input:    "id,text\n",
			wantCols: []string{"id", "text"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewReader("in.csv", strings.NewReader(tt.input), dataset.Options{Delimiter: tt.delim})
			require.NoError(t, err)
			var names []string
			for _, c := range r.Columns() {
				names = append(names, c.Name)
				assert.Equal(t, dataset.String, c.Kind)
			}
			assert.Equal(t, tt.wantCols, names)
			recs := datatest.ReadAll(t, r)
			require.Len(t, recs, len(tt.wantRows))
			for i, rec := range recs {
				require.NoError(t, rec.Err)
				assert.Equal(t, int64(i), rec.Index)
				assert.Equal(t, tt.wantLines[i], rec.Line)
				assert.Equal(t, tt.wantRows[i], strs(rec))
				assert.Equal(t, tt.wantCols[0], rec.Fields[0].Name)
			}
		})
	}
}

func TestBadRows(t *testing.T) {
	input := "id,text\n" +
		"1,good\n" + // line 2
		"2,too,many\n" + // 3
		"3\n" + // 4
		"4,bad \"quote\n" + // 5
		"5,\"\xff\"\n" + // 6
		"6,last\n" // 7
	r, err := NewReader("bad.csv", strings.NewReader(input), dataset.Options{})
	require.NoError(t, err)
	recs := datatest.ReadAll(t, r)
	require.Len(t, recs, 6)
	tests := []struct {
		line    int64
		wantErr string
	}{
		{2, ""},
		{3, "row has 3 fields, the header has 2"},
		{4, "row has 1 fields, the header has 2"},
		{5, `bare " in non-quoted-field`},
		{6, `field "text": invalid UTF-8`},
		{7, ""},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprintf("line %d", tt.line), func(t *testing.T) {
			rec := recs[i]
			assert.Equal(t, int64(i), rec.Index)
			assert.Equal(t, tt.line, rec.Line)
			if tt.wantErr == "" {
				assert.NoError(t, rec.Err)
				return
			}
			require.Error(t, rec.Err)
			assert.NotContains(t, rec.Err.Error(), "bad.csv", "the caller names the place")
			assert.Contains(t, rec.Err.Error(), tt.wantErr)
			assert.Empty(t, rec.Fields)
		})
	}
	assert.Equal(t, []string{"6", "last"}, strs(recs[5]))
}

func TestBadHeader(t *testing.T) {
	tests := []struct{ name, input, wantErr string }{
		{"empty file", "", "h.csv: no header row"},
		{"duplicate name", "id,text,id\n1,2,3\n", `h.csv line 1: duplicate header name "id"`},
		{"empty name", "id,,text\n", "h.csv line 1: header column 2 has no name"},
		{"invalid UTF-8", "id,\xfe\n", "h.csv line 1: header column 2: invalid UTF-8"},
		{"unterminated quote", "\"id,text\n", "h.csv line 1:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewReader("h.csv", strings.NewReader(tt.input), dataset.Options{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestRowTooLong(t *testing.T) {
	input := "id,text\n1,short\n2,\"" + strings.Repeat("x", 1<<20) // never closed
	r, err := newReader("long.csv", strings.NewReader(input), dataset.Options{}, 64<<10)
	require.NoError(t, err)
	rec, err := r.Read()
	require.NoError(t, err)
	assert.Equal(t, []string{"1", "short"}, strs(rec))
	_, err = r.Read()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "long.csv after line 3: a row longer than 65536 bytes")
	_, err = r.Read()
	assert.Error(t, err, "the error is sticky")
}

// TestRoundTrip writes CSV with the Writer, reads it with this package and
// with DuckDB, and checks every value in order.
func TestRoundTrip(t *testing.T) {
	cols := []dataset.Column{{Name: "id", Kind: dataset.Int}, {Name: "text"}, {Name: "score", Kind: dataset.Float}, {Name: "ok", Kind: dataset.Bool}, {Name: "meta", Kind: dataset.JSON}}
	rows := [][]any{
		{int64(1), "plain", 0.5, true, nil},
		{int64(2), "comma, \"quote\"\nnewline", 2.0, false, []any{1, "x"}},
		{int64(3), " leading space; and semicolon", nil, nil, map[string]any{"k": "v"}},
		{int64(4), "ünïcødé 😀", -1e-9, true, nil},
	}
	for _, delim := range []rune{',', ';', '\t'} {
		t.Run(fmt.Sprintf("delimiter %q", delim), func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "out.csv")
			f, err := os.Create(path)
			require.NoError(t, err)
			w, err := NewWriter(f, cols, dataset.Options{Delimiter: delim})
			require.NoError(t, err)
			for _, row := range rows {
				fields := make([]dataset.Field, len(cols))
				for i, c := range cols {
					fields[i] = dataset.Field{Name: c.Name, Value: row[i]}
				}
				require.NoError(t, w.Write(fields))
			}
			require.NoError(t, w.Close())
			require.NoError(t, f.Close())

			want := [][]string{
				{"1", "plain", "0.5", "true", ""},
				{"2", "comma, \"quote\"\nnewline", "2.0", "false", `[1,"x"]`},
				{"3", " leading space; and semicolon", "", "", `{"k":"v"}`},
				{"4", "ünïcødé 😀", "-1e-9", "true", ""},
			}
			r, err := Open(path, dataset.Options{Delimiter: delim})
			require.NoError(t, err)
			defer r.Close()
			recs := datatest.ReadAll(t, r)
			require.Len(t, recs, len(want))
			for i, rec := range recs {
				require.NoError(t, rec.Err)
				assert.Equal(t, want[i], strs(rec))
			}

			res := duckcheck.Query(t, fmt.Sprintf(`SELECT * FROM read_csv(%s, header=true, all_varchar=true, delim=%s, quote='"', escape='"')`,
				duckcheck.Quote(path), duckcheck.Quote(string(delim))))
			assert.Equal(t, []string{"id", "text", "score", "ok", "meta"}, res.Columns)
			require.Len(t, res.Rows, len(want))
			for i := range want {
				for j := range want[i] {
					got := res.Rows[i][j]
					if want[i][j] == "" {
						assert.Nil(t, got, "row %d col %d: CSV writes null and empty alike", i, j)
						continue
					}
					assert.Equal(t, want[i][j], got, "row %d col %d", i, j)
				}
			}
		})
	}
}

// TestReadDuckDBOutput reads CSV that DuckDB wrote, quotes and all.
func TestReadDuckDBOutput(t *testing.T) {
	path := filepath.Join(t.TempDir(), "duck.csv")
	duckcheck.Query(t, `COPY (SELECT i AS id, 'say "hi", row ' || i || chr(10) || 'next line' AS text
		FROM range(1, 51) t(i) ORDER BY i) TO `+duckcheck.Quote(path)+` (HEADER, DELIMITER ';')`)
	r, err := Open(path, dataset.Options{Delimiter: ';'})
	require.NoError(t, err)
	defer r.Close()
	recs := datatest.ReadAll(t, r)
	require.Len(t, recs, 50)
	for i, rec := range recs {
		require.NoError(t, rec.Err)
		assert.Equal(t, []string{fmt.Sprint(i + 1), fmt.Sprintf("say \"hi\", row %d\nnext line", i+1)}, strs(rec))
		assert.Equal(t, int64(2+2*i), rec.Line)
	}
}

func TestWriterSingleEmptyColumn(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, []dataset.Column{{Name: "t"}}, dataset.Options{})
	require.NoError(t, err)
	require.NoError(t, w.Write([]dataset.Field{{Name: "t", Value: ""}}))
	require.NoError(t, w.Write([]dataset.Field{{Name: "t", Value: "x"}}))
	require.NoError(t, w.Close())
	r, err := NewReader("one.csv", &buf, dataset.Options{})
	require.NoError(t, err)
	recs := datatest.ReadAll(t, r)
	require.Len(t, recs, 2, "an empty value in a one-column file is still a row")
	assert.Equal(t, []string{""}, strs(recs[0]))
}

func FuzzCSV(f *testing.F) {
	f.Add([]byte("id,text\n1,\"a, b\"\n2,\"x\"\"y\"\n3,\"multi\nline\"\n"), byte(','))
	f.Add([]byte("\xEF\xBB\xBFa;b\r\n1;2\r\n3\r\n\"4;5\n"), byte(';'))
	f.Add([]byte("a,b\n\"\xff\",x\n,,\n"), byte(','))
	f.Fuzz(func(t *testing.T, data []byte, delim byte) {
		d := rune(delim)
		if d == '"' || d == '\r' || d == '\n' || d == 0 || d >= 0x80 {
			d = ','
		}
		r, err := newReader("fuzz.csv", bytes.NewReader(data), dataset.Options{Delimiter: d}, 4<<10)
		if err != nil {
			return
		}
		var index int64
		for {
			rec, err := r.Read()
			if err != nil {
				return
			}
			require.Equal(t, index, rec.Index)
			index++
			if rec.Err == nil {
				require.Len(t, rec.Fields, len(r.Columns()))
			} else {
				require.Positive(t, rec.Line, "a bad row says its line: %v", rec.Err)
			}
		}
	})
}
