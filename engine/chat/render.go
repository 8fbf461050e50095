package chat

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
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
// most maxMacroDepth deep (see guardMacros).
//
// Memory: the library builds strings and lists with no hook to stop it, so
// Parse refuses, before any render, the constructs known to grow a value
// without bound (see checkGrowth): string repetition other than a small
// literal one, unbounded indent widths, and, inside loops and macros,
// values fed back into themselves more than once or through a multiplying
// filter (set s = s ~ s, set l = l + l, format, replace, tojson, ...). The
// check is a conservative syntactic one, not a proof: it does not bound
// the output itself, which is only measured after the render (a loop of
// up to maxRangeItems passes each printing a large value or a large block
// of template text grows the library's output buffer until the loop ends),
// nor growth that it cannot see, such as a value grown linearly per pass
// and printed inside nested loops. Within a render, memory is thus bounded
// by the range budget times the size of what one pass can produce.
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

// Limits of checkGrowth: width arguments (indent, tojson indent) and
// string repetition of literals.
const (
	maxPadWidth    = 100
	maxRepeatBytes = 64 << 10
)

// astNode is a read-only copy of one node of the template library's parsed
// template: the library exposes no syntax tree, so checkGrowth reads its
// unexported fields by reflection. kind is the node's type name (binExpr,
// setNode, ...), str its string fields, kids its child nodes by field name.
type astNode struct {
	kind string
	str  map[string]string
	strs map[string][]string
	kids map[string][]*astNode
	lit  reflect.Kind // litExpr: the kind of its Go value
}

// readAST copies a reflected library node (pointer, interface or struct).
func readAST(v reflect.Value) *astNode {
	for v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	n := &astNode{kind: v.Type().Name(), str: map[string]string{}, strs: map[string][]string{}, kids: map[string][]*astNode{}}
	if n.kind == "Value" {
		if f := v.FieldByName("v"); f.IsValid() && f.Kind() == reflect.Interface && !f.IsNil() {
			n.lit = f.Elem().Kind()
			switch n.lit {
			case reflect.String:
				n.str["text"] = f.Elem().String()
			case reflect.Int64:
				n.str["int"] = strconv.FormatInt(f.Elem().Int(), 10)
			}
		}
		return n
	}
	for i := 0; i < v.NumField(); i++ {
		f, name := v.Field(i), v.Type().Field(i).Name
		switch f.Kind() {
		case reflect.String:
			n.str[name] = f.String()
		case reflect.Interface, reflect.Pointer, reflect.Struct:
			if k := readAST(f); k != nil {
				n.kids[name] = append(n.kids[name], k)
			}
		case reflect.Slice:
			for j := 0; j < f.Len(); j++ {
				if e := f.Index(j); e.Kind() == reflect.String {
					n.strs[name] = append(n.strs[name], e.String())
				} else if k := readAST(e); k != nil {
					n.kids[name] = append(n.kids[name], k)
				}
			}
		}
	}
	if n.kind == "litExpr" && len(n.kids["val"]) == 1 {
		n.lit = n.kids["val"][0].lit
		n.str = n.kids["val"][0].str
	}
	return n
}

// each calls fn on n and every node below it.
func (n *astNode) each(fn func(*astNode)) {
	if n == nil {
		return
	}
	fn(n)
	for _, ks := range n.kids {
		for _, k := range ks {
			k.each(fn)
		}
	}
}

