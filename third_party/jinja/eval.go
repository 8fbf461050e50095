package jinja

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

var (
	errBreak    = errors.New("break")
	errContinue = errors.New("continue")
)

// =============================================================================
// Scope
// =============================================================================

type scope struct {
	vars   map[string]Value
	parent *scope
	lim    *limiter // at the root of a render's scopes: binds built-in globals
}

func newScope(parent *scope) *scope {
	return &scope{vars: make(map[string]Value, 4), parent: parent}
}

func (s *scope) get(name string) (Value, bool) {
	if v, ok := s.vars[name]; ok {
		return v, true
	}
	if s.parent != nil {
		return s.parent.get(name)
	}
	if s.lim != nil {
		// A built-in global, bound to the render's limits on first use.
		if v, ok := s.lim.global(name); ok {
			s.vars[name] = v
			return v, true
		}
	}
	return Undefined(), false
}

func (s *scope) set(name string, val Value) {
	s.vars[name] = val
}

// =============================================================================
// Evaluator
// =============================================================================

type evaluator struct {
	scope    *scope
	builtins *scope
	output   *builder
	lim      *limiter // the render's limits, shared by nested evaluators
}

// sub returns an evaluator over sc whose output becomes a string value
// (a macro's, a caller's, a set or filter block's), bounded as one.
func (e *evaluator) sub(sc *scope) *evaluator {
	return &evaluator{scope: sc, builtins: e.builtins, output: e.lim.newString(), lim: e.lim}
}

func (e *evaluator) execNodes(nodes []node) error {
	for _, n := range nodes {
		if err := e.execNode(n); err != nil {
			return err
		}
	}
	return nil
}

// execNode runs n. Blocks, expressions and macro calls nest within each
// other, each by recursion here or in evalExpr: their total depth is
// bounded so that no template can overflow the stack.
func (e *evaluator) execNode(n node) error {
	if e.lim.frames >= maxFrames {
		return e.lim.failf("blocks and expressions nested more than %d deep", maxFrames)
	}
	e.lim.frames++
	err := e.execNodeKind(n)
	e.lim.frames--
	return err
}

func (e *evaluator) execNodeKind(n node) error {
	switch nd := n.(type) {
	case *textNode:
		return e.output.WriteString(nd.text)

	case *outputNode:
		val, err := e.evalExpr(nd.expression)
		if err != nil {
			return err
		}
		return e.print(val)

	case *ifNode:
		return e.execIf(nd)

	case *forNode:
		return e.execFor(nd)

	case *setNode:
		return e.execSet(nd)

	case *setBlockNode:
		return e.execSetBlock(nd)

	case *macroNode:
		return e.execMacro(nd)

	case *callNode:
		return e.execCall(nd)

	case *filterBlockNode:
		return e.execFilterBlock(nd)

	case *breakNode:
		return errBreak

	case *continueNode:
		return errContinue

	default:
		return fmt.Errorf("unknown node type %T", n)
	}
}

func (e *evaluator) execIf(n *ifNode) error {
	for _, branch := range n.branches {
		if branch.condition == nil {
			// else branch
			return e.execNodes(branch.body)
		}
		cond, err := e.evalExpr(branch.condition)
		if err != nil {
			return err
		}
		if cond.IsTruthy() {
			return e.execNodes(branch.body)
		}
	}
	return nil
}

func (e *evaluator) execFor(n *forNode) error {
	iterVal, err := e.evalExpr(n.iter)
	if err != nil {
		return err
	}

	var items []Value
	switch {
	case iterVal.IsList():
		items = iterVal.AsList().Items
	case iterVal.IsDict():
		d := iterVal.AsDict()
		if err := e.lim.list(d.Len()); err != nil {
			return err
		}
		items = make([]Value, 0, d.Len())
		for _, key := range d.Keys {
			items = append(items, NewString(key))
		}
	case iterVal.IsString():
		s := iterVal.AsString()
		if err := e.lim.list(utf8.RuneCountInString(s)); err != nil {
			return err
		}
		for _, r := range s {
			items = append(items, NewString(string(r)))
		}
	default:
		// Empty iteration.
	}

	// Apply filter if present. An expression cannot set variables, so
	// one scope serves every item.
	if n.filterExpr != nil {
		if err := e.lim.charge(scopeBytes); err != nil {
			return err
		}
		var filtered []Value
		child := newScope(e.scope)
		for _, item := range items {
			if err := e.lim.step(); err != nil {
				return err
			}
			child.set(n.valVar, item)
			old := e.scope
			e.scope = child
			fv, err := e.evalExpr(n.filterExpr)
			e.scope = old
			if err != nil {
				return err
			}
			if fv.IsTruthy() {
				filtered = append(filtered, item)
			}
		}
		items = filtered
	}

	if len(items) == 0 {
		if n.elseBody != nil {
			return e.execNodes(n.elseBody)
		}
		return nil
	}

	total := int64(len(items))

	// Pre-allocate the loop dict, child scope and cycle function once,
	// then reuse them across iterations to avoid per-iteration
	// allocations.
	if err := e.lim.charge(dictBytes + scopeBytes + callableBytes); err != nil {
		return err
	}
	loop := NewDict()
	ld := loop.AsDict()
	ld.Set("length", NewInt(total))

	child := newScope(e.scope)
	child.set("loop", loop)

	// cycle uses the loop's current index when called, as Jinja2's
	// loop.cycle does.
	var cycleIdx int64
	ld.Data["cycle"] = NewCallable("loop.cycle", func(args []Value, kwargs map[string]Value) (Value, error) {
		if len(args) == 0 {
			return Undefined(), nil
		}
		return args[int(cycleIdx)%len(args)], nil
	})

	for i, item := range items {
		if err := e.lim.step(); err != nil {
			return err
		}

		// Set loop variable(s).
		if n.keyVar != "" {
			// Destructuring: for key, val in items
			if item.IsList() && item.AsList().Len() >= 2 {
				child.set(n.keyVar, item.AsList().Get(0))
				child.set(n.valVar, item.AsList().Get(1))
			} else {
				child.set(n.keyVar, NewInt(int64(i)))
				child.set(n.valVar, item)
			}
		} else {
			child.set(n.valVar, item)
		}

		// Update loop object for this iteration.
		idx := int64(i)
		ld.Data["index"] = NewInt(idx + 1)
		ld.Data["index0"] = NewInt(idx)
		ld.Data["revindex"] = NewInt(total - idx)
		ld.Data["revindex0"] = NewInt(total - idx - 1)
		ld.Data["first"] = NewBool(i == 0)
		ld.Data["last"] = NewBool(i == len(items)-1)

		if i > 0 {
			ld.Data["previtem"] = items[i-1]
		} else {
			ld.Data["previtem"] = Undefined()
		}
		if i < len(items)-1 {
			ld.Data["nextitem"] = items[i+1]
		} else {
			ld.Data["nextitem"] = Undefined()
		}

		cycleIdx = idx

		old := e.scope
		e.scope = child

		err := e.execNodes(n.body)
		e.scope = old

		if err != nil {
			if errors.Is(err, errBreak) {
				break
			}
			if errors.Is(err, errContinue) {
				continue
			}
			return err
		}
	}

	return nil
}

