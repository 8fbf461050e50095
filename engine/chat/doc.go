// Package chat renders a model's Jinja chat template (from
// tokenizer_config.json or a chat_template.jinja file beside it) the way
// Hugging Face transformers' apply_chat_template does, and reports where each
// message's content landed in the rendered text so that the caller can
// tokenize contents literally while the template's markup keeps its special
// tokens (see tokenizer.EncodeMixed).
//
// Rendering uses github.com/ardanlabs/jinja, a pure-Go engine written for
// chat templates. The date is always pinned by the caller: date_string and
// strftime_now both come from Options.Date, so a run that crosses midnight
// renders the same prompts.
//
// A Template is immutable and safe for concurrent use. The package imports
// nothing of the rest of the engine.
package chat
