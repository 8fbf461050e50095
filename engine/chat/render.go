package chat

import (
	"context"
	"errors"
	"fmt"

	"github.com/ardanlabs/jinja"
)

// renderLimits bound every render inside the template library (our copy in
// third_party/jinja, see its PATCHES.md): each is checked before the
// string, list or output write it guards is built, so a template that runs
// into one fails having allocated about that limit, not after.
var renderLimits = jinja.Limits{
	MaxOutputBytes: maxOutputBytes,
	MaxStringBytes: maxOutputBytes,
	MaxListItems:   maxListItems,
	MaxAllocBytes:  maxRenderBytes,
	MaxSteps:       maxRenderSteps,
	MaxMacroDepth:  maxMacroDepth,
}

// render runs the template once with the variables transformers passes:
// messages, bos_token, eos_token, add_generation_prompt, date_string and
// strftime_now.
//
// One known difference from transformers remains: the library's trim
// filter and strip method are Go's strings.TrimSpace, which keeps the ASCII
// separators U+001C..U+001F that Python's str.strip removes (the library
// resolves built-in filters before variables, so trim cannot be replaced).
//
// Time: the render stops with an error after renderTimeout, checked by the
// library at every loop pass, macro call and item visited, and after
// maxRenderSteps of these, whichever comes first.
//
// Memory: the rendered prompt and any one string are at most
// maxOutputBytes, any one list or dict at most maxListItems items, and
// everything the render builds (strings, lists, dicts, the scopes of loops
// and calls, output), kept or not, at most maxRenderBytes; values nest at
// most 1000 deep and macro calls maxMacroDepth deep, so that no recursion
// can overflow the stack. Template constructs need no vetting beforehand:
// whatever a template does, it stops at one of these limits.
func (t *Template) render(msgs []Message, opt Options) (out string, err error) {
	list := make([]any, len(msgs))
	for i, m := range msgs {
		list[i] = map[string]any{"role": m.Role, "content": m.Content}
	}
	vars := map[string]jinja.Value{
		"messages":              jinja.FromGoValue(list),
		"bos_token":             jinja.NewString(t.bos),
		"eos_token":             jinja.NewString(t.eos),
		"add_generation_prompt": jinja.NewBool(opt.AddGenerationPrompt),
		"strftime_now":          jinja.NewCallable("strftime_now", strftimeNow(opt.Date)),
	}
	if opt.Date != "" {
		vars["date_string"] = jinja.NewString(opt.Date)
	}
	ctx, cancel := context.WithTimeout(context.Background(), renderTimeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			out, err = "", fmt.Errorf("chat template %s: template failed: %v", t.origin, p)
		}
	}()
	out, err = t.tmpl.RenderLimited(ctx, vars, renderLimits)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "", fmt.Errorf("chat template %s: render took longer than %v", t.origin, renderTimeout)
	case err != nil:
		return "", fmt.Errorf("chat template %s: render: %w", t.origin, err)
	}
	return out, nil
}
