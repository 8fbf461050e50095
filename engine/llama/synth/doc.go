// Package synth writes Llama-architecture checkpoints with random weights in
// the real Hugging Face formats: config.json (transformers 4.x or 5.x
// dialect), generation_config.json, model.safetensors or a sharded set with
// model.safetensors.index.json, and PEFT LoRA adapter folders. Tests use it
// to build models of any shape without downloads, and `batchtrans bench`
// uses it for full-size models. Files are streamed tensor by tensor, so a
// model of several gigabytes never sits in memory. It imports only the
// safetensors package of the engine.
package synth
