package parquetfile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/io/dataset"
	"github.com/batchtrans/batchtrans/io/internal/datatest"
	"github.com/batchtrans/batchtrans/io/internal/duckcheck"
)

var testCols = []dataset.Column{
	{Name: "id", Kind: dataset.String},
	{Name: "text", Kind: dataset.String},
	{Name: "n", Kind: dataset.Int},
	{Name: "score", Kind: dataset.Float},
	{Name: "ok", Kind: dataset.Bool},
	{Name: "meta", Kind: dataset.JSON},
	{Name: "a_sorts_first", Kind: dataset.String},
}

// testRow is row i of the test data: every column is null on some rows.
func testRow(i int) []dataset.Field {
	vals := []any{
		fmt.Sprintf("id-%04d", i),
		fmt.Sprintf("Text %d, with \"quotes\", ünïcødé and\nnewline", i),
		int64(i) * 1_000_000_007,
		float64(i) / 8,
		i%2 == 0,
		json.RawMessage(fmt.Sprintf(`{"i":%d,"l":[1,"x"]}`, i)),
		"z",
	}
	if i%5 == 1 {
		vals[1], vals[2], vals[3], vals[4], vals[5] = nil, nil, nil, nil, nil
	}
	if i == 3 {
		vals[1] = ""
		vals[2] = int64(math.MinInt64)
		vals[3] = math.MaxFloat64
	}
	fields := make([]dataset.Field, len(testCols))
	for j, c := range testCols {
		fields[j] = dataset.Field{Name: c.Name, Value: vals[j]}
	}
	return fields
}

func writeTestFile(t testing.TB, path string, rows int, opt dataset.Options) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	w, err := NewWriter(f, testCols, opt)
	require.NoError(t, err)
	for i := range rows {
		require.NoError(t, w.Write(testRow(i)))
	}
	require.NoError(t, w.Close())
	require.NoError(t, f.Close())
}

// TestWriteReadBack writes with each codec and small row groups, then
// reads the file with this package and with DuckDB.
func TestWriteReadBack(t *testing.T) {
	const rows = 250
	tests := []struct{ codec, duckName string }{
		{"", "ZSTD"}, {"snappy", "SNAPPY"}, {"gzip", "GZIP"}, {"none", "UNCOMPRESSED"},
	}
	for _, tt := range tests {
		t.Run(tt.duckName, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "out.parquet")
			writeTestFile(t, path, rows, dataset.Options{Compression: tt.codec, RowGroupRows: 100})

			r, err := Open(path)
			require.NoError(t, err)
			defer r.Close()
			assert.Equal(t, testCols, r.Columns(), "columns keep their order and kinds")
			recs := datatest.ReadAll(t, r)
			require.Len(t, recs, rows)
			for i, rec := range recs {
				require.NoError(t, rec.Err)
				assert.Equal(t, int64(i), rec.Index)
				assert.Equal(t, int64(i+1), rec.Line)
				assert.Equal(t, testRow(i), rec.Fields, "row %d", i)
			}

			q := duckcheck.Quote(path)
			all := duckcheck.QueryAll(t,
				"SELECT * FROM read_parquet("+q+")",
				"SELECT name, type, converted_type, repetition_type FROM parquet_schema("+q+") WHERE name <> 'batchtrans'",
				"SELECT DISTINCT row_group_id, compression FROM parquet_metadata("+q+") ORDER BY ALL")
			res, schema, meta := all[0], all[1], all[2]
			assert.Equal(t, []string{"id", "text", "n", "score", "ok", "meta", "a_sorts_first"}, res.Columns)
			assert.Equal(t, []string{"VARCHAR", "VARCHAR", "BIGINT", "DOUBLE", "BOOLEAN", "VARCHAR", "VARCHAR"}, res.Types)
			assert.Equal(t, [][]any{
				{"id", "BYTE_ARRAY", "UTF8", "OPTIONAL"},
				{"text", "BYTE_ARRAY", "UTF8", "OPTIONAL"},
				{"n", "INT64", "INT_64", "OPTIONAL"},
				{"score", "DOUBLE", nil, "OPTIONAL"},
				{"ok", "BOOLEAN", nil, "OPTIONAL"},
				{"meta", "BYTE_ARRAY", "JSON", "OPTIONAL"},
				{"a_sorts_first", "BYTE_ARRAY", "UTF8", "OPTIONAL"},
			}, schema.Rows)
			require.Len(t, res.Rows, rows)
			for i := range rows {
				for j, f := range testRow(i) {
					same, diff := duckcheck.Same(testCols[j].Kind, f.Value, res.Rows[i][j])
					assert.True(t, same, "row %d column %s: %s", i, f.Name, diff)
				}
			}
			require.Len(t, meta.Rows, 3, "250 rows in groups of 100: %v", meta.Rows)
			for _, row := range meta.Rows {
				assert.Equal(t, tt.duckName, row[1])
			}
		})
	}
}

