package chat

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/ardanlabs/jinja"
)

// render runs the template once with the variables transformers passes:
// messages, bos_token, eos_token, add_generation_prompt, date_string and
// strftime_now. It also replaces the range built-in by a capped one.
//
// One known difference from transformers remains: the library's trim
// filter and strip method are Go's strings.TrimSpace, which keeps the ASCII
// separators U+001C..U+001F that Python's str.strip removes (the library
// resolves built-in filters before variables, so trim cannot be replaced).
//
// The library offers no step or memory hooks, so the render runs on its own
// goroutine: a panic becomes an error, a render that runs past
// renderTimeout is abandoned with an error, and an output over
// maxOutputBytes is refused. An abandoned render cannot be stopped from
// outside; it ends with an error at its next call of range, and range hands
// out at most maxRangeTotal items per render, so that nested loops cannot
// keep a CPU busy for hours after the caller gave up. Macro calls nest at
// most maxMacroDepth deep (see guardMacros). Memory is not bounded beyond
// that: string repetition ('x' * n) and string doubling in a loop run
// inside the library, which has no hook to stop them.
func (t *Template) render(msgs []Message, opt Options) (string, error) {
	rs := &rangeState{left: maxRangeTotal}
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
		"range":                 jinja.NewCallable("range", rs.rangeFunc),
		"__macro_guard":         jinja.NewCallable("__macro_guard", rs.guardMacro),
	}
	if opt.Date != "" {
		vars["date_string"] = jinja.NewString(opt.Date)
	}
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		defer func() {
			if p := recover(); p != nil {
				r = result{err: fmt.Errorf("template failed: %v", p)}
			}
			done <- r
		}()
		r.out, r.err = t.tmpl.RenderValues(vars)
	}()
	timer := time.NewTimer(renderTimeout)
	defer timer.Stop()
	select {
	case r := <-done:
		if r.err != nil {
			return "", fmt.Errorf("chat template %s: render: %w", t.origin, r.err)
		}
		if len(r.out) > maxOutputBytes {
			return "", fmt.Errorf("chat template %s: rendered prompt of %d bytes exceeds %d", t.origin, len(r.out), maxOutputBytes)
		}
		return r.out, nil
	case <-timer.C:
		rs.abandoned.Store(true)
		return "", fmt.Errorf("chat template %s: render took longer than %v", t.origin, renderTimeout)
	}
}

// rangeState is one render's budget for range and macro nesting.
type rangeState struct {
	left      int64       // items range may still hand out; only the render's goroutine touches it
	depth     int         // macro calls in progress; only the render's goroutine touches it
	abandoned atomic.Bool // the caller gave up waiting: fail at the next call
}

// guardMacro wraps a macro (see guardMacros) so that calls nest at most
// maxMacroDepth deep and stop once the render is abandoned.
func (rs *rangeState) guardMacro(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
	if len(args) != 1 || !args[0].IsCallable() {
		if len(args) == 1 {
			return args[0], nil
		}
		return jinja.Undefined(), nil
	}
	inner := args[0].AsCallable()
	return jinja.NewCallable(inner.Name, func(a []jinja.Value, kw map[string]jinja.Value) (jinja.Value, error) {
		if rs.abandoned.Load() {
			return jinja.Undefined(), fmt.Errorf("macro %s: render abandoned after the time limit", inner.Name)
		}
		if rs.depth >= maxMacroDepth {
			return jinja.Undefined(), fmt.Errorf("macro %s: calls nested more than %d deep", inner.Name, maxMacroDepth)
		}
		rs.depth++
		defer func() { rs.depth-- }()
		return inner.Fn(a, kw)
	}), nil
}

// rangeFunc is range for one render: cappedRange within the render's budget.
func (rs *rangeState) rangeFunc(args []jinja.Value, kw map[string]jinja.Value) (jinja.Value, error) {
	if rs.abandoned.Load() {
		return jinja.Undefined(), errors.New("range: render abandoned after the time limit")
	}
	v, err := cappedRange(args, kw)
	if err != nil {
		return v, err
	}
	rs.left -= int64(v.AsList().Len())
	if rs.left < 0 {
		return jinja.Undefined(), fmt.Errorf("range: more than %d items in one render exceeds the limit", maxRangeTotal)
	}
	return v, nil
}

// cappedRange is Jinja's range with at most maxRangeItems items.
func cappedRange(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
	var start, stop, step int64 = 0, 0, 1
	ints := make([]int64, len(args))
	for i, a := range args {
		if !a.IsInt() {
			return jinja.Undefined(), errors.New("range: arguments must be integers")
		}
		ints[i] = a.AsInt()
	}
	switch len(ints) {
	case 1:
		stop = ints[0]
	case 2:
		start, stop = ints[0], ints[1]
	case 3:
		start, stop, step = ints[0], ints[1], ints[2]
	default:
		return jinja.Undefined(), fmt.Errorf("range: expected 1 to 3 arguments, got %d", len(args))
	}
	if step == 0 {
		return jinja.Undefined(), errors.New("range: step must not be zero")
	}
	var n int64
	switch {
	case step > 0 && stop > start:
		n = (stop - start + step - 1) / step
	case step < 0 && stop < start:
		n = (start - stop - step - 1) / -step
	}
	if n > maxRangeItems || n < 0 {
		return jinja.Undefined(), fmt.Errorf("range: %d items exceeds the limit of %d", n, maxRangeItems)
	}
	items := make([]jinja.Value, 0, n)
	for i, v := int64(0), start; i < n; i, v = i+1, v+step {
		items = append(items, jinja.NewInt(v))
	}
	return jinja.NewList(items), nil
}
