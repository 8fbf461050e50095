// Package datatest holds helpers the format packages' tests share.
package datatest

import (
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/io/dataset"
)

// ReadAll reads every record of r, failing the test on a fatal read error.
func ReadAll(t testing.TB, r dataset.Reader) []dataset.Record {
	t.Helper()
	var recs []dataset.Record
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return recs
		}
		require.NoError(t, err)
		recs = append(recs, rec)
	}
}
