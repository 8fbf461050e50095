// Package chat renders a model's Jinja chat template (from
// tokenizer_config.json or a chat_template.jinja file beside it) the way
// Hugging Face transformers' apply_chat_template does, and reports where each
// message's content landed in the rendered text so that the caller can
// tokenize contents literally while the template's markup keeps its special
// tokens (see tokenizer.EncodeMixed).
//
// Rendering uses github.com/ardanlabs/jinja, a pure-Go engine written for
// chat templates, from our patched copy in third_party/jinja (go.mod
// replaces the module; third_party/jinja/PATCHES.md lists the changes).
// Chat templates come from untrusted model folders: the patched library
// bounds every render in time, steps, output, string and list sizes and
// total bytes built, checking each limit before the value it guards is
// allocated (see render). The date is always pinned by the caller:
// date_string and strftime_now both come from Options.Date, so a run that
// crosses midnight renders the same prompts.
//
// A Template is immutable and safe for concurrent use. The package imports
// nothing of the rest of the engine.
package chat
