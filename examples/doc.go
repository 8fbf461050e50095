// Package examples holds batchtrans's runnable example jobs, their data and
// the small translator bundled for them; it has no code of its own beyond
// its tests, which check the bundle against the engine.
//
//	translate-de.yaml           the demo job (make demo): held-out Debian
//	                            package descriptions, English -> German
//	data/heldout-de.jsonl       its input and human reference (id, package, en, de)
//	models/tiny-translator/     a 6.6M-parameter Llama model trained from scratch
//	  base/                     English -> French/Italian base (bf16 safetensors,
//	                            byte-level BPE tokenizer, Llama 3.2 chat template)
//	  adapter-de/               PEFT LoRA adapter (r=16) for English -> German
//	  testdata/parity.json.gz   transformers + peft greedy outputs (float32)
//	train/                      the script that trained the model, and how to rerun it
//	cmd/chrf                    scores a job's output with chrF (sacreBLEU's definition)
//	kubernetes/                 a job split into 1,000 shards as an Indexed Job
//	                            (job file from a ConfigMap, checkpoints in object
//	                            storage or on a shared volume), then the merge Job
//	slurm/                      the same as a Slurm job array, with the merge
//	                            queued behind it (submit.sh)
//	aws-batch/                  the same as an AWS Batch array job definition
//
// The tests load the bundled model through the engine and require its greedy
// float32 output to equal the transformers + peft fixture token for token,
// and its German translations of the held-out rows to beat copying the
// English source by a clear chrF margin while ending at EOS. The sharding
// examples' tests check that their job file is valid and that the shard
// count their tasks ask for is the count the scheduler starts.
package examples
