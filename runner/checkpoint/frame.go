package checkpoint

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// AppendRecord appends one framed record to buf: [u32 length][u32 CRC-32C
// of the payload][payload], the payload being kind then v as JSON. The
// checkpoint log and a sharded job's parts share this framing.
func AppendRecord(buf []byte, kind byte, v any) ([]byte, error) {
	p, err := json.Marshal(v)
	if err != nil {
		return buf, fmt.Errorf("encode checkpoint record: %w", err)
	}
	n := 1 + len(p)
	if n > maxRecord {
		return buf, fmt.Errorf("checkpoint record of %d bytes exceeds %d", n, maxRecord)
	}
	start := len(buf)
	buf = append(buf, 0, 0, 0, 0, 0, 0, 0, 0, kind)
	buf = append(buf, p...)
	binary.LittleEndian.PutUint32(buf[start:], uint32(n))
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(buf[start+8:], crcTable))
	return buf, nil
}

// ErrBadRecord: a framed record is torn or fails its checksum.
var ErrBadRecord = errors.New("torn or corrupt record")

// ReadRecord reads the next framed record from r into buf and returns its
// kind and JSON body. It returns io.EOF at a clean end and ErrBadRecord
// for a torn or corrupt one.
func ReadRecord(r *bufio.Reader, buf []byte) (kind byte, body, newBuf []byte, err error) {
	var head [8]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return 0, nil, buf, io.EOF
		}
		return 0, nil, buf, fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	n := binary.LittleEndian.Uint32(head[:4])
	if n == 0 || n > maxRecord {
		return 0, nil, buf, fmt.Errorf("%w: length %d", ErrBadRecord, n)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, buf, fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	if crc32.Checksum(buf, crcTable) != binary.LittleEndian.Uint32(head[4:]) {
		return 0, nil, buf, fmt.Errorf("%w: checksum", ErrBadRecord)
	}
	return buf[0], buf[1:], buf, nil
}