func TestRowGroupBytesBound(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.parquet")
	f, err := os.Create(path)
	require.NoError(t, err)
	cols := []dataset.Column{{Name: "text"}}
	w, err := NewWriter(f, cols, dataset.Options{RowGroupBytes: 64 << 10})
	require.NoError(t, err)
	long := strings.Repeat("x", 10<<10)
	for range 40 {
		require.NoError(t, w.Write([]dataset.Field{{Name: "text", Value: long}}))
	}
	require.NoError(t, w.Close())
	require.NoError(t, f.Close())
	r, err := Open(path)
	require.NoError(t, err)
	defer r.Close()
	assert.Len(t, r.groups, 6, "40 rows of 10 KiB in groups of at most 64 KiB")
	assert.Len(t, datatest.ReadAll(t, r), 40)
}

// TestReadDuckDBFiles has DuckDB write files with several row groups, each
// codec, nulls and many types, and checks every value this reader gives
// against DuckDB's own reading of the same file.
func TestReadDuckDBFiles(t *testing.T) {
	const rows = 5000 // DuckDB's row groups hold at least 2048 rows
	query := fmt.Sprintf(`SELECT
		i::BIGINT AS id,
		CASE WHEN i %% 7 = 0 THEN NULL ELSE 'text ' || i || ' ünï' END AS text,
		CASE WHEN i %% 5 = 0 THEN NULL ELSE (i - 2500)::INTEGER END AS i32,
		(i * 3)::UBIGINT AS u64,
		CASE WHEN i %% 3 = 0 THEN NULL ELSE i / 4.0 END::DOUBLE AS d,
		(i / 2.0)::FLOAT AS f,
		CASE WHEN i %% 11 = 0 THEN NULL ELSE i %% 2 = 0 END AS b,
		DATE '2026-01-01' + (i %% 365)::INTEGER AS day,
		TIMESTAMP '2026-11-25 12:00:00' + to_seconds(i) AS ts,
		(i %% 100)::SMALLINT AS small
	FROM range(%d) t(i) ORDER BY i`, rows)
	kinds := []dataset.Kind{dataset.Int, dataset.String, dataset.Int, dataset.Int, dataset.Float, dataset.Float, dataset.Bool, dataset.String, dataset.String, dataset.Int}
	for _, codec := range []string{"zstd", "snappy", "gzip"} {
		t.Run(codec, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "duck.parquet")
			q := duckcheck.Quote(path)
			all := duckcheck.QueryAll(t,
				"COPY ("+query+") TO "+q+" (FORMAT parquet, COMPRESSION "+codec+", ROW_GROUP_SIZE 2048)",
				"SELECT count(DISTINCT row_group_id), min(compression), max(compression) FROM parquet_metadata("+q+")",
				// DuckDB's reading, with dates and timestamps spelled as this package does.
				`SELECT id, text, i32, u64, d, f::DOUBLE, b, strftime(day, '%Y-%m-%d'),
					strftime(ts, '%Y-%m-%dT%H:%M:%S'), small FROM read_parquet(`+q+`)`)
			meta, res := all[1], all[2]
			require.Equal(t, []any{"3", strings.ToUpper(codec), strings.ToUpper(codec)}, meta.Rows[0], "DuckDB wrote 3 row groups with the codec")
			require.Len(t, res.Rows, rows)

			r, err := Open(path)
			require.NoError(t, err)
			defer r.Close()
			var names []string
			var gotKinds []dataset.Kind
			for _, c := range r.Columns() {
				names = append(names, c.Name)
				gotKinds = append(gotKinds, c.Kind)
			}
			assert.Equal(t, []string{"id", "text", "i32", "u64", "d", "f", "b", "day", "ts", "small"}, names)
			assert.Equal(t, kinds, gotKinds)
			recs := datatest.ReadAll(t, r)
			require.Len(t, recs, rows)
			nulls := 0
			for i, rec := range recs {
				require.NoError(t, rec.Err)
				for j, f := range rec.Fields {
					if f.Value == nil {
						nulls++
					}
					same, diff := duckcheck.Same(kinds[j], f.Value, res.Rows[i][j])
					if !assert.True(t, same, "row %d column %s: %s", i, f.Name, diff) {
						return
					}
				}
			}
			ceil := func(k int) int { return (rows + k - 1) / k }
			assert.Equal(t, ceil(7)+ceil(5)+ceil(3)+ceil(11), nulls)
		})
	}
}

func TestNestedColumnRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nested.parquet")
	duckcheck.Query(t, "COPY (SELECT 1 AS id, [1, 2] AS tags) TO "+duckcheck.Quote(path)+" (FORMAT parquet)")
	_, err := Open(path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), path)
	assert.Contains(t, err.Error(), `column "tags"`)
}

func TestCorruptFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "good.parquet")
	writeTestFile(t, path, 300, dataset.Options{RowGroupRows: 100})
	good, err := os.ReadFile(path)
	require.NoError(t, err)

	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"header only", good[:4]},
		{"truncated at half", good[:len(good)/2]},
		{"truncated by one byte", good[:len(good)-1]},
		{"footer length beyond file", append(bytes.Clone(good[:len(good)-8]), 0xff, 0xff, 0xff, 0x7f, 'P', 'A', 'R', '1')},
		{"not parquet", []byte("id,text\n1,hello\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := filepath.Join(t.TempDir(), "bad.parquet")
			require.NoError(t, os.WriteFile(bad, tt.data, 0o644))
			_, err := Open(bad)
			require.Error(t, err)
			assert.Contains(t, err.Error(), bad)
		})
	}

	// Pages overwritten with garbage: the footer is fine, reading fails
	// with an error naming the file instead of a panic or wrong rows.
	t.Run("corrupt pages", func(t *testing.T) {
		data := bytes.Clone(good)
		for i := 4; i < len(data)/2; i++ {
			data[i] ^= 0x5a
		}
		bad := filepath.Join(t.TempDir(), "pages.parquet")
		require.NoError(t, os.WriteFile(bad, data, 0o644))
		r, err := Open(bad)
		require.NoError(t, err, "the footer is intact")
		defer r.Close()
		for {
			_, err = r.Read()
			if err != nil {
				break
			}
		}
		require.NotEqual(t, io.EOF, err, "garbage pages must not read as rows")
		assert.Contains(t, err.Error(), bad)
	})
}

func TestWriterErrors(t *testing.T) {
	_, err := NewWriter(io.Discard, testCols, dataset.Options{Compression: "lzma"})
	assert.ErrorContains(t, err, `unknown compression "lzma"`)
	w, err := NewWriter(io.Discard, []dataset.Column{{Name: "n", Kind: dataset.Int}}, dataset.Options{})
	require.NoError(t, err)
	assert.ErrorContains(t, w.Write([]dataset.Field{{Name: "n", Value: "seven"}}), `field "n": string value in a int column`)
}

