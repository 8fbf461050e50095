// Package shard owns how a job is split across machines: the shard spec
// (--shard I/N, or auto from the scheduler's environment), which rows a
// shard owns, and the shard folder every shard and `merge` share.
//
// Rows are split into contiguous ranges: shard I of N owns rows
// [floor(T*I/N), floor(T*(I+1)/N)) of the T input rows. Contiguous rather
// than every N-th row, because then each shard's part is a slice of the
// output in order, so merge streams the parts one after another (one part
// open at a time, whatever N) instead of interleaving N of them, and a
// shard stops reading its input at its range's end. The price is that
// every shard must know T; the first shard to start counts the rows (a
// Parquet footer, else one pass) and writes it into the plan.
//
// The shard folder is CHECKPOINT.shards/ beside the job's checkpoint path
// (a local or shared folder, or a prefix in a bucket), holding:
//
//	plan.json                   N, the row count, the job's fingerprint
//	                            and the frozen template date, written by
//	                            the first shard to start
//	00007-of-01000.ckpt         shard 7's checkpoint (a file; in object
//	                            storage a prefix of sealed segments)
//	00007-of-01000.ckpt.lock    its lock (file-system checkpoints)
//	00007-of-01000.part         shard 7's finished rows, in order
//
// A part is written (atomically) only when every row of the shard has a
// result: the checkpoint's framing, a header with the shard's range,
// fingerprint, date and counts (which is all that status reads), one
// record per row in row order, and an end record with the row count, so a
// part cut short is never taken for a whole one.
//
// It imports runner/checkpoint (the record framing) and io/blobstore; the
// folder is a *blob.Bucket, so a local folder and a bucket take the same
// code.
package shard
