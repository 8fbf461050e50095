package checkpoint

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// Index finds finished rows by index without holding them in memory: a
// sparse file of one 8-byte slot a row holding 1 + the row record's offset
// in the log (0: not finished). It lives beside the checkpoint and is
// removed on Close.
type Index struct {
	log  *os.File
	tab  *os.File
	path string
	slot [8]byte
	buf  []byte
	// block caches slots blockNo * slotsPerBlock .. of the table (Get's
	// reads; the table does not change after build; -1: none), blockLen
	// bytes of it read (less at the table's end).
	block    []byte
	blockNo  int64
	blockLen int
}

// slotsPerBlock is how many slots of the table Get reads at once (4 KiB).
const slotsPerBlock = 512

// Index flushes the log and builds the offset table for its rows.
func (l *Log) Index() (*Index, error) {
	if err := l.Sync(); err != nil {
		return nil, err
	}
	path := l.path + ".idx"
	tab, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create checkpoint index: %w", err)
	}
	rf, err := os.Open(l.path)
	if err != nil {
		tab.Close()
		return nil, fmt.Errorf("open checkpoint: %w", err)
	}
	x := &Index{log: rf, tab: tab, path: path, block: make([]byte, 8*slotsPerBlock), blockNo: -1}
	if err := x.build(l.size); err != nil {
		x.Close()
		return nil, err
	}
	return x, nil
}

func (x *Index) build(end int64) error {
	r := bufio.NewReaderSize(io.NewSectionReader(x.log, 0, end), 1<<16)
	if _, err := r.Discard(len(magic)); err != nil {
		return fmt.Errorf("read checkpoint: %w", err)
	}
	off := int64(len(magic))
	var head [8]byte
	var p []byte
	var seen bitmap
	for off < end {
		if _, err := io.ReadFull(r, head[:]); err != nil {
			return fmt.Errorf("read checkpoint at %d: %w", off, err)
		}
		n := int(binary.LittleEndian.Uint32(head[:4]))
		if cap(p) < n {
			p = make([]byte, n)
		}
		p = p[:n]
		if _, err := io.ReadFull(r, p); err != nil {
			return fmt.Errorf("read checkpoint at %d: %w", off, err)
		}
		if p[0] == 'R' {
			var row struct {
				Index int64 `json:"i"`
			}
			if err := json.Unmarshal(p[1:], &row); err != nil || row.Index < 0 || row.Index >= maxIndex {
				return fmt.Errorf("checkpoint row at %d: bad record", off)
			}
			if !seen.has(row.Index) { // the first record of a row wins, as in Open
				seen.set(row.Index)
				binary.LittleEndian.PutUint64(x.slot[:], uint64(off)+1)
				if _, err := x.tab.WriteAt(x.slot[:], row.Index*8); err != nil {
					return fmt.Errorf("write checkpoint index: %w", err)
				}
			}
		}
		off += 8 + int64(n)
	}
	return nil
}

// Get returns row i's result; ok is false if the row is not finished.
// The table is read a block of slots at a time (rows are asked for in
// order when the output is written), and a record with its header in one
// read where it fits the buffer.
func (x *Index) Get(i int64) (row Row, ok bool, err error) {
	if i < 0 || i >= maxIndex {
		return Row{}, false, nil
	}
	if b := i / slotsPerBlock; b != x.blockNo {
		n, err := x.tab.ReadAt(x.block, b*8*slotsPerBlock)
		if err != nil && !errors.Is(err, io.EOF) {
			x.blockNo = -1
			return Row{}, false, fmt.Errorf("read checkpoint index: %w", err)
		}
		x.blockNo, x.blockLen = b, n
	}
	at := int(i%slotsPerBlock) * 8
	if at+8 > x.blockLen { // past the table's end: no row this far finished
		return Row{}, false, nil
	}
	off := int64(binary.LittleEndian.Uint64(x.block[at:]))
	if off == 0 {
		return Row{}, false, nil
	}
	off--
	if cap(x.buf) < 4096 {
		x.buf = make([]byte, 4096)
	}
	got, err := x.log.ReadAt(x.buf[:cap(x.buf)], off)
	if got < 8 {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Row{}, false, fmt.Errorf("read checkpoint at %d: %w", off, err)
	}
	n := int(binary.LittleEndian.Uint32(x.buf[:4])) // the header: length, checksum
	if n < 1 {
		return Row{}, false, fmt.Errorf("checkpoint record at %d: empty", off)
	}
	if got < 8+n { // a record longer than the first read: read the rest
		if cap(x.buf) < 8+n {
			x.buf = append(make([]byte, 0, 8+n), x.buf[:got]...)
		}
		x.buf = x.buf[:8+n]
		if _, err := x.log.ReadAt(x.buf[got:], off+int64(got)); err != nil {
			return Row{}, false, fmt.Errorf("read checkpoint at %d: %w", off, err)
		}
	}
	body := x.buf[8 : 8+n]
	if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(x.buf[4:8]) {
		return Row{}, false, fmt.Errorf("checkpoint record at %d fails its checksum", off)
	}
	if err := json.Unmarshal(body[1:], &row); err != nil {
		return Row{}, false, fmt.Errorf("checkpoint record at %d: %w", off, err)
	}
	return row, true, nil
}

// Close removes the offset table.
func (x *Index) Close() error {
	x.log.Close()
	x.tab.Close()
	return os.Remove(x.path)
}