func (e *evaluator) execSet(n *setNode) error {
	val, err := e.evalExpr(n.value)
	if err != nil {
		return err
	}

	if n.namespace != "" {
		nsVal, ok := e.scope.get(n.namespace)
		if !ok || !nsVal.IsDict() {
			return fmt.Errorf("set: namespace %q not found or not a dict", n.namespace)
		}
		d := nsVal.AsDict()
		if !d.Has(n.target) {
			if err := e.lim.items(d.Len() + 1); err != nil {
				return err
			}
			if err := e.lim.charge(dictItemBytes + int64(len(n.target))); err != nil {
				return err
			}
		}
		d.Set(n.target, val)
		return nil
	}

	e.scope.set(n.target, val)
	return nil
}

func (e *evaluator) execSetBlock(n *setBlockNode) error {
	bodyEval := e.sub(e.scope)
	if err := bodyEval.execNodes(n.body); err != nil {
		return err
	}
	e.scope.set(n.target, NewString(bodyEval.output.String()))
	return nil
}

func (e *evaluator) execMacro(n *macroNode) error {
	// Capture the macro body and params.
	params := n.params
	body := n.body
	parentScope := e.scope

	if err := e.lim.charge(callableBytes); err != nil {
		return err
	}
	fn := NewCallable(n.name, func(args []Value, kwargs map[string]Value) (Value, error) {
		if err := e.lim.enter(n.name); err != nil {
			return Undefined(), err
		}
		defer e.lim.leave()
		if err := e.lim.charge(scopeBytes); err != nil {
			return Undefined(), err
		}
		child := newScope(parentScope)

		// Bind positional args.
		for i, param := range params {
			if i < len(args) {
				child.set(param.name, args[i])
			} else if v, ok := kwargs[param.name]; ok {
				child.set(param.name, v)
			} else if param.defaultVal != nil {
				defEval := evaluator{scope: child, builtins: e.builtins, lim: e.lim}
				defVal, err := defEval.evalExpr(param.defaultVal)
				if err != nil {
					return Undefined(), err
				}
				child.set(param.name, defVal)
			} else {
				child.set(param.name, Undefined())
			}
		}

		// Set caller if available.
		if caller, ok := kwargs["caller"]; ok {
			child.set("caller", caller)
		}

		macroEval := e.sub(child)
		if err := macroEval.execNodes(body); err != nil {
			return Undefined(), err
		}

		return NewString(macroEval.output.String()), nil
	})

	e.scope.set(n.name, fn)
	return nil
}

