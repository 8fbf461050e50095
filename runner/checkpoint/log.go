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
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/batchtrans/batchtrans/internal/durable"
)

// FormatVersion is the checkpoint layout version stored in the header.
// Version 2 records each row's finish reason; a version 1 checkpoint lacks
// it, so its output could not match a fresh run's and it is refused.
const FormatVersion = 2

const magic = "BTCKPT01"

// maxRecord bounds one record's payload so a corrupt length cannot make
// Open allocate gigabytes.
const maxRecord = 64 << 20

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Sentinels.
var (
	// ErrNoCheckpoint: the file does not exist or holds no valid header.
	ErrNoCheckpoint = errors.New("no checkpoint")
	// ErrLocked: another live run holds the job's lock.
	ErrLocked = errors.New("checkpoint is locked by another run")
)

// Header is the checkpoint's first record.
type Header struct {
	Version     int               `json:"version"`
	Fingerprint map[string]string `json:"fingerprint"`
	Date        string            `json:"date"` // the frozen template date
	Created     time.Time         `json:"created"`
}

// Row is one finished row's result. Exactly one of Text and Err is set.
// Finish is the engine's finish reason for a translated row ("stop", or
// "length" when max_new_tokens cut it off), empty for a failed one: the
// raw fact, so whether a cut row counts as failed is decided when it is
// read, by the job's generation.accept_cut.
type Row struct {
	Index            int64   `json:"i"`
	Line             int64   `json:"l"`
	ID               string  `json:"id"`
	Text             *string `json:"t,omitempty"`
	Err              string  `json:"e,omitempty"`
	Finish           string  `json:"f,omitempty"`
	PromptTokens     int     `json:"pt"`
	CompletionTokens int     `json:"ct"`
	Time             int64   `json:"ts"` // Unix milliseconds when it finished
}

// FinishLength is the finish reason of a row that max_new_tokens cut off
// (the engine's engine.FinishLength; this package imports no engine).
const FinishLength = "length"

// Cut reports whether the row was translated but cut off at max_new_tokens.
func (r Row) Cut() bool { return r.Text != nil && r.Finish == FinishLength }

// Stats summarises a checkpoint.
type Stats struct {
	Done             int64 // rows finished (good or failed)
	Failed           int64 // of which with an error
	Cut              int64 // of which translated but cut off (Finish "length")
	PromptTokens     int64
	CompletionTokens int64
	Total            int64 // input rows, -1 until a run has counted them
	MaxIndex         int64 // highest finished row index, -1 if none
	// The latest session: when it started, rows it finished, its last row's time.
	SessionStart time.Time
	SessionRows  int64
	LastRow      time.Time
	Sessions     int
}

type session struct {
	Start time.Time `json:"start"`
}

type total struct {
	Rows int64 `json:"rows"`
}

// Log is an open checkpoint. Appends are buffered until Sync.
type Log struct {
	path  string
	f     *os.File
	w     *bufio.Writer
	size  int64 // bytes durable or buffered, i.e. the next record's offset
	hdr   Header
	done  bitmap
	stats Stats
	buf   []byte
	// synced is size as of the last Sync, for other goroutines.
	synced atomic.Int64
	// TornBytes is how many bytes of a torn tail Open cut off.
	TornBytes int64
}

// Create makes a new checkpoint at path (replacing any old one) with hdr,
// durable (file and folder fsynced) before it returns.
func Create(path string, hdr Header) (*Log, error) {
	hdr.Version = FormatVersion
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create checkpoint: %w", err)
	}
	l := &Log{path: path, f: f, w: bufio.NewWriterSize(f, 1<<16), hdr: hdr}
	l.stats = Stats{Total: -1, MaxIndex: -1}
	if _, err := l.w.WriteString(magic); err != nil {
		f.Close()
		return nil, fmt.Errorf("write checkpoint %s: %w", path, err)
	}
	l.size = int64(len(magic))
	if err := l.appendJSON('H', hdr); err != nil {
		f.Close()
		return nil, err
	}
	if err := l.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	if err := durable.SyncDir(filepath.Dir(path)); err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