// checkGrowth refuses templates with constructs that can build strings or
// lists of unbounded size inside the template library, where no limit of
// render can reach them (see render). It reads the parsed template, so it
// costs nothing at render time and never changes what a template renders.
// Refused are:
//   - the * operator unless both operands are numbers, or a string literal
//     and an integer literal whose repetition is at most maxRepeatBytes;
//   - indent and tojson(indent=...) widths other than an integer literal of
//     at most maxPadWidth;
//   - inside a loop or a macro, a set value or the arguments of a macro
//     call that refer to variables two or more times (set s = s ~ s,
//     set l = l + l, set a = b ~ b, f(s ~ s)), pass a variable to a macro,
//     apply a filter or method that can multiply a variable's size (format,
//     tojson, escape, indent, string, center), or replace with a
//     replacement that is not a literal no longer than what it replaces:
//     each can double a value per pass;
//   - append or insert of a list into itself (a cycle that printing follows
//     without end).
//
// Variables are set targets (a namespace counts as one), macro parameters,
// caller arguments, and loop variables of loops over a variable.
func checkGrowth(tmpl *jinja.Template) error {
	if tmpl == nil || !reflect.ValueOf(tmpl).Elem().FieldByName("nodes").IsValid() {
		return errors.New("cannot inspect the parsed template")
	}
	root := readAST(reflect.ValueOf(tmpl))
	vars := map[string]bool{}
	macros := map[string]bool{}
	root.each(func(n *astNode) {
		switch n.kind {
		case "setNode":
			if isMacroGuard(n) {
				return
			}
			if ns := n.str["namespace"]; ns != "" {
				vars[ns] = true
			} else {
				vars[n.str["target"]] = true
			}
		case "setBlockNode":
			vars[n.str["target"]] = true
		case "macroNode":
			macros[n.str["name"]] = true
		case "macroParam":
			vars[n.str["name"]] = true
		case "callNode":
			for _, a := range n.strs["callerArgs"] {
				vars[a] = true
			}
		}
	})
	// Loop variables of loops over a variable, to a fixed point: byName
	// lists, for each name, the variables of the loops whose iterable uses it.
	byName := map[string][]string{}
	root.each(func(n *astNode) {
		if n.kind != "forNode" {
			return
		}
		for _, it := range n.kids["iter"] {
			it.each(func(m *astNode) {
				if m.kind == "nameExpr" {
					for _, f := range []string{"keyVar", "valVar"} {
						if v := n.str[f]; v != "" {
							byName[m.str["name"]] = append(byName[m.str["name"]], v)
						}
					}
				}
			})
		}
	})
	work := make([]string, 0, len(vars))
	for v := range vars {
		work = append(work, v)
	}
	for len(work) > 0 {
		name := work[len(work)-1]
		work = work[:len(work)-1]
		for _, v := range byName[name] {
			if !vars[v] {
				vars[v] = true
				work = append(work, v)
			}
		}
	}
	var err error
	var walk func(nodes []*astNode, repeated bool)
	walk = func(nodes []*astNode, repeated bool) {
		for _, n := range nodes {
			if err != nil {
				return
			}
			switch n.kind {
			case "forNode", "macroNode", "callNode":
				for f, ks := range n.kids {
					walk(ks, repeated || f == "body")
				}
				continue
			case "setNode", "setBlockNode":
				if repeated {
					err = checkSet(n, vars, macros)
				}
			case "callExpr":
				// A macro's arguments persist into its recursive calls.
				if fn := n.kids["fn"]; repeated && len(fn) == 1 && fn[0].kind == "nameExpr" && (macros[fn[0].str["name"]] || fn[0].str["name"] == "caller") {
					args := append([]*astNode(nil), n.kids["args"]...)
					for _, k := range n.kids["kwargs"] {
						args = append(args, k.kids["value"]...)
					}
					err = checkFlow("arguments of "+fn[0].str["name"], args, vars, macros)
				}
			}
			if err == nil {
				err = checkExprs(n)
			}
			for _, ks := range n.kids {
				walk(ks, repeated)
			}
		}
	}
	walk(root.kids["nodes"], false)
	return err
}

// refs counts the references to vars in nodes and below.
func refs(nodes []*astNode, vars map[string]bool) int {
	c := 0
	for _, n := range nodes {
		n.each(func(m *astNode) {
			if m.kind == "nameExpr" && vars[m.str["name"]] {
				c++
			}
		})
	}
	return c
}

// checkSet checks one set inside a loop or macro (see checkGrowth).
func checkSet(n *astNode, vars, macros map[string]bool) error {
	var value []*astNode
	for _, ks := range n.kids {
		value = append(value, ks...)
	}
	target := n.str["target"]
	if ns := n.str["namespace"]; ns != "" {
		target = ns + "." + target
	}
	return checkFlow("set "+target, value, vars, macros)
}

// checkFlow checks an expression whose value persists from one pass of a
// loop or macro call to the next: a set's value or a macro's arguments.
func checkFlow(target string, value []*astNode, vars, macros map[string]bool) error {
	nrefs := refs(value, vars)
	if nrefs >= 2 {
		return fmt.Errorf("%s inside a loop or macro uses variables more than once, which can double its size on every pass", target)
	}
	var err error
	for _, v := range value {
		v.each(func(m *astNode) {
			if err != nil {
				return
			}
			if m.kind == "callExpr" && len(m.kids["fn"]) == 1 {
				fn := m.kids["fn"][0]
				if fn.kind == "nameExpr" && (macros[fn.str["name"]] || fn.str["name"] == "caller") && nrefs > 0 {
					err = fmt.Errorf("%s inside a loop or macro passes a variable to macro %s, which can grow it on every pass", target, fn.str["name"])
				}
			}
			name, args := callName(m)
			switch {
			case name == "replace" && !shrinkingReplace(args):
				err = fmt.Errorf("%s inside a loop or macro uses replace with a replacement that is not a literal no longer than the text replaced, which can grow it on every pass", target)
			case amplifying[name] && nrefs > 0:
				err = fmt.Errorf("%s inside a loop or macro applies %s to a variable, which can grow it on every pass", target, name)
			}
		})
	}
	return err
}

// callName returns the filter or method name of a filter or method call
// node and its positional arguments ("" if n is neither).
func callName(n *astNode) (string, []*astNode) {
	switch n.kind {
	case "filterExpr":
		return n.str["name"], n.kids["args"]
	case "callExpr":
		if fn := n.kids["fn"]; len(fn) == 1 && fn[0].kind == "attrExpr" {
			return fn[0].str["attr"], n.kids["args"]
		}
	}
	return "", nil
}