func (e *evaluator) execCall(n *callNode) error {
	// Create a caller callable that renders the body.
	callerArgs := n.callerArgs
	body := n.body
	parentScope := e.scope

	if err := e.lim.charge(callableBytes); err != nil {
		return err
	}
	caller := NewCallable("caller", func(args []Value, kwargs map[string]Value) (Value, error) {
		if err := e.lim.enter("caller"); err != nil {
			return Undefined(), err
		}
		defer e.lim.leave()
		if err := e.lim.charge(scopeBytes); err != nil {
			return Undefined(), err
		}
		child := newScope(parentScope)
		for i, argName := range callerArgs {
			if i < len(args) {
				child.set(argName, args[i])
			}
		}

		callerEval := e.sub(child)
		if err := callerEval.execNodes(body); err != nil {
			return Undefined(), err
		}
		return NewString(callerEval.output.String()), nil
	})

	// Evaluate the call expression with caller in kwargs.
	callEx, ok := n.expr.(*callExpr)
	if ok {
		fn, err := e.evalExpr(callEx.fn)
		if err != nil {
			return err
		}
		if !fn.IsCallable() {
			return fmt.Errorf("call: expression is not callable")
		}

		var args []Value
		for _, a := range callEx.args {
			av, err := e.evalExpr(a)
			if err != nil {
				return err
			}
			args = append(args, av)
		}

		kwargs := map[string]Value{"caller": caller}
		for _, kw := range callEx.kwargs {
			v, err := e.evalExpr(kw.value)
			if err != nil {
				return err
			}
			kwargs[kw.name] = v
		}

		result, err := fn.AsCallable().Fn(args, kwargs)
		if err != nil {
			return err
		}
		return e.print(result)
	}

	// Fallback: evaluate expression and call with caller.
	fn, err := e.evalExpr(n.expr)
	if err != nil {
		return err
	}
	if !fn.IsCallable() {
		return fmt.Errorf("call: expression is not callable")
	}

	result, err := fn.AsCallable().Fn(nil, map[string]Value{"caller": caller})
	if err != nil {
		return err
	}
	return e.print(result)
}

func (e *evaluator) execFilterBlock(n *filterBlockNode) error {
	// Render body to string.
	bodyEval := e.sub(e.scope)
	if err := bodyEval.execNodes(n.body); err != nil {
		return err
	}
	bodyStr := bodyEval.output.String()

	// Apply the filter. The filter expression should be a name or filter chain.
	if fe, ok := n.filter.(*nameExpr); ok {
		filter, ok := lookupFilter(fe.name)
		if !ok {
			return fmt.Errorf("unknown filter %q", fe.name)
		}
		result, err := filter(e.lim, []Value{NewString(bodyStr)}, nil)
		if err != nil {
			return err
		}
		return e.print(result)
	}

	// For more complex filter expressions, just output the body.
	return e.output.WriteString(bodyStr)
}

// =============================================================================
// Expression evaluation
// =============================================================================

// evalExpr evaluates ex. The parser bounds how deep expressions nest, but
// a chain of binary operators or filters (a ~ b ~ c ...) is as deep here
// as it is long, and macro calls nest blocks and expressions within each
// other: the total depth is bounded (see execNode).
func (e *evaluator) evalExpr(ex expr) (Value, error) {
	if e.lim.frames >= maxFrames {
		return Undefined(), e.lim.failf("blocks and expressions nested more than %d deep", maxFrames)
	}
	e.lim.frames++
	v, err := e.evalExprNode(ex)
	e.lim.frames--
	return v, err
}

func (e *evaluator) evalExprNode(ex expr) (Value, error) {
	switch n := ex.(type) {
	case *litExpr:
		return n.val, nil

	case *nameExpr:
		v, _ := e.scope.get(n.name)
		return v, nil

	case *attrExpr:
		return e.evalAttr(n)

	case *itemExpr:
		return e.evalItem(n)

	case *sliceExpr:
		return e.evalSlice(n)

	case *unaryExpr:
		return e.evalUnary(n)

	case *binExpr:
		return e.evalBinary(n)

	case *condExpr:
		return e.evalCond(n)

	case *callExpr:
		return e.evalCallExpr(n)

	case *filterExpr:
		return e.evalFilter(n)

	case *testExpr:
		return e.evalTestExpr(n)

	case *listExpr:
		if err := e.lim.list(len(n.items)); err != nil {
			return Undefined(), err
		}
		items := make([]Value, len(n.items))
		for i, item := range n.items {
			v, err := e.evalExpr(item)
			if err != nil {
				return Undefined(), err
			}
			items[i] = v
		}
		return NewList(items), nil

	case *dictExpr:
		if err := e.lim.dict(len(n.pairs)); err != nil {
			return Undefined(), err
		}
		d := NewDict()
		dict := d.AsDict()
		for _, pair := range n.pairs {
			key, err := e.evalExpr(pair.key)
			if err != nil {
				return Undefined(), err
			}
			val, err := e.evalExpr(pair.value)
			if err != nil {
				return Undefined(), err
			}
			k, err := e.lim.text(key)
			if err != nil {
				return Undefined(), err
			}
			dict.Set(k, val)
		}
		return d, nil

	default:
		return Undefined(), fmt.Errorf("unknown expression type %T", ex)
	}
}

func (e *evaluator) evalAttr(n *attrExpr) (Value, error) {
	obj, err := e.evalExpr(n.obj)
	if err != nil {
		return Undefined(), err
	}

	var method Value
	switch {
	// Dict attribute access.
	case obj.IsDict():
		if v, ok := obj.AsDict().Get(n.attr); ok {
			return v, nil
		}

		// Dict methods.
		method, err = e.dictMethod(obj, n.attr)

	// String methods.
	case obj.IsString():
		method, err = e.stringMethod(obj, n.attr)

	// List methods.
	case obj.IsList():
		method, err = e.listMethod(obj, n.attr)

	default:
		return Undefined(), nil
	}

	// A bound method is a closure the template may keep.
	if err == nil && method.IsCallable() {
		err = e.lim.charge(callableBytes)
	}
	return method, err
}