// FuzzParquet mutates the bytes of a small valid file: every input gives
// an error or rows, never a panic.
func FuzzParquet(f *testing.F) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, testCols, dataset.Options{RowGroupRows: 4})
	require.NoError(f, err)
	for i := range 10 {
		require.NoError(f, w.Write(testRow(i)))
	}
	require.NoError(f, w.Close())
	f.Add(buf.Bytes())
	for _, codec := range []string{"snappy", "none"} {
		var b bytes.Buffer
		w, err := NewWriter(&b, testCols[:3], dataset.Options{Compression: codec, RowGroupRows: 3})
		require.NoError(f, err)
		for i := range 5 {
			require.NoError(f, w.Write(testRow(i)[:3]))
		}
		require.NoError(f, w.Close())
		f.Add(b.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader("fuzz.parquet", bytes.NewReader(data), int64(len(data)))
		if err != nil {
			require.Contains(t, err.Error(), "fuzz.parquet")
			return
		}
		defer r.Close()
		for range 10_000 {
			rec, err := r.Read()
			if err != nil {
				if err != io.EOF {
					require.Contains(t, err.Error(), "fuzz.parquet")
				}
				return
			}
			if rec.Err == nil {
				require.Len(t, rec.Fields, len(r.Columns()))
			}
		}
	})
}

