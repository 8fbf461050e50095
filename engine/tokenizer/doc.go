// Package tokenizer owns the text-to-token side of the engine: it loads a
// Hugging Face tokenizer.json of the byte-level BPE family (Llama 3 and its
// relatives), splits text with the Llama 3 pre-tokenizer, encodes it to token
// ids equal to the Hugging Face tokenizers library, and decodes ids back to
// text, in one go or as a stream.
//
// Two encoding modes matter for safety. Markup mode (EncodeSpecial) turns
// added-token strings such as "<|eot_id|>" into their ids and is meant only
// for text the program builds itself (chat-template markup). Literal mode
// (Encode) keeps special-token strings as plain text and is used for all user
// data. EncodeMixed combines both for a rendered chat prompt: markup outside
// the given byte ranges, literal inside them.
//
// None of the Encode functions add the post-processor's tokens (BOS);
// WithSpecial adds them, as Hugging Face does for tokenizer(text).
//
// A Tokenizer is safe for concurrent use: its tables are immutable after
// loading, and its cache of merged pieces is internally synchronized.
// A Decoder is per-stream state and is not.
//
// The package imports nothing outside the standard library.
package tokenizer