func (e *evaluator) evalItem(n *itemExpr) (Value, error) {
	obj, err := e.evalExpr(n.obj)
	if err != nil {
		return Undefined(), err
	}

	key, err := e.evalExpr(n.key)
	if err != nil {
		return Undefined(), err
	}

	if obj.IsList() {
		idx := int(toInt64(key))
		list := obj.AsList()
		if idx < 0 {
			idx += list.Len()
		}
		if idx < 0 || idx >= list.Len() {
			return Undefined(), nil
		}
		return list.Get(idx), nil
	}

	if obj.IsDict() {
		k, err := e.lim.text(key)
		if err != nil {
			return Undefined(), err
		}
		if v, ok := obj.AsDict().Get(k); ok {
			return v, nil
		}
		return Undefined(), nil
	}

	if obj.IsString() {
		// Walk the string instead of converting it to runes: indexing
		// a long string in a loop would allocate four times its size
		// on every pass.
		idx := int(toInt64(key))
		s := obj.AsString()
		if idx < 0 {
			idx += utf8.RuneCountInString(s)
		}
		if idx < 0 {
			return Undefined(), nil
		}
		for _, r := range s {
			if idx == 0 {
				return NewString(string(r)), nil
			}
			idx--
		}
		return Undefined(), nil
	}

	return Undefined(), nil
}

func (e *evaluator) evalSlice(n *sliceExpr) (Value, error) {
	obj, err := e.evalExpr(n.obj)
	if err != nil {
		return Undefined(), err
	}

	if obj.IsList() {
		list := obj.AsList()
		length := list.Len()
		start, stop, step := resolveSlice(n, e, length)

		// Fast path for the overwhelmingly common step==1 case
		// (e.g. messages[1:] in chat templates). A single allocation
		// of the exact size avoids the geometric growth of append.
		// Aliasing the source slice would be unsafe because List.Append
		// could later mutate beyond Len() into the backing array.
		if step == 1 {
			if start < 0 {
				start = 0
			}
			if stop > length {
				stop = length
			}
			if start >= stop {
				return NewList(nil), nil
			}
			if err := e.lim.list(stop - start); err != nil {
				return Undefined(), err
			}
			items := make([]Value, stop-start)
			copy(items, list.Items[start:stop])
			return NewList(items), nil
		}

		var items []Value
		if step > 0 {
			// Pre-size to the maximum possible iteration count to
			// avoid append's geometric growth allocations.
			count := (stop - start + step - 1) / step
			if count > 0 {
				if err := e.lim.list(count); err != nil {
					return Undefined(), err
				}
				items = make([]Value, 0, count)
			}
			for i := start; i < stop; i += step {
				if i >= 0 && i < length {
					items = append(items, list.Items[i])
				}
			}
		} else if step < 0 {
			count := (start - stop - step - 1) / -step
			if count > 0 {
				if err := e.lim.list(count); err != nil {
					return Undefined(), err
				}
				items = make([]Value, 0, count)
			}
			for i := start; i > stop; i += step {
				if i >= 0 && i < length {
					items = append(items, list.Items[i])
				}
			}
		}
		return NewList(items), nil
	}

	if obj.IsString() {
		s := obj.AsString()

		// ASCII fast path. Most chat-template string slicing operates
		// on tag/role names or message content that is ASCII; for those
		// we can index by byte and skip the []rune conversion entirely.
		// This is the dominant cost in the kronk dense profile because
		// the system prompt can be tens of thousands of bytes.
		if isASCII(s) {
			length := len(s)
			start, stop, step := resolveSlice(n, e, length)

			if step == 1 {
				if start < 0 {
					start = 0
				}
				if stop > length {
					stop = length
				}
				if start >= stop {
					return NewString(""), nil
				}
				return NewString(s[start:stop]), nil
			}

			if step == -1 {
				if start >= length {
					start = length - 1
				}
				if stop < -1 {
					stop = -1
				}
				if start <= stop {
					return NewString(""), nil
				}
				if err := e.lim.str(start - stop); err != nil {
					return Undefined(), err
				}
				buf := make([]byte, 0, start-stop)
				for i := start; i > stop; i-- {
					buf = append(buf, s[i])
				}
				return NewString(string(buf)), nil
			}
			// Fall through to the general path for unusual steps.
		}

		length := utf8.RuneCountInString(s)
		start, stop, step := resolveSlice(n, e, length)
		if step == 1 {
			// Cut at byte offsets instead of converting to runes.
			if start >= stop {
				return NewString(""), nil
			}
			from, to, i := len(s), len(s), 0
			for off := range s {
				if i == start {
					from = off
				}
				if i == stop {
					to = off
					break
				}
				i++
			}
			return NewString(s[from:to]), nil
		}
		if err := e.lim.str(len(s)); err != nil {
			return Undefined(), err
		}
		runes, err := e.lim.runes(s)
		if err != nil {
			return Undefined(), err
		}
		// The characters picked take at most len(s) bytes (charged
		// above), but for invalid bytes, which become U+FFFD.
		var result strings.Builder
		result.Grow(len(s))
		if step > 0 {
			for i := start; i < stop; i += step {
				if i >= 0 && i < length {
					result.WriteRune(runes[i])
				}
			}
		} else if step < 0 {
			for i := start; i > stop; i += step {
				if i >= 0 && i < length {
					result.WriteRune(runes[i])
				}
			}
		}
		return NewString(result.String()), nil
	}

	return Undefined(), nil
}

