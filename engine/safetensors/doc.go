// Package safetensors reads Hugging Face safetensors checkpoints: one file, or
// a sharded set named by model.safetensors.index.json. Every header is checked
// before any tensor is handed out (header length, JSON shape, dtypes, offsets
// inside the data area, byte counts equal to shape times dtype size, no
// overlapping tensors), so a truncated or corrupt file fails with an error
// that names the file and the tensor instead of a panic.
//
// Files are memory-mapped where the platform allows it, so a multi-gigabyte
// checkpoint is read in place rather than copied into the heap; elsewhere
// each tensor is read with ReadAt when it is asked for. Tensor bytes are
// read-only and valid until the File is closed. A File is safe for
// concurrent readers. It imports nothing of the rest of the engine.
package safetensors
