// Package batchtrans is the root of the batchtrans module: a command-line tool
// that runs batch translation jobs with a fine-tuned Llama model on the CPU.
//
// Layout:
//
//	cmd/batchtrans   the binary: flags, wiring, exit codes (one file per command)
//	engine/          inference: tokenizer, chat template, weights, LoRA, forward pass,
//	                 sampling, kernels, device choice; imports nothing of runner, io or jobs
//	io/              dataset format packages (JSONL, CSV, Parquet) behind io/dataset;
//	                 io/source (input.path: globs, lists, many files as one input),
//	                 io/blobstore (object storage through gocloud.dev/blob)
//	jobs/            the job file: schema, defaults, validation, fingerprint
//	runner/          a job run: scheduling, checkpoint, progress, output; runner/shard
//	                 (splitting a job across machines: plan, ranges, parts),
//	                 runner/mirror (checkpoints in object storage)
//	examples/        runnable jobs with data and a small bundled model; Kubernetes,
//	                 Slurm and AWS Batch examples of a sharded job
//	internal/        small helpers shared across the tree (procstat: peak RSS, CPU time;
//	                 s3test: an S3-compatible server for tests)
package batchtrans