// isASCII reports whether s contains only 7-bit ASCII bytes. Used to
// skip the []rune conversion in evalSlice's string branch when byte
// indexing produces the same result as code-point indexing.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func resolveSlice(n *sliceExpr, e *evaluator, length int) (int, int, int) {
	step := 1
	if n.step != nil {
		v, _ := e.evalExpr(n.step)
		step = int(toInt64(v))
		if step == 0 {
			step = 1
		}
	}

	var start, stop int

	if step > 0 {
		start = 0
		stop = length
	} else {
		start = length - 1
		stop = -length - 1
	}

	if n.start != nil {
		v, _ := e.evalExpr(n.start)
		start = int(toInt64(v))
		if start < 0 {
			start += length
		}
	}

	if n.stop != nil {
		v, _ := e.evalExpr(n.stop)
		stop = int(toInt64(v))
		if stop < 0 {
			stop += length
		}
	}

	// Clamp as Python's slice.indices does, so that the loops over the
	// range are bounded by length whatever numbers the template gave.
	lo, hi := 0, length
	if step < 0 {
		lo, hi = -1, length-1
	}
	start = min(max(start, lo), hi)
	stop = min(max(stop, lo), hi)

	return start, stop, step
}

func (e *evaluator) evalUnary(n *unaryExpr) (Value, error) {
	operand, err := e.evalExpr(n.operand)
	if err != nil {
		return Undefined(), err
	}

	switch n.op {
	case "not":
		return NewBool(!operand.IsTruthy()), nil
	case "-":
		if operand.IsInt() {
			return NewInt(-operand.AsInt()), nil
		}
		if operand.IsFloat() {
			return NewFloat(-operand.AsFloat()), nil
		}
		return NewInt(0), nil
	case "+":
		return operand, nil
	}

	return Undefined(), fmt.Errorf("unknown unary operator %q", n.op)
}

func (e *evaluator) evalBinary(n *binExpr) (Value, error) {
	// Short-circuit for and/or.
	if n.op == "and" {
		left, err := e.evalExpr(n.left)
		if err != nil {
			return Undefined(), err
		}
		if !left.IsTruthy() {
			return left, nil
		}
		return e.evalExpr(n.right)
	}

	if n.op == "or" {
		left, err := e.evalExpr(n.left)
		if err != nil {
			return Undefined(), err
		}
		if left.IsTruthy() {
			return left, nil
		}
		return e.evalExpr(n.right)
	}

	left, err := e.evalExpr(n.left)
	if err != nil {
		return Undefined(), err
	}

	right, err := e.evalExpr(n.right)
	if err != nil {
		return Undefined(), err
	}

	switch n.op {
	case "+":
		return e.lim.addValues(left, right)
	case "-":
		return subValues(left, right), nil
	case "*":
		return e.lim.mulValues(left, right)
	case "/":
		return divValues(left, right), nil
	case "//":
		return floorDivValues(left, right), nil
	case "%":
		return modValues(left, right), nil
	case "**":
		return powValues(left, right), nil
	case "~":
		return e.lim.concat(left, right)
	case "==":
		eq, err := e.lim.valuesEqual(left, right)
		return NewBool(eq), err
	case "!=":
		eq, err := e.lim.valuesEqual(left, right)
		return NewBool(!eq), err
	case "<":
		return NewBool(compareValues(left, right) < 0), nil
	case ">":
		return NewBool(compareValues(left, right) > 0), nil
	case "<=":
		return NewBool(compareValues(left, right) <= 0), nil
	case ">=":
		return NewBool(compareValues(left, right) >= 0), nil
	case "in":
		in, err := e.lim.containsValue(right, left)
		return NewBool(in), err
	case "not in":
		in, err := e.lim.containsValue(right, left)
		return NewBool(!in), err
	}

	return Undefined(), fmt.Errorf("unknown binary operator %q", n.op)
}

func (e *evaluator) evalCond(n *condExpr) (Value, error) {
	cond, err := e.evalExpr(n.condition)
	if err != nil {
		return Undefined(), err
	}

	if cond.IsTruthy() {
		return e.evalExpr(n.trueExpr)
	}

	if n.falseExpr != nil {
		return e.evalExpr(n.falseExpr)
	}

	return Undefined(), nil
}

func (e *evaluator) evalCallExpr(n *callExpr) (Value, error) {
	fn, err := e.evalExpr(n.fn)
	if err != nil {
		return Undefined(), err
	}

	if !fn.IsCallable() {
		repr, err := e.lim.repr(fn)
		if err != nil {
			return Undefined(), err
		}
		return Undefined(), fmt.Errorf("%s is not callable: %s", callableName(n.fn), repr)
	}

	args := make([]Value, len(n.args))
	for i, a := range n.args {
		v, err := e.evalExpr(a)
		if err != nil {
			return Undefined(), err
		}
		args[i] = v
	}

	var kwargs map[string]Value
	if len(n.kwargs) > 0 {
		kwargs = make(map[string]Value, len(n.kwargs))
		for _, kw := range n.kwargs {
			v, err := e.evalExpr(kw.value)
			if err != nil {
				return Undefined(), err
			}
			kwargs[kw.name] = v
		}
	}

	return fn.AsCallable().Fn(args, kwargs)
}

func callableName(ex expr) string {
	switch n := ex.(type) {
	case *nameExpr:
		return n.name

	case *attrExpr:
		return callableName(n.obj) + "." + n.attr

	case *itemExpr:
		return callableName(n.obj) + "[item]"

	default:
		return ex.nodeType()
	}
}

