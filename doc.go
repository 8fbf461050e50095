// Package batchtrans is the root of the batchtrans module: a command-line tool
// that runs batch translation jobs with a fine-tuned Llama model on the CPU.
//
// Layout:
//
//	cmd/batchtrans   the binary: flags, wiring, exit codes (one file per command)
//	engine/          inference: tokenizer, chat template, weights, LoRA, forward pass,
//	                 sampling, kernels, device choice; imports nothing of runner, io or jobs
//	io/              dataset format packages (JSONL, CSV, Parquet) behind io/dataset
//	jobs/            the job file: schema, defaults, validation, fingerprint
//	runner/          a job run: scheduling, checkpoint, progress, output
//	examples/        runnable jobs with data and a small bundled model
//	internal/        small helpers shared across the tree (procstat: peak RSS, CPU time)
package batchtrans