// Open opens an existing checkpoint for appending, after scanning it and
// truncating a torn tail. It returns ErrNoCheckpoint if the file is
// missing or has no valid header (a run killed while creating it).
func Open(path string) (*Log, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoCheckpoint
	}
	if err != nil {
		return nil, fmt.Errorf("open checkpoint: %w", err)
	}
	l := &Log{path: path, f: f}
	good, fileSize, err := l.scan(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	if good < fileSize {
		if err := f.Truncate(good); err != nil {
			f.Close()
			return nil, fmt.Errorf("truncate torn tail of checkpoint %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("sync checkpoint %s: %w", path, err)
		}
		l.TornBytes = fileSize - good
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("seek checkpoint %s: %w", path, err)
	}
	l.size = good
	l.synced.Store(good)
	l.w = bufio.NewWriterSize(f, 1<<16)
	return l, nil
}

// Inspect reads a checkpoint without changing it or taking its lock: for
// status. A torn tail is ignored.
func Inspect(path string) (Header, Stats, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return Header{}, Stats{}, ErrNoCheckpoint
	}
	if err != nil {
		return Header{}, Stats{}, fmt.Errorf("open checkpoint: %w", err)
	}
	defer f.Close()
	l := &Log{path: path}
	if _, _, err := l.scan(f); err != nil {
		return Header{}, Stats{}, err
	}
	return l.hdr, l.stats, nil
}

// scan reads every whole, checksummed record from the start and returns
// the offset after the last good one and the file size.
func (l *Log) scan(f *os.File) (good, size int64, err error) {
	st, err := f.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("stat checkpoint %s: %w", l.path, err)
	}
	size = st.Size()
	r := bufio.NewReaderSize(f, 1<<16)
	m := make([]byte, len(magic))
	if _, err := io.ReadFull(r, m); err != nil || string(m) != magic {
		if err == nil && size >= int64(len(magic)) {
			return 0, 0, fmt.Errorf("%s is not a batchtrans checkpoint (bad magic)", l.path)
		}
		return 0, 0, ErrNoCheckpoint
	}
	l.stats = Stats{Total: -1, MaxIndex: -1}
	off := int64(len(magic))
	var hdrSeen bool
	var head [8]byte
	var payload []byte
	for {
		if _, err := io.ReadFull(r, head[:]); err != nil {
			break // clean end or torn record head
		}
		n := binary.LittleEndian.Uint32(head[:4])
		sum := binary.LittleEndian.Uint32(head[4:])
		if n == 0 || n > maxRecord || off+8+int64(n) > size {
			break
		}
		if cap(payload) < int(n) {
			payload = make([]byte, n)
		}
		payload = payload[:n]
		if _, err := io.ReadFull(r, payload); err != nil {
			break
		}
		if crc32.Checksum(payload, crcTable) != sum {
			break
		}
		if !hdrSeen {
			if payload[0] != 'H' || json.Unmarshal(payload[1:], &l.hdr) != nil {
				return 0, size, ErrNoCheckpoint
			}
			if l.hdr.Version != FormatVersion {
				return 0, size, fmt.Errorf("checkpoint %s has format version %d; this batchtrans reads %d (use --restart)", l.path, l.hdr.Version, FormatVersion)
			}
			hdrSeen = true
		} else if err := l.apply(payload); err != nil {
			break // a checksummed but unreadable record: treat as the end
		}
		off += 8 + int64(n)
	}
	if !hdrSeen {
		return 0, size, ErrNoCheckpoint
	}
	return off, size, nil
}

func (l *Log) apply(p []byte) error {
	switch p[0] {
	case 'R':
		var row Row
		if err := json.Unmarshal(p[1:], &row); err != nil || row.Index < 0 || row.Index >= maxIndex {
			return fmt.Errorf("bad row record")
		}
		l.count(row)
	case 'S':
		var s session
		if err := json.Unmarshal(p[1:], &s); err != nil {
			return err
		}
		l.stats.Sessions++
		l.stats.SessionStart, l.stats.SessionRows, l.stats.LastRow = s.Start, 0, time.Time{}
	case 'T':
		var t total
		if err := json.Unmarshal(p[1:], &t); err != nil {
			return err
		}
		l.stats.Total = t.Rows
	default:
		return fmt.Errorf("unknown record type %q", p[0])
	}
	return nil
}

