package examples

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/engine"
	"github.com/batchtrans/batchtrans/examples/internal/chrf"
)

// heldoutRow is one line of data/heldout-de.jsonl.
type heldoutRow struct {
	ID      string `json:"id"`
	Package string `json:"package"`
	EN      string `json:"en"`
	DE      string `json:"de"`
}

func readHeldout(t *testing.T) []heldoutRow {
	t.Helper()
	f, err := os.Open(heldoutFile)
	require.NoError(t, err)
	defer f.Close()
	var rows []heldoutRow
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		var r heldoutRow
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(&r), "%s line %d", heldoutFile, n)
		id, err := hex.DecodeString(r.ID)
		require.NoError(t, err, "%s line %d: id", heldoutFile, n)
		require.Len(t, id, 16, "%s line %d: id is an md5", heldoutFile, n)
		require.False(t, seen[r.ID], "%s line %d: duplicate id", heldoutFile, n)
		seen[r.ID] = true
		require.NotEmpty(t, r.EN, "%s line %d: en", heldoutFile, n)
		require.NotEmpty(t, r.DE, "%s line %d: de", heldoutFile, n)
		rows = append(rows, r)
	}
	require.NoError(t, sc.Err())
	return rows
}

// TestBundledModelTranslatesHeldOut is the example's promise: the bundled
// model, as the demo job loads it (bf16, German adapter merged, greedy,
// at most 96 new tokens), translates held-out descriptions (never seen in
// training) into German that beats copying the English source by at least
// 10 chrF points, and ends at least 80% of its answers at EOS rather than at
// the token limit. The rows run concurrently, so batches mix prompts and
// answers of unequal lengths.
func TestBundledModelTranslatesHeldOut(t *testing.T) {
	all := readHeldout(t)
	require.GreaterOrEqual(t, len(all), 200, "a few hundred held-out rows")
	// An evenly spread third of the rows keeps the test quick; the demo
	// scores them all.
	rows := make([]heldoutRow, 0, len(all)/3+1)
	for i := 0; i < len(all); i += 3 {
		rows = append(rows, all[i])
	}

	m, err := engine.Load(engine.Options{ModelDir: baseDir, AdapterDir: adapterDir, DType: "bf16"})
	require.NoError(t, err)
	const system = "Translate the user's text from English to German. Reply with the translation only."
	results := make([]engine.Result, len(rows))
	errs := make([]error, len(rows))
	var wg sync.WaitGroup
	for i, r := range rows {
		wg.Go(func() {
			results[i], errs[i] = m.Generate(t.Context(), engine.Request{
				Messages:     []engine.Message{{Role: "system", Content: system}, {Role: "user", Content: r.EN}},
				Date:         "25 Nov 2026",
				MaxNewTokens: 96,
			})
		})
	}
	wg.Wait()

	hyps := make([]string, len(rows))
	refs := make([]string, len(rows))
	srcs := make([]string, len(rows))
	stopped := 0
	for i, r := range rows {
		require.NoError(t, errs[i], "row %s", r.ID)
		hyps[i], refs[i], srcs[i] = results[i].Text, r.DE, r.EN
		if results[i].FinishReason == engine.FinishStop {
			stopped++
		}
	}
	score, err := chrf.Corpus(hyps, refs)
	require.NoError(t, err)
	copyScore, err := chrf.Corpus(srcs, refs)
	require.NoError(t, err)
	eos := 100 * float64(stopped) / float64(len(rows))
	t.Logf("%d held-out rows: chrF %.2f, copying the source %.2f, ended at EOS %.1f%%", len(rows), score, copyScore, eos)
	assert.GreaterOrEqual(t, score-copyScore, 10.0, "chrF gain over copying the source")
	assert.GreaterOrEqual(t, eos, 80.0, "percent of outputs ending at EOS")
}