func (e *evaluator) evalFilter(n *filterExpr) (Value, error) {
	input, err := e.evalExpr(n.expr)
	if err != nil {
		return Undefined(), err
	}

	// Look up filter in builtins.
	filter, ok := lookupFilter(n.name)
	if !ok {
		// Also check scope for user-defined filters.
		filterVal, ok := e.scope.get(n.name)
		if !ok {
			return Undefined(), fmt.Errorf("unknown filter %q", n.name)
		}
		if !filterVal.IsCallable() {
			return Undefined(), fmt.Errorf("filter %q is not callable", n.name)
		}
		fn := filterVal.AsCallable().Fn
		filter = func(_ *limiter, args []Value, kwargs map[string]Value) (Value, error) {
			return fn(args, kwargs)
		}
	}

	// Build args: input as first, then additional args.
	args := make([]Value, 1+len(n.args))
	args[0] = input
	for i, a := range n.args {
		v, err := e.evalExpr(a)
		if err != nil {
			return Undefined(), err
		}
		args[i+1] = v
	}

	var kwargs map[string]Value
	if len(n.kwargs) > 0 {
		kwargs = make(map[string]Value, len(n.kwargs))
		for _, kw := range n.kwargs {
			v, err := e.evalExpr(kw.value)
			if err != nil {
				return Undefined(), err
			}
			kwargs[kw.name] = v
		}
	}

	return filter(e.lim, args, kwargs)
}

func (e *evaluator) evalTestExpr(n *testExpr) (Value, error) {
	val, err := e.evalExpr(n.expr)
	if err != nil {
		return Undefined(), err
	}

	var testArgs []Value
	for _, a := range n.args {
		v, err := e.evalExpr(a)
		if err != nil {
			return Undefined(), err
		}
		testArgs = append(testArgs, v)
	}

	result, err := evalTest(e.lim, n.name, val, testArgs)
	if err != nil {
		return Undefined(), err
	}

	if n.negated {
		result = !result
	}

	return NewBool(result), nil
}

// =============================================================================
// String methods
// =============================================================================

func (e *evaluator) stringMethod(obj Value, method string) (Value, error) {
	s := obj.AsString()
	l := e.lim

	// arg returns args[i] as text, "" if absent.
	arg := func(args []Value, i int) (string, error) {
		if i >= len(args) {
			return "", nil
		}
		return l.text(args[i])
	}

	switch method {
	case "strip":
		return e.makeStringFunc("strip", func(args []Value, kwargs map[string]Value) (Value, error) {
			if len(args) > 0 {
				cut, err := arg(args, 0)
				return NewString(strings.Trim(s, cut)), err
			}
			return NewString(strings.TrimSpace(s)), nil
		}), nil

	case "lstrip":
		return e.makeStringFunc("lstrip", func(args []Value, kwargs map[string]Value) (Value, error) {
			if len(args) > 0 {
				cut, err := arg(args, 0)
				return NewString(strings.TrimLeft(s, cut)), err
			}
			return NewString(strings.TrimLeftFunc(s, func(r rune) bool {
				return r == ' ' || r == '\t' || r == '\n' || r == '\r'
			})), nil
		}), nil

	case "rstrip":
		return e.makeStringFunc("rstrip", func(args []Value, kwargs map[string]Value) (Value, error) {
			if len(args) > 0 {
				cut, err := arg(args, 0)
				return NewString(strings.TrimRight(s, cut)), err
			}
			return NewString(strings.TrimRightFunc(s, func(r rune) bool {
				return r == ' ' || r == '\t' || r == '\n' || r == '\r'
			})), nil
		}), nil

	case "split":
		return e.makeStringFunc("split", func(args []Value, kwargs map[string]Value) (Value, error) {
			var parts []string
			if len(args) == 0 {
				parts = strings.Fields(s)
			} else {
				sep, err := arg(args, 0)
				if err != nil {
					return Undefined(), err
				}
				if err := l.items(strings.Count(s, sep) + 1); err != nil {
					return Undefined(), err
				}
				parts = strings.Split(s, sep)
			}
			if err := l.list(len(parts)); err != nil {
				return Undefined(), err
			}
			items := make([]Value, len(parts))
			for i, p := range parts {
				items[i] = NewString(p)
			}
			return NewList(items), nil
		}), nil

	case "startswith":
		return e.makeStringFunc("startswith", func(args []Value, kwargs map[string]Value) (Value, error) {
			if len(args) == 0 {
				return NewBool(false), nil
			}
			prefix, err := arg(args, 0)
			return NewBool(strings.HasPrefix(s, prefix)), err
		}), nil

	case "endswith":
		return e.makeStringFunc("endswith", func(args []Value, kwargs map[string]Value) (Value, error) {
			if len(args) == 0 {
				return NewBool(false), nil
			}
			suffix, err := arg(args, 0)
			return NewBool(strings.HasSuffix(s, suffix)), err
		}), nil

	case "replace":
		return e.makeStringFunc("replace", func(args []Value, kwargs map[string]Value) (Value, error) {
			if len(args) < 2 {
				return NewString(s), nil
			}
			old, err := arg(args, 0)
			if err != nil {
				return Undefined(), err
			}
			newStr, err := arg(args, 1)
			if err != nil {
				return Undefined(), err
			}
			count := -1
			if len(args) > 2 {
				count = int(toInt64(args[2]))
			}
			return l.replace(s, old, newStr, count)
		}), nil

	case "upper":
		return e.makeStringFunc("upper", func(args []Value, kwargs map[string]Value) (Value, error) {
			return l.newStringValue(strings.ToUpper(s))
		}), nil

	case "lower":
		return e.makeStringFunc("lower", func(args []Value, kwargs map[string]Value) (Value, error) {
			return l.newStringValue(strings.ToLower(s))
		}), nil

	case "title":
		return e.makeStringFunc("title", func(args []Value, kwargs map[string]Value) (Value, error) {
			// Simple title case: capitalize first letter of each word.
			runes, err := l.runes(s)
			if err != nil {
				return Undefined(), err
			}
			inWord := false
			for i, r := range runes {
				if r == ' ' || r == '\t' || r == '\n' {
					inWord = false
				} else if !inWord {
					runes[i] = []rune(strings.ToUpper(string(r)))[0]
					inWord = true
				}
			}
			return l.newStringValue(string(runes))
		}), nil

	case "capitalize":
		return e.makeStringFunc("capitalize", func(args []Value, kwargs map[string]Value) (Value, error) {
			if len(s) == 0 {
				return NewString(""), nil
			}
			runes, err := l.runes(s)
			if err != nil {
				return Undefined(), err
			}
			runes[0] = []rune(strings.ToUpper(string(runes[0])))[0]
			return l.newStringValue(string(runes))
		}), nil

	case "count":
		return e.makeStringFunc("count", func(args []Value, kwargs map[string]Value) (Value, error) {
			if len(args) == 0 {
				return NewInt(0), nil
			}
			sub, err := arg(args, 0)
			return NewInt(int64(strings.Count(s, sub))), err
		}), nil

	case "find":
		return e.makeStringFunc("find", func(args []Value, kwargs map[string]Value) (Value, error) {
			if len(args) == 0 {
				return NewInt(-1), nil
			}
			sub, err := arg(args, 0)
			return NewInt(int64(strings.Index(s, sub))), err
		}), nil

	case "format":
		return e.makeStringFunc("format", func(args []Value, kwargs map[string]Value) (Value, error) {
			result := NewString(s)
			for i, a := range args {
				text, err := l.text(a)
				if err != nil {
					return Undefined(), err
				}
				placeholder := fmt.Sprintf("{%d}", i)
				if result, err = l.replace(result.AsString(), placeholder, text, -1); err != nil {
					return Undefined(), err
				}
				if result, err = l.replace(result.AsString(), "{}", text, 1); err != nil {
					return Undefined(), err
				}
			}
			return result, nil
		}), nil
	}

	return Undefined(), nil
}

