// Package formats registers every dataset format with io/dataset: import
// it (for its side effect) wherever dataset.Open or dataset.NewWriter is
// used.
//
//	import _ "github.com/batchtrans/batchtrans/io/formats"
package formats

import (
	// Each registers itself in init.
	_ "github.com/batchtrans/batchtrans/io/csv"
	_ "github.com/batchtrans/batchtrans/io/jsonl"
	_ "github.com/batchtrans/batchtrans/io/parquet"
)
