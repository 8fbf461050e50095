// Package jobs owns the job file (version 1): its typed schema, strict YAML
// decoding (unknown keys and bad types are reported with their line), the
// defaults (applied in one place, Defaults), validation that reports every
// problem at once, path resolution against the job file's folder, and the
// fingerprint of everything that shapes a job's translations.
//
// It imports nothing of engine, runner or io: it is plain configuration.
//
// Fingerprint. A Fingerprint is a flat map from a component name
// ("generation.temperature", "input.file", "model.weights", ...) to a value
// or digest, so a mismatch can say what changed. It covers what shapes a
// row's translation: the input's format, id and text fields and content
// (size + streamed SHA-256), the prompt (templates, languages, chat
// template mode, the effective date), the generation settings, the weight
// dtype, and the model and adapter folders. In those folders the small files
// that steer the model (*.json, *.jinja: config, tokenizer, generation and
// adapter config) are hashed by content; weight files (*.safetensors,
// *.bin, *.pt, *.gguf) are fingerprinted by name, size and modification time,
// because hashing gigabytes on every start would cost more than the change
// detection is worth. Output settings (path, format, field names, keep,
// on_error) and generation.accept_cut are not part of it: they only shape the final merge, which is
// redone from the checkpoint on every run, so changing them needs no restart.
package jobs