func (e *evaluator) makeStringFunc(name string, fn func([]Value, map[string]Value) (Value, error)) Value {
	return NewCallable("str."+name, fn)
}

// =============================================================================
// List methods
// =============================================================================

func (e *evaluator) listMethod(obj Value, method string) (Value, error) {
	list := obj.AsList()

	switch method {
	case "append":
		return NewCallable("list.append", func(args []Value, kwargs map[string]Value) (Value, error) {
			if len(args) > 0 {
				items, err := e.lim.appendItem(list.Items, args[0])
				if err != nil {
					return Undefined(), err
				}
				list.Items = items
			}
			return None(), nil
		}), nil

	case "pop":
		return NewCallable("list.pop", func(args []Value, kwargs map[string]Value) (Value, error) {
			if list.Len() == 0 {
				return Undefined(), fmt.Errorf("pop from empty list")
			}
			idx := list.Len() - 1
			if len(args) > 0 {
				idx = int(toInt64(args[0]))
				if idx < 0 {
					idx += list.Len()
				}
			}
			if idx < 0 || idx >= list.Len() {
				return Undefined(), fmt.Errorf("pop index out of range")
			}
			val := list.Items[idx]
			list.Items = append(list.Items[:idx], list.Items[idx+1:]...)
			return val, nil
		}), nil

	case "insert":
		return NewCallable("list.insert", func(args []Value, kwargs map[string]Value) (Value, error) {
			if len(args) < 2 {
				return None(), nil
			}
			idx := min(max(int(toInt64(args[0])), 0), list.Len())
			items, err := e.lim.appendItem(list.Items, Undefined())
			if err != nil {
				return Undefined(), err
			}
			list.Items = items
			copy(list.Items[idx+1:], list.Items[idx:])
			list.Items[idx] = args[1]
			return None(), nil
		}), nil
	}

	return Undefined(), nil
}

// =============================================================================
// Dict methods
// =============================================================================

