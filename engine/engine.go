// Package engine is the inference engine's front door: it loads a Hugging
// Face model folder (plus an optional PEFT LoRA adapter) once and generates
// text for many concurrent requests, batching the sequences in flight so that
// each weight read serves all of them. Prompts that share the chat-template
// prefix before the last message's content (a job's system prompt) share its
// KV too: the prefix is prefilled once and copied into each sequence, which
// gives bit-identical results. It imports nothing of runner, io or jobs. Subpackages own the parts: tokenizer, chat (templates), safetensors,
// llama (config, weights, LoRA, forward pass), sample, kernels, device.
package engine

// Message is one chat turn given to the model's chat template.
type Message struct {
	Role    string // "system", "user" or "assistant"
	Content string
}

// Request is one generation. Message contents are always tokenized
// literally: special-token strings in them stay text.
type Request struct {
	Messages []Message
	// NoTemplate sends the last message's content as the whole prompt
	// (after BOS) instead of rendering the chat template.
	NoTemplate bool
	// Date is the chat template's date_string, e.g. "25 Nov 2026".
	// The Llama 3 templates need it: without it rendering fails rather
	// than read the clock.
	Date string

	MaxNewTokens int     // must be positive
	Temperature  float32 // 0 = greedy
	TopK         int     // 0 = off
	TopP         float32 // 1 = off
	Seed         uint64  // the request's RNG seed (sampling only)
	Stop         []string
}

// Finish reasons.
const (
	FinishStop   = "stop"   // an EOS id or a stop string
	FinishLength = "length" // MaxNewTokens reached
)

// Result is a finished generation.
type Result struct {
	// Text is the output decoded without special tokens (as transformers'
	// skip_special_tokens=True), cut before the first stop string.
	Text string
	// PromptIDs are the prompt's token ids, BOS included.
	PromptIDs []int
	// OutputIDs are the generated ids, a final EOS id included (as
	// transformers' generate returns them).
	OutputIDs []int
	// FinishReason is FinishStop (EOS id or stop string) or FinishLength
	// (MaxNewTokens reached, or the context is full).
	FinishReason string
}
