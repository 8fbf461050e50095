// Package checkpoint owns a job's checkpoint: a checksummed append-only log
// of finished rows, and the lock that lets one run use it at a time.
//
// Why a log. A finished row must be durable before it counts, and a SIGKILL
// or power loss may land at any byte. An append-only file where every record
// carries its length and a CRC-32C makes that easy to reason about: a record
// is either whole and checked, or it is the torn tail, which Open truncates.
// Appends are sequential writes, group-committed with one fsync for all rows
// finished since the last one, so durability costs one fsync per batch of
// rows rather than one per row. It needs no new dependency and no cgo; SQLite
// or bbolt would give the same guarantee with a page cache and B-tree we do
// not need, since rows are only appended, and read back once in index order
// for the final merge.
//
// Layout: an 8-byte magic, then records of [u32 length][u32 CRC-32C of the
// payload][payload]. A payload is one type byte and JSON: 'H' the header
// (format version, job fingerprint, frozen date; always first), 'S' a run
// session starting, 'T' the input's total row count once known, 'R' a
// finished row (index, line, id, translation or error, finish reason, token
// counts, time).
//
// Memory. An open Log keeps a bitmap of finished row indices (one bit a
// row: 1.25 MB for 10 million rows) and counters. Results stay on disk:
// Index builds a sparse on-disk offset table (8 bytes a row) so the final
// merge can fetch each row's result in input order without holding them.
//
// A Log is owned by one goroutine (the runner's writer); it is not safe for
// concurrent use. It imports nothing of engine or io.
package checkpoint