func (e *evaluator) dictMethod(obj Value, method string) (Value, error) {
	d := obj.AsDict()

	switch method {
	case "items":
		return NewCallable("dict.items", func(args []Value, kwargs map[string]Value) (Value, error) {
			if err := e.lim.pairs(d.Len()); err != nil {
				return Undefined(), err
			}
			items := make([]Value, 0, d.Len())
			for _, key := range d.Keys {
				pair := NewList([]Value{NewString(key), d.Data[key]})
				items = append(items, pair)
			}
			return NewList(items), nil
		}), nil

	case "keys":
		return NewCallable("dict.keys", func(args []Value, kwargs map[string]Value) (Value, error) {
			if err := e.lim.list(d.Len()); err != nil {
				return Undefined(), err
			}
			items := make([]Value, 0, d.Len())
			for _, key := range d.Keys {
				items = append(items, NewString(key))
			}
			return NewList(items), nil
		}), nil

	case "values":
		return NewCallable("dict.values", func(args []Value, kwargs map[string]Value) (Value, error) {
			if err := e.lim.list(d.Len()); err != nil {
				return Undefined(), err
			}
			items := make([]Value, 0, d.Len())
			for _, key := range d.Keys {
				items = append(items, d.Data[key])
			}
			return NewList(items), nil
		}), nil

	case "get":
		return NewCallable("dict.get", func(args []Value, kwargs map[string]Value) (Value, error) {
			if len(args) == 0 {
				return Undefined(), nil
			}
			key, err := e.lim.text(args[0])
			if err != nil {
				return Undefined(), err
			}
			if v, ok := d.Get(key); ok {
				return v, nil
			}
			if len(args) > 1 {
				return args[1], nil
			}
			return None(), nil
		}), nil

	case "pop":
		return NewCallable("dict.pop", func(args []Value, kwargs map[string]Value) (Value, error) {
			if len(args) == 0 {
				return Undefined(), nil
			}
			key, err := e.lim.text(args[0])
			if err != nil {
				return Undefined(), err
			}
			v, ok := d.Get(key)
			if ok {
				delete(d.Data, key)
				newKeys := make([]string, 0, len(d.Keys)-1)
				for _, k := range d.Keys {
					if k != key {
						newKeys = append(newKeys, k)
					}
				}
				d.Keys = newKeys
				return v, nil
			}
			if len(args) > 1 {
				return args[1], nil
			}
			return Undefined(), nil
		}), nil

	case "update":
		return NewCallable("dict.update", func(args []Value, kwargs map[string]Value) (Value, error) {
			if len(args) > 0 && args[0].IsDict() {
				other := args[0].AsDict()
				if err := e.lim.items(d.Len() + other.Len()); err != nil {
					return Undefined(), err
				}
				if err := e.lim.charge(int64(other.Len()) * dictItemBytes); err != nil {
					return Undefined(), err
				}
				for _, key := range other.Keys {
					d.Set(key, other.Data[key])
				}
			}
			return None(), nil
		}), nil
	}

	return Undefined(), nil
}

// =============================================================================
// Arithmetic helpers
// =============================================================================

func (l *limiter) addValues(a, b Value) (Value, error) {
	if a.IsString() || b.IsString() {
		return l.concat(a, b)
	}
	if a.IsList() && b.IsList() {
		if err := l.list(a.AsList().Len() + b.AsList().Len()); err != nil {
			return Undefined(), err
		}
		items := make([]Value, 0, a.AsList().Len()+b.AsList().Len())
		items = append(items, a.AsList().Items...)
		items = append(items, b.AsList().Items...)
		return NewList(items), nil
	}
	if a.IsFloat() || b.IsFloat() {
		return NewFloat(toFloat64(a) + toFloat64(b)), nil
	}
	return NewInt(toInt64(a) + toInt64(b)), nil
}

// concat is the ~ operator, and + where a string is involved.
func (l *limiter) concat(a, b Value) (Value, error) {
	as, err := l.text(a)
	if err != nil {
		return Undefined(), err
	}
	bs, err := l.text(b)
	if err != nil {
		return Undefined(), err
	}
	if err := l.str(len(as) + len(bs)); err != nil {
		return Undefined(), err
	}
	return NewString(as + bs), nil
}

func subValues(a, b Value) Value {
	if a.IsFloat() || b.IsFloat() {
		return NewFloat(toFloat64(a) - toFloat64(b))
	}
	return NewInt(toInt64(a) - toInt64(b))
}

func (l *limiter) mulValues(a, b Value) (Value, error) {
	if a.IsString() && b.IsInt() {
		// As in Python, a count of zero or less gives the empty string.
		s, n := a.AsString(), b.AsInt()
		if n <= 0 || s == "" {
			return NewString(""), nil
		}
		if n > int64(math.MaxInt/len(s)) {
			return Undefined(), l.str(-1)
		}
		if err := l.str(len(s) * int(n)); err != nil {
			return Undefined(), err
		}
		return NewString(strings.Repeat(s, int(n))), nil
	}
	if a.IsFloat() || b.IsFloat() {
		return NewFloat(toFloat64(a) * toFloat64(b)), nil
	}
	return NewInt(toInt64(a) * toInt64(b)), nil
}

func divValues(a, b Value) Value {
	bf := toFloat64(b)
	if bf == 0 {
		return NewFloat(0)
	}
	return NewFloat(toFloat64(a) / bf)
}

func floorDivValues(a, b Value) Value {
	bi := toInt64(b)
	if bi == 0 {
		return NewInt(0)
	}
	return NewInt(toInt64(a) / bi)
}

func modValues(a, b Value) Value {
	bi := toInt64(b)
	if bi == 0 {
		return NewInt(0)
	}
	return NewInt(toInt64(a) % bi)
}

func powValues(a, b Value) Value {
	return NewFloat(math.Pow(toFloat64(a), toFloat64(b)))
}

func (l *limiter) valuesEqual(a, b Value) (bool, error) {
	// Cross-type numeric comparison.
	if a.IsNumber() && b.IsNumber() {
		return toFloat64(a) == toFloat64(b), nil
	}
	// None == None.
	if a.IsNone() && b.IsNone() {
		return true, nil
	}
	return l.equal(a, b, 0)
}
