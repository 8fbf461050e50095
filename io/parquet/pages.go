package parquetfile

import (
	"errors"
	"fmt"
	"io"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// Limits on pages, checked before the library allocates for them.
const (
	// MaxPageBytes is the largest page, compressed or not, this package
	// lets the library decode.
	MaxPageBytes = 256 << 20
	// maxPageHeaderBytes bounds one page header (with its statistics).
	maxPageHeaderBytes = 1 << 20
)

// checkPages walks the page headers of every column chunk of a row group
// and refuses sizes the library would otherwise allocate unchecked: a page
// larger than what is left of its chunk, or than MaxPageBytes once
// uncompressed. Headers are decoded from a bounded buffer, so a length
// inside one cannot ask for more than maxPageHeaderBytes.
func checkPages(r io.ReaderAt, rg format.RowGroup, buf *[]byte) error {
	var proto thrift.CompactProtocol
	for c, cc := range rg.Columns {
		m := cc.MetaData
		start := m.DataPageOffset
		if m.DictionaryPageOffset > 0 && m.DictionaryPageOffset < start {
			start = m.DictionaryPageOffset
		}
		end := start + m.TotalCompressedSize
		for off := start; off < end; {
			var header format.PageHeader
			var hdrLen int64
			for want := int64(256); ; want *= 16 {
				n := min(want, end-off, maxPageHeaderBytes)
				if int64(cap(*buf)) < n {
					*buf = make([]byte, n)
				}
				b := (*buf)[:n]
				if _, err := r.ReadAt(b, off); err != nil {
					return fmt.Errorf("column %d: read page header at %d: %w", c, off, err)
				}
				header = format.PageHeader{}
				pr := proto.NewReaderFromBytes(b)
				err := thrift.NewDecoder(pr).Decode(&header)
				if err == nil {
					hdrLen = int64(pr.BytesRead())
					break
				}
				if !errors.Is(err, io.ErrUnexpectedEOF) || n < want {
					return fmt.Errorf("column %d: page header at %d: %w", c, off, err)
				}
			}
			left := end - off - hdrLen
			switch {
			case header.UncompressedPageSize < 0 || header.UncompressedPageSize > MaxPageBytes:
				return fmt.Errorf("column %d: page at %d of %d bytes uncompressed is over the %d-byte limit", c, off, header.UncompressedPageSize, MaxPageBytes)
			case header.CompressedPageSize < 0 || int64(header.CompressedPageSize) > left:
				return fmt.Errorf("column %d: page at %d of %d bytes overruns its column chunk: %w", c, off, header.CompressedPageSize, parquet.ErrCorrupted)
			}
			off += hdrLen + int64(header.CompressedPageSize)
		}
	}
	return nil
}
