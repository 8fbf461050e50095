package shard

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/batchtrans/batchtrans/runner/checkpoint"
)

const partMagic = "BTPART01"

// Record kinds of a part (the checkpoint's framing).
const (
	kindHeader = 'P'
	kindRow    = 'R'
	kindEnd    = 'E'
)

// ErrPartIncomplete: a part is missing records or cut short.
var ErrPartIncomplete = errors.New("part is incomplete")

// PartHeader is a part's first record: enough for status and merge
// without reading the rows.
type PartHeader struct {
	Shard       int               `json:"shard"`
	Shards      int               `json:"shards"`
	First       int64             `json:"first"`
	End         int64             `json:"end"`
	Fingerprint map[string]string `json:"fingerprint"`
	Date        string            `json:"date"`
	Numerics    string            `json:"numerics,omitempty"` // what made the bits (runner.Config.Numerics)
	Failed      int64             `json:"failed"`
	Tokens      [2]int64          `json:"tokens"` // prompt, completion
	Finished    time.Time         `json:"finished"`
}

type partEnd struct {
	Rows int64 `json:"rows"`
}

// WritePart writes shard s's part: hdr, then each row that next yields (it
// returns io.EOF after the last), which must be the rows First..End-1 in
// order. The part appears only when it is whole: a local folder writes a
// temporary file and renames it; object stores make an upload visible
// only when it completes, and an abandoned one is discarded.
func (d *Dir) WritePart(ctx context.Context, s Spec, hdr PartHeader, next func() (checkpoint.Row, error)) (err error) {
	name := PartName(s)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := d.b.NewWriter(wctx, name, &blob.WriterOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return fmt.Errorf("write %s: %w", d.Join(name), err)
	}
	defer func() {
		if err != nil {
			cancel() // abandon the upload: no part appears
		}
		if cerr := w.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("write %s: %w", d.Join(name), cerr)
		}
	}()
	bw := bufio.NewWriterSize(w, 1<<16)
	buf := []byte(partMagic)
	if buf, err = checkpoint.AppendRecord(buf, kindHeader, hdr); err != nil {
		return err
	}
	want := hdr.First
	for {
		row, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if row.Index != want {
			return fmt.Errorf("write %s: row %d where row %d belongs", d.Join(name), row.Index, want)
		}
		want++
		if buf, err = checkpoint.AppendRecord(buf, kindRow, row); err != nil {
			return err
		}
		if len(buf) >= 1<<15 {
			if _, err := bw.Write(buf); err != nil {
				return fmt.Errorf("write %s: %w", d.Join(name), err)
			}
			buf = buf[:0]
		}
	}
	if want != hdr.End {
		return fmt.Errorf("write %s: %d of %d rows: %w", d.Join(name), want-hdr.First, hdr.End-hdr.First, ErrPartIncomplete)
	}
	if buf, err = checkpoint.AppendRecord(buf, kindEnd, partEnd{Rows: hdr.End - hdr.First}); err != nil {
		return err
	}
	if _, err := bw.Write(buf); err != nil {
		return fmt.Errorf("write %s: %w", d.Join(name), err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", d.Join(name), err)
	}
	return nil
}

// PartReader reads a part's rows in order.
type PartReader struct {
	Header PartHeader
	name   string
	r      *bufio.Reader
	c      io.Closer
	buf    []byte
	next   int64
}

// OpenPart opens shard s's part and reads its header.
func (d *Dir) OpenPart(ctx context.Context, s Spec) (*PartReader, error) {
	name := PartName(s)
	r, c, err := d.reader(ctx, name)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, fmt.Errorf("%s: %w", d.Join(name), ErrPartIncomplete)
		}
		return nil, fmt.Errorf("read %s: %w", d.Join(name), err)
	}
	p := &PartReader{name: d.Join(name), r: r, c: c}
	m := make([]byte, len(partMagic))
	if _, err := io.ReadFull(r, m); err != nil || string(m) != partMagic {
		c.Close()
		return nil, fmt.Errorf("%s is not a batchtrans part: %w", p.name, ErrPartIncomplete)
	}
	kind, body, err := p.record()
	if err == nil && (kind != kindHeader || json.Unmarshal(body, &p.Header) != nil) {
		err = fmt.Errorf("%s has no header: %w", p.name, ErrPartIncomplete)
	}
	if err == nil && (p.Header.Shard != s.Index || p.Header.Shards != s.Count) {
		err = fmt.Errorf("%s belongs to shard %d/%d: %w", p.name, p.Header.Shard, p.Header.Shards, ErrPartIncomplete)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	p.next = p.Header.First
	return p, nil
}

func (p *PartReader) record() (byte, []byte, error) {
	kind, body, buf, err := checkpoint.ReadRecord(p.r, p.buf)
	p.buf = buf
	if errors.Is(err, io.EOF) {
		// Only the end record ends a part: a clean end of the bytes
		// before it is a part cut short.
		return 0, nil, fmt.Errorf("read %s: %w: it ends before its end record", p.name, ErrPartIncomplete)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("read %s: %w: %w", p.name, ErrPartIncomplete, err)
	}
	return kind, body, nil
}

// Next returns the next row, or io.EOF after the last one (once the end
// record has confirmed the count).
func (p *PartReader) Next() (checkpoint.Row, error) {
	kind, body, err := p.record()
	if err != nil {
		return checkpoint.Row{}, err
	}
	switch kind {
	case kindRow:
		var row checkpoint.Row
		if err := json.Unmarshal(body, &row); err != nil || row.Index != p.next {
			return checkpoint.Row{}, fmt.Errorf("read %s: row %d out of order: %w", p.name, p.next, ErrPartIncomplete)
		}
		p.next++
		return row, nil
	case kindEnd:
		var e partEnd
		if err := json.Unmarshal(body, &e); err != nil || p.next != p.Header.End || e.Rows != p.Header.End-p.Header.First {
			return checkpoint.Row{}, fmt.Errorf("read %s: %w", p.name, ErrPartIncomplete)
		}
		return checkpoint.Row{}, io.EOF
	}
	return checkpoint.Row{}, fmt.Errorf("read %s: unknown record %q: %w", p.name, kind, ErrPartIncomplete)
}

// Close closes the part.
func (p *PartReader) Close() error { return p.c.Close() }
