// Package llama owns the Llama-architecture model: its config, its weights
// (loaded from Hugging Face safetensors with a PEFT LoRA adapter merged in),
// and the forward pass over them. Weights are immutable after Load and shared
// by every goroutine; per-sequence state (KV cache, scratch) belongs to its
// caller.
//
// What lives where: config.go reads config.json and generation_config.json
// (both transformers dialects); load.go and lora.go read the base and the
// adapter and merge them, handing merged host tensors to a backend's sink
// (LoadHost) or packing them for the CPU kernels (Load); inspect.go checks
// a folder from file headers alone (validate, and run before it loads);
// forward.go is the CPU forward pass, state.go the KV cache and shared
// prefixes, cpu.go the CPU backend behind engine/backend's seam.
//
// Numerics: every product goes through engine/kernels, whose kernel sets
// give the same bits; element-wise steps are split by element or row so a
// row's bits never depend on its batch (docs/design.md).
//
// It imports engine/kernels, engine/safetensors, engine/sample and
// engine/backend, nothing of engine itself, runner, io or jobs.
package llama
