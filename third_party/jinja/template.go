package jinja

import (
	"context"
	"fmt"
)

// Template is a compiled Jinja template ready for rendering.
type Template struct {
	nodes []node
	src   string
}

// Compile parses a Jinja template source string and returns a compiled
// template that can be rendered multiple times with different data.
func Compile(source string) (*Template, error) {
	segs, err := scan(source)
	if err != nil {
		return nil, fmt.Errorf("jinja scan: %w", err)
	}

	nodes, err := parseTemplate(segs)
	if err != nil {
		return nil, fmt.Errorf("jinja parse: %w", err)
	}

	return &Template{nodes: nodes, src: source}, nil
}

// Render executes the template with the provided data and returns the
// rendered string. Each call creates an isolated scope so templates are
// safe to render concurrently after compilation.
func (t *Template) Render(data map[string]any) (string, error) {
	// Convert Go data to Value types.
	vals := make(map[string]Value, len(data))
	for k, v := range data {
		vals[k] = FromGoValue(v)
	}

	return render(t.nodes, vals, newLimiter(context.Background(), Limits{}))
}

// RenderValues is like Render but accepts pre-converted Value data.
func (t *Template) RenderValues(data map[string]Value) (string, error) {
	return render(t.nodes, data, newLimiter(context.Background(), Limits{}))
}

// RenderLimited is like RenderValues but within lim, and stops with the
// context's error once ctx is done. The context is checked at every loop
// pass, macro call and item visited, so a render ends promptly after its
// deadline. An error from a limit matches ErrLimit.
//
// Values passed in data, and what functions passed in data return, are
// used as they are: only what the template builds from them counts
// against lim.
func (t *Template) RenderLimited(ctx context.Context, data map[string]Value, lim Limits) (string, error) {
	return render(t.nodes, data, newLimiter(ctx, lim))
}

// =============================================================================

// render executes the AST with the given data and returns the result.
func render(nodes []node, data map[string]Value, l *limiter) (string, error) {
	e := evaluator{
		output: l.newOutput(),
		lim:    l,
	}

	// The builtins scope binds the built-in globals to this render's
	// limits as the template first uses each (see scope.get), so that a
	// render pays only for those it uses.
	e.builtins = newScope(nil)
	e.builtins.lim = l

	// Create user data scope on top of builtins.
	e.scope = newScope(e.builtins)
	for k, v := range data {
		e.scope.set(k, v)
	}

	if err := e.execNodes(nodes); err != nil {
		return "", err
	}
	// A limit hit where the library drops errors (slice bounds, say)
	// still fails the render.
	if l.err != nil {
		return "", l.err
	}

	return e.output.String(), nil
}
