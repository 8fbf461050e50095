// Package runner owns one run of a job: it reads the input, renders each
// row's prompt, has worker goroutines share one Translator (the engine),
// checkpoints every finished row, and when every row is done writes the
// output in input order by merging the input with the checkpoint.
//
// Shape of a run: one errgroup; one reader goroutine feeding rows that are
// not yet in the checkpoint; N workers calling Translator.Generate
// concurrently (the engine batches concurrent calls, so more workers give
// bigger batches); one writer goroutine that owns the checkpoint and
// group-commits finished rows (one fsync for all rows finished since the
// last). pass.go holds that stage, one method per goroutine. Memory is
// bounded by the workers' window of rows in flight plus a bitmap of
// finished row indices; results live on disk.
//
// Failed rows. A row's failure (RowFailure) names the input as the job file
// wrote it, the line and row, the id, the field and the reason; the writer
// logs the first LoggedFailures of a run once each, after they are durable.
// A translation cut off at max_new_tokens is checkpointed with its text and
// finish reason; whether it counts as failed is the job's
// generation.accept_cut, applied by the progress counters and the merge.
//
// When the output appears: only when every input row has a result in the
// checkpoint. The final merge re-reads the input, looks each row's result
// up in the checkpoint by index, writes to a temporary file in the output's
// folder, fsyncs it, renames it into place and fsyncs the folder. Because
// the output is a function of the input and the checkpoint's per-row
// results (each a function of the model, job and row alone), it is
// byte-identical whatever the worker count or interruptions. Until then
// `batchtrans status` reports progress from the checkpoint.
//
// Workers. Config.Workers, else the job's runtime.workers, else enough
// concurrent requests to fill the engine's batch on the device
// (engine.DefaultBatch: 16 on the CPU); Workers resolves it for every
// caller. The engine spreads each batched step over every core itself, so
// "one worker per core" would leave the batch mostly empty on small
// machines.
//
// A sharded run (Config.Shard) reads and translates only its shard's rows
// and, when they are done, writes its part (runner/shard) from the
// checkpoint instead of the output; MergeShards later joins the input
// with the parts, read one after another, through the same output writer
// as a one-process run, so the bytes are the same. An output URL is
// uploaded as one object that appears only when complete. With
// Config.Mirror the checkpoint lives in object storage (runner/mirror):
// pulled before the run, pushed every checkpoint.sync_every and at the end.
//
// The runner imports engine only for its request and result types, jobs
// for the job, io/dataset for the reader and writer interfaces, io/source
// for the input's fingerprint and io/blobstore for output objects.
package runner