// shrinkingReplace reports whether replace(old, new) has two string
// literals with new no longer than old.
func shrinkingReplace(args []*astNode) bool {
	if len(args) < 2 || args[0].kind != "litExpr" || args[1].kind != "litExpr" {
		return false
	}
	return args[0].lit == reflect.String && args[1].lit == reflect.String && len(args[1].str["text"]) <= len(args[0].str["text"])
}

// amplifying lists filters and methods whose result can be a multiple of
// their input's size.
var amplifying = map[string]bool{"format": true, "tojson": true, "escape": true, "e": true, "indent": true, "string": true, "center": true}

// checkExprs checks one node's own operator or call (see checkGrowth).
func checkExprs(n *astNode) error {
	switch n.kind {
	case "binExpr":
		if n.str["op"] == "*" && !(numeric(n.kids["left"]) && numeric(n.kids["right"])) && !smallRepeat(n) {
			return fmt.Errorf("the * operator is only allowed between numbers or between a string literal and an integer literal giving at most %d bytes: other string repetition can build strings of unbounded size", maxRepeatBytes)
		}
	case "filterExpr":
		switch n.str["name"] {
		case "indent":
			if a := n.kids["args"]; len(a) > 0 && !smallInt(a[0]) {
				return fmt.Errorf("indent width must be an integer literal of at most %d", maxPadWidth)
			}
			if !smallKwarg(n, "width") {
				return fmt.Errorf("indent width must be an integer literal of at most %d", maxPadWidth)
			}
		case "tojson":
			if !smallKwarg(n, "indent") {
				return fmt.Errorf("tojson indent must be an integer literal of at most %d", maxPadWidth)
			}
		}
	case "callExpr":
		if name, args := callName(n); name == "append" || name == "insert" || name == "extend" {
			obj := n.kids["fn"][0].kids["obj"]
			if len(obj) == 1 && obj[0].kind == "nameExpr" && refs(args, map[string]bool{obj[0].str["name"]: true}) > 0 {
				return fmt.Errorf("%s of list %s into itself is refused", name, obj[0].str["name"])
			}
		}
	}
	return nil
}

// numeric reports whether an expression is sure to be a number.
func numeric(ns []*astNode) bool {
	if len(ns) != 1 {
		return false
	}
	n := ns[0]
	switch n.kind {
	case "litExpr":
		return n.lit == reflect.Int64 || n.lit == reflect.Float64
	case "unaryExpr":
		return (n.str["op"] == "-" || n.str["op"] == "+") && numeric(n.kids["operand"])
	case "binExpr":
		switch n.str["op"] {
		case "+", "-", "*", "/", "//", "%", "**":
			return numeric(n.kids["left"]) && numeric(n.kids["right"])
		}
	case "filterExpr":
		switch n.str["name"] {
		case "length", "count", "int", "float", "abs", "round", "wordcount":
			return true
		}
	case "attrExpr":
		obj := n.kids["obj"]
		if len(obj) == 1 && obj[0].kind == "nameExpr" && obj[0].str["name"] == "loop" {
			switch n.str["attr"] {
			case "index", "index0", "revindex", "revindex0", "length", "depth", "depth0":
				return true
			}
		}
	}
	return false
}

// smallInt reports whether n is an integer literal in [0, maxPadWidth].
func smallInt(n *astNode) bool {
	v, err := strconv.Atoi(n.str["int"])
	return n.kind == "litExpr" && n.lit == reflect.Int64 && err == nil && v >= 0 && v <= maxPadWidth
}

// smallKwarg reports whether the keyword argument name of n is absent or a
// smallInt.
func smallKwarg(n *astNode, name string) bool {
	for _, k := range n.kids["kwargs"] {
		if k.str["name"] == name && (len(k.kids["value"]) != 1 || !smallInt(k.kids["value"][0])) {
			return false
		}
	}
	return true
}

// smallRepeat reports whether a * node repeats a string literal by an
// integer literal (either order) to at most maxRepeatBytes.
func smallRepeat(n *astNode) bool {
	l, r := n.kids["left"], n.kids["right"]
	if len(l) != 1 || len(r) != 1 {
		return false
	}
	str, num := l[0], r[0]
	if str.lit != reflect.String {
		str, num = num, str
	}
	if num.kind == "unaryExpr" && num.str["op"] == "-" && len(num.kids["operand"]) == 1 {
		num = num.kids["operand"][0] // a negative count panics in the library, which render recovers
	}
	if str.kind != "litExpr" || str.lit != reflect.String || num.kind != "litExpr" || num.lit != reflect.Int64 {
		return false
	}
	k, err := strconv.ParseInt(num.str["int"], 10, 64)
	if err != nil {
		return false
	}
	if k < 0 {
		k = -k
	}
	return k <= maxRepeatBytes && int64(len(str.str["text"]))*k <= maxRepeatBytes
}

// isMacroGuard reports whether a set node is one that guardMacros inserted.
func isMacroGuard(n *astNode) bool {
	v := n.kids["value"]
	if len(v) != 1 || v[0].kind != "callExpr" || len(v[0].kids["fn"]) != 1 {
		return false
	}
	fn := v[0].kids["fn"][0]
	return fn.kind == "nameExpr" && fn.str["name"] == "__macro_guard"
}