func (l *Log) count(row Row) {
	if l.done.has(row.Index) {
		return // never count a row twice
	}
	l.done.set(row.Index)
	s := &l.stats
	s.Done++
	if row.Text == nil {
		s.Failed++
	} else if row.Cut() {
		s.Cut++
	}
	s.PromptTokens += int64(row.PromptTokens)
	s.CompletionTokens += int64(row.CompletionTokens)
	s.MaxIndex = max(s.MaxIndex, row.Index)
	s.SessionRows++
	s.LastRow = time.UnixMilli(row.Time)
}

// Header is the checkpoint's header.
func (l *Log) Header() Header { return l.hdr }

// Stats is the checkpoint's summary, counting buffered rows too.
func (l *Log) Stats() Stats { return l.stats }

// Done reports whether row index i is finished.
func (l *Log) Done(i int64) bool { return l.done.has(i) }

// DoneSet returns a snapshot of the finished rows, safe to read from
// another goroutine while the log keeps appending.
func (l *Log) DoneSet() func(i int64) bool {
	snap := l.done.clone()
	return snap.has
}

// Path is the checkpoint file.
func (l *Log) Path() string { return l.path }

// Append buffers finished rows; they are durable after Sync. Rows already
// finished are ignored, so a row is never stored twice.
func (l *Log) Append(rows ...Row) error {
	for _, r := range rows {
		if r.Index < 0 || r.Index >= maxIndex {
			return fmt.Errorf("row index %d out of range", r.Index)
		}
		if l.done.has(r.Index) {
			continue
		}
		if err := l.appendJSON('R', r); err != nil {
			return err
		}
		l.count(r)
	}
	return nil
}

// StartSession records that a run started now.
func (l *Log) StartSession(now time.Time) error {
	if err := l.appendJSON('S', session{Start: now.UTC()}); err != nil {
		return err
	}
	l.stats.Sessions++
	l.stats.SessionStart, l.stats.SessionRows, l.stats.LastRow = now.UTC(), 0, time.Time{}
	return nil
}

// SetTotal records the input's row count.
func (l *Log) SetTotal(n int64) error {
	if l.stats.Total == n {
		return nil
	}
	l.stats.Total = n
	return l.appendJSON('T', total{Rows: n})
}

func (l *Log) appendJSON(kind byte, v any) error {
	var err error
	if l.buf, err = AppendRecord(l.buf[:0], kind, v); err != nil {
		return err
	}
	if _, err := l.w.Write(l.buf); err != nil {
		return fmt.Errorf("write checkpoint %s: %w", l.path, err)
	}
	l.size += int64(len(l.buf))
	return nil
}

// Sync writes buffered records and fsyncs the file: after it returns, every
// appended row survives a crash.
func (l *Log) Sync() error {
	if err := l.w.Flush(); err != nil {
		return fmt.Errorf("write checkpoint %s: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("sync checkpoint %s: %w", l.path, err)
	}
	l.synced.Store(l.size)
	return nil
}

// SyncedSize is how many bytes of the file are durable whole records: a
// copy of the file's first SyncedSize bytes is a valid checkpoint. Safe to
// call from any goroutine (the object-storage mirror uploads up to it).
func (l *Log) SyncedSize() int64 { return l.synced.Load() }

// Close syncs and closes the log.
func (l *Log) Close() error {
	err := l.Sync()
	if cerr := l.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close checkpoint %s: %w", l.path, cerr)
	}
	return err
}

// maxIndex bounds a row index read from a file, so a corrupt record cannot
// address absurd offsets in the index file.
const maxIndex = 1 << 40

// bitmap is a set of non-negative indices, kept in 64 Ki-row chunks of
// 8 KiB, so memory follows the rows actually set rather than the largest
// index seen.
type bitmap map[int64]*[1024]uint64

func (b bitmap) has(i int64) bool {
	c := b[i>>16]
	return c != nil && c[(i>>6)&1023]&(1<<(uint(i)&63)) != 0
}

func (b *bitmap) set(i int64) {
	if *b == nil {
		*b = bitmap{}
	}
	c := (*b)[i>>16]
	if c == nil {
		c = new([1024]uint64)
		(*b)[i>>16] = c
	}
	c[(i>>6)&1023] |= 1 << (uint(i) & 63)
}

func (b bitmap) clone() bitmap {
	out := make(bitmap, len(b))
	for k, c := range b {
		cc := *c
		out[k] = &cc
	}
	return out
}