// TestRequiredColumns reads a file with required (non-null) columns and
// 32-bit types, as other writers make them.
func TestRequiredColumns(t *testing.T) {
	type row struct {
		ID    int32   `parquet:"id"`
		Text  string  `parquet:"text"`
		Score float32 `parquet:"score"`
		Small uint32  `parquet:"small,uint(32)"`
	}
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[row](&buf, parquet.Compression(&parquet.Snappy))
	_, err := w.Write([]row{{1, "eins", 0.5, 4_000_000_000}, {2, "zwei", -1.25, 7}})
	require.NoError(t, err)
	require.NoError(t, w.Close())

	r, err := NewReader("req.parquet", bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	require.NoError(t, err)
	assert.Equal(t, []dataset.Column{{Name: "id", Kind: dataset.Int}, {Name: "text"}, {Name: "score", Kind: dataset.Float}, {Name: "small", Kind: dataset.Int}}, r.Columns())
	recs := datatest.ReadAll(t, r)
	require.Len(t, recs, 2)
	assert.Equal(t, []dataset.Field{{Name: "id", Value: int64(1)}, {Name: "text", Value: "eins"}, {Name: "score", Value: 0.5}, {Name: "small", Value: int64(4_000_000_000)}}, recs[0].Fields)
	assert.Equal(t, []dataset.Field{{Name: "id", Value: int64(2)}, {Name: "text", Value: "zwei"}, {Name: "score", Value: -1.25}, {Name: "small", Value: int64(7)}}, recs[1].Fields)
}

// TestBadValuesAreRowErrors: a value that breaks its column's promise is a
// bad row naming file, row and field; the rows after it still read.
func TestBadValuesAreRowErrors(t *testing.T) {
	type row struct {
		Text []byte `parquet:"text"` // byte array without a logical type: must hold UTF-8
		Meta string `parquet:"meta,json"`
	}
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[row](&buf)
	_, err := w.Write([]row{{[]byte("ok"), `{"a":1}`}, {[]byte("bad \xff"), `{}`}, {[]byte("fine"), `{not json`}, {[]byte("last"), `[1]`}})
	require.NoError(t, err)
	require.NoError(t, w.Close())

	r, err := NewReader("bad.parquet", bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	require.NoError(t, err)
	assert.Equal(t, []dataset.Column{{Name: "text"}, {Name: "meta", Kind: dataset.JSON}}, r.Columns())
	recs := datatest.ReadAll(t, r)
	require.Len(t, recs, 4)
	assert.NoError(t, recs[0].Err)
	assert.EqualError(t, recs[1].Err, `field "text": invalid UTF-8`)
	assert.EqualError(t, recs[2].Err, `field "meta": invalid JSON`)
	require.NoError(t, recs[3].Err)
	assert.Equal(t, []dataset.Field{{Name: "text", Value: "last"}, {Name: "meta", Value: json.RawMessage(`[1]`)}}, recs[3].Fields)
}

// countingReaderAt counts the bytes read through it.
type countingReaderAt struct {
	r io.ReaderAt
	n int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n += int64(n)
	return n, err
}

// TestReadsByRowGroup: the first row costs one row group's bytes, not the
// file's.
func TestReadsByRowGroup(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, []dataset.Column{{Name: "text"}}, dataset.Options{Compression: "none", RowGroupRows: 100})
	require.NoError(t, err)
	for i := range 1000 {
		require.NoError(t, w.Write([]dataset.Field{{Name: "text", Value: fmt.Sprintf("%04d %s", i, strings.Repeat("x", 1000))}}))
	}
	require.NoError(t, w.Close())
	cr := &countingReaderAt{r: bytes.NewReader(buf.Bytes())}
	r, err := NewReader("groups.parquet", cr, int64(buf.Len()))
	require.NoError(t, err)
	defer r.Close()
	rec, err := r.Read()
	require.NoError(t, err)
	assert.Equal(t, "0000 ", rec.Fields[0].Value.(string)[:5])
	size := int64(buf.Len())
	assert.Less(t, cr.n, size/4, "read %d of %d bytes for the first row", cr.n, size)
	assert.Len(t, datatest.ReadAll(t, r), 999)
}

// TestHostilePageSizes: page headers that claim sizes the file cannot back
// are refused, naming the file, before the library allocates for them.
func TestHostilePageSizes(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, []dataset.Column{{Name: "text"}}, dataset.Options{Compression: "none"})
	require.NoError(t, err)
	for i := range 10 {
		require.NoError(t, w.Write([]dataset.Field{{Name: "text", Value: fmt.Sprint("row ", i)}}))
	}
	require.NoError(t, w.Close())
	good := buf.Bytes()
	f, err := parquet.OpenFile(bytes.NewReader(good), int64(len(good)))
	require.NoError(t, err)
	m := f.Metadata().RowGroups[0].Columns[0].MetaData
	start := m.DataPageOffset
	if m.DictionaryPageOffset > 0 && m.DictionaryPageOffset < start {
		start = m.DictionaryPageOffset
	}
	var proto thrift.CompactProtocol
	var header format.PageHeader
	pr := proto.NewReaderFromBytes(good[start:])
	require.NoError(t, thrift.NewDecoder(pr).Decode(&header))
	hdrLen := pr.BytesRead()

	tests := []struct {
		name    string
		edit    func(h *format.PageHeader)
		wantErr string
	}{
		{"compressed size beyond chunk", func(h *format.PageHeader) { h.CompressedPageSize = math.MaxInt32 }, "overruns its column chunk"},
		{"uncompressed size over limit", func(h *format.PageHeader) { h.UncompressedPageSize = math.MaxInt32 }, "over the 268435456-byte limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := header
			tt.edit(&h)
			enc, err := thrift.Marshal(&proto, &h)
			require.NoError(t, err)
			bad := append(append(bytes.Clone(good[:start]), enc...), good[int(start)+hdrLen:]...)
			r, err := NewReader("hostile.parquet", bytes.NewReader(bad), int64(len(bad)))
			require.NoError(t, err, "the footer is intact")
			defer r.Close()
			_, err = r.Read()
			require.Error(t, err)
			assert.Contains(t, err.Error(), "read hostile.parquet row group 0: column 0: page at")
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}
