package shard_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/internal/s3test"
	"github.com/batchtrans/batchtrans/runner/checkpoint"
	"github.com/batchtrans/batchtrans/runner/shard"
)

// dirs are the shard folder on a local path and on an S3-compatible server.
func dirs(t *testing.T) map[string]string {
	srv := s3test.Start(t, "bucket")
	return map[string]string{
		"local": filepath.Join(t.TempDir(), "out.ckpt.shards"),
		"s3":    srv.URL("job/out.ckpt.shards"),
	}
}

func rowsFrom(first, end int64) func() (checkpoint.Row, error) {
	i := first
	return func() (checkpoint.Row, error) {
		if i >= end {
			return checkpoint.Row{}, io.EOF
		}
		text := fmt.Sprintf("t%d", i)
		r := checkpoint.Row{Index: i, Line: i + 1, ID: fmt.Sprint(i), Text: &text}
		i++
		return r, nil
	}
}

func TestPartRoundTrip(t *testing.T) {
	for name, path := range dirs(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			d, err := shard.OpenDir(ctx, path)
			require.NoError(t, err)
			defer d.Close()
			s := shard.Spec{Index: 1, Count: 3}
			r := s.Range(10)
			hdr := shard.PartHeader{Shard: 1, Shards: 3, First: r.First, End: r.End, Date: "d", Failed: 1}
			require.NoError(t, d.WritePart(ctx, s, hdr, rowsFrom(r.First, r.End)))

			p, err := d.OpenPart(ctx, s)
			require.NoError(t, err)
			assert.Equal(t, hdr.Failed, p.Header.Failed)
			for i := r.First; i < r.End; i++ {
				row, err := p.Next()
				require.NoError(t, err)
				assert.Equal(t, i, row.Index)
				assert.Equal(t, fmt.Sprintf("t%d", i), *row.Text)
			}
			_, err = p.Next()
			assert.ErrorIs(t, err, io.EOF)
			p.Close()

			ls, err := d.List(ctx, 3)
			require.NoError(t, err)
			assert.Equal(t, []bool{false, true, false}, ls.Parts)

			// A part with too few rows is never written.
			s0 := shard.Spec{Index: 0, Count: 3}
			r0 := s0.Range(10)
			err = d.WritePart(ctx, s0, shard.PartHeader{Shard: 0, Shards: 3, First: r0.First, End: r0.End}, rowsFrom(r0.First, r0.End-1))
			assert.ErrorIs(t, err, shard.ErrPartIncomplete)
			ls, err = d.List(ctx, 3)
			require.NoError(t, err)
			assert.False(t, ls.Parts[0], "an unfinished part does not appear")
		})
	}
}

func TestCutPartIsIncomplete(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s")
	d, err := shard.OpenDir(ctx, path)
	require.NoError(t, err)
	defer d.Close()
	s := shard.Spec{Index: 0, Count: 1}
	require.NoError(t, d.WritePart(ctx, s, shard.PartHeader{Shard: 0, Shards: 1, End: 50}, rowsFrom(0, 50)))
	file := filepath.Join(path, shard.PartName(s))
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	// The end record is the last 20 bytes: a cut just before it ends the
	// bytes cleanly after a row.
	for _, cut := range []int{len(data) - 1, len(data) - 20, len(data) - 21, len(data) / 2} {
		require.NoError(t, os.WriteFile(file, data[:cut], 0o644))
		p, err := d.OpenPart(ctx, s)
		require.NoError(t, err)
		for err == nil {
			_, err = p.Next()
		}
		p.Close()
		assert.ErrorIs(t, err, shard.ErrPartIncomplete, "cut at %d of %d", cut, len(data))
		assert.NotErrorIs(t, err, io.EOF, "a cut part never reads as a whole one")
	}
}

func TestPlanAgreement(t *testing.T) {
	for name, path := range dirs(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			d, err := shard.OpenDir(ctx, path)
			require.NoError(t, err)
			defer d.Close()
			_, err = d.ReadPlan(ctx)
			assert.ErrorIs(t, err, shard.ErrNoPlan)
			fp := map[string]string{"input.file": "1:aa"}
			first, err := d.WritePlan(ctx, shard.Plan{Shards: 4, Rows: 100, Fingerprint: fp, Date: "01 Dec 2026"}, false)
			require.NoError(t, err)
			// A second shard starting at once keeps the first one's plan.
			second, err := d.WritePlan(ctx, shard.Plan{Shards: 4, Rows: 100, Fingerprint: fp, Date: "02 Dec 2026"}, false)
			require.NoError(t, err)
			assert.Equal(t, first.Date, second.Date)

			assert.NoError(t, second.Agree(shard.Spec{Index: 3, Count: 4}, fp, path))
			err = second.Agree(shard.Spec{Index: 3, Count: 5}, fp, path)
			assert.ErrorIs(t, err, shard.ErrCountChanged)
			assert.Contains(t, err.Error(), "says 4 shards")
			err = second.Agree(shard.Spec{Index: 3, Count: 4}, map[string]string{"input.file": "2:bb"}, path)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "input.file")
		})
	}
}
