package jinja

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// Limits bounds the work and memory of one render (see
// Template.RenderLimited). A zero field leaves that resource unlimited,
// except MaxMacroDepth, which then defaults to maxNesting so that endless
// recursion ends with an error instead of a stack overflow.
//
// Every limit is checked before the value it guards is built (results at
// most a small multiple of their input, such as upper's, right after), so
// a render that runs into one returns an error having allocated little
// more than the limit itself.
type Limits struct {
	// MaxOutputBytes caps the rendered text. It is checked on every write.
	MaxOutputBytes int
	// MaxStringBytes caps any one string the template builds: by ~, +, *,
	// join, format, replace, the output of a macro, caller or set block,
	// a filter's result, a printed list or dict.
	MaxStringBytes int
	// MaxListItems caps the items of any one list or dict the template
	// builds (range, literals, +, append, insert, update, namespace
	// attributes, filters) and of any string it iterates character by
	// character.
	MaxListItems int
	// MaxAllocBytes caps the bytes of everything one render builds:
	// strings, lists, dicts, the scopes of loops and calls, the functions
	// it defines or takes from values (macros, bound methods), its
	// output, whether still referenced or not, each charged at about what
	// Go allocates for it. It bounds what a template can keep alive,
	// however it spreads that over values each within the other limits.
	MaxAllocBytes int64
	// MaxSteps caps the loop passes, macro and caller calls, and items
	// visited by filters, comparisons and membership tests of one render.
	MaxSteps int64
	// MaxMacroDepth caps nested macro and caller calls.
	MaxMacroDepth int
}

// ErrLimit is matched (errors.Is) by the error of a render that ran into
// one of its Limits or into the fixed nesting limit.
var ErrLimit = errors.New("jinja: render limit exceeded")

// maxNesting bounds the nesting that the parser and evaluator follow by
// recursion (parenthesised expressions, values inside values, macro calls
// when Limits.MaxMacroDepth is zero) so that no template can overflow the
// goroutine stack, which would kill the process. Python's default
// recursion limit is the same.
const maxNesting = 1000

// maxFrames bounds the recursion of the evaluator: blocks and expressions
// nested within each other, which macro calls continue (a few levels per
// call).
const maxFrames = 10 * maxNesting

// Byte costs charged to Limits.MaxAllocBytes for what a template creates
// besides the bytes of strings: about what Go allocates for each, so that
// what a template can keep alive stays within a small multiple of the
// limit, whatever kind of values it keeps.
const (
	listItemBytes = 24  // a Value in a list
	listBytes     = 64  // a List and its slice
	dictItemBytes = 64  // a key's header, its Value and the map's share
	dictBytes     = 512 // a Dict, its map and first group of slots
	scopeBytes    = 512 // the scope (a map) of a loop, macro or caller call
	callableBytes = 64  // a closure and its Callable: macros, bound methods
	intBytes      = 8   // an int boxed in a Value (range)
)

// limitError is the error of a limit. It matches ErrLimit.
type limitError struct{ msg string }

func (e *limitError) Error() string        { return e.msg }
func (e *limitError) Is(target error) bool { return target == ErrLimit }

// limiter holds one render's Limits and what the render has used of them.
// It is owned by the render's goroutine. The first limit hit sticks: every
// later check returns the same error, so that a call site of the library
// that drops an error cannot let the render go on past a limit.
type limiter struct {
	lim       Limits
	ctx       context.Context
	done      <-chan struct{}
	allocated int64
	steps     int64
	depth     int // nested macro and caller calls
	frames    int // nested execNode and evalExpr calls
	err       error
}

func newLimiter(ctx context.Context, lim Limits) *limiter {
	if ctx == nil {
		ctx = context.Background()
	}
	if lim.MaxMacroDepth <= 0 {
		lim.MaxMacroDepth = maxNesting
	}
	return &limiter{lim: lim, ctx: ctx, done: ctx.Done()}
}

// fail records err as the render's error unless one is recorded already,
// and returns the recorded one.
func (l *limiter) fail(err error) error {
	if l.err == nil {
		l.err = err
	}
	return l.err
}

func (l *limiter) failf(format string, args ...any) error {
	return l.fail(&limitError{msg: fmt.Sprintf(format, args...)})
}

// step counts one unit of work and checks the context.
func (l *limiter) step() error {
	if l.err != nil {
		return l.err
	}
	l.steps++
	if l.lim.MaxSteps > 0 && l.steps > l.lim.MaxSteps {
		return l.failf("render exceeds the limit of %d steps (loop passes, macro calls, items visited)", l.lim.MaxSteps)
	}
	select {
	case <-l.done:
		return l.fail(fmt.Errorf("render stopped: %w", l.ctx.Err()))
	default:
	}
	return nil
}

// charge counts n bytes about to be allocated.
func (l *limiter) charge(n int64) error {
	if l.err != nil {
		return l.err
	}
	l.allocated += n
	if l.lim.MaxAllocBytes > 0 && l.allocated > l.lim.MaxAllocBytes {
		return l.failf("values built in one render exceed the limit of %d bytes", l.lim.MaxAllocBytes)
	}
	return nil
}

// str checks and charges a string of n bytes about to be built.
func (l *limiter) str(n int) error {
	if err := l.fits(n); err != nil {
		return err
	}
	return l.charge(int64(n))
}

// fits checks the size of a string about to be built without charging it.
// n may be the result of an overflowing computation: negative means too
// large.
func (l *limiter) fits(n int) error {
	if l.err != nil {
		return l.err
	}
	if n < 0 || (l.lim.MaxStringBytes > 0 && n > l.lim.MaxStringBytes) {
		if n < 0 {
			return l.failf("string exceeds the limit of %d bytes", l.lim.MaxStringBytes)
		}
		return l.failf("string of %d bytes exceeds the limit of %d bytes", n, l.lim.MaxStringBytes)
	}
	return nil
}

// list checks and charges a list of n items about to be built.
func (l *limiter) list(n int) error {
	if err := l.items(n); err != nil {
		return err
	}
	return l.charge(listBytes + int64(n)*listItemBytes)
}

// dict checks and charges a dict of n items about to be built.
func (l *limiter) dict(n int) error {
	if err := l.items(n); err != nil {
		return err
	}
	return l.charge(dictBytes + int64(n)*dictItemBytes)
}

// appendItem appends v to items. It grows the capacity by doubling, and
// charges each new array in full: append's own growth, 1.25 times for
// long slices, would allocate about five times the final size on the way.
func (l *limiter) appendItem(items []Value, v Value) ([]Value, error) {
	if err := l.items(len(items) + 1); err != nil {
		return items, err
	}
	if len(items) == cap(items) {
		grown := max(2*cap(items), 4)
		if err := l.charge(int64(grown) * listItemBytes); err != nil {
			return items, err
		}
		items = append(make([]Value, 0, grown), items...)
	}
	return append(items, v), nil
}

// pairs checks and charges a list of n two-item lists (dict items).
func (l *limiter) pairs(n int) error {
	if err := l.list(n); err != nil {
		return err
	}
	return l.charge(int64(n) * (listBytes + 2*listItemBytes))
}

// items checks a count of list or dict items without charging it.
func (l *limiter) items(n int) error {
	if l.err != nil {
		return l.err
	}
	if n < 0 || (l.lim.MaxListItems > 0 && n > l.lim.MaxListItems) {
		if n < 0 {
			return l.failf("list exceeds the limit of %d items", l.lim.MaxListItems)
		}
		return l.failf("list of %d items exceeds the limit of %d items", n, l.lim.MaxListItems)
	}
	return nil
}

// enter counts one level of macro or caller nesting; leave undoes it.
func (l *limiter) enter(name string) error {
	if err := l.step(); err != nil {
		return err
	}
	if l.depth >= l.lim.MaxMacroDepth {
		return l.failf("macro %s: calls nested more than %d deep", name, l.lim.MaxMacroDepth)
	}
	l.depth++
	return nil
}

func (l *limiter) leave() { l.depth-- }

// nested checks the nesting depth of a value being walked.
func (l *limiter) nested(depth int) error {
	if depth > maxNesting {
		return l.failf("value nested more than %d deep (a list or dict that contains itself?)", maxNesting)
	}
	return nil
}

// =============================================================================

// builder is a strings.Builder that refuses to grow past max bytes (if
// max > 0) and charges the buffers it allocates to its limiter. what
// names the text in errors ("output" or "string").
type builder struct {
	sb   strings.Builder
	l    *limiter
	max  int
	what string
}

// reserve checks and charges room for n more bytes.
func (b *builder) reserve(n int) error {
	if b.l.err != nil {
		return b.l.err
	}
	if b.max > 0 && n > b.max-b.sb.Len() {
		return b.l.failf("%s exceeds the limit of %d bytes", b.what, b.max)
	}
	if b.sb.Cap()-b.sb.Len() < n {
		// strings.Builder.Grow(n) allocates a buffer of twice the old
		// capacity plus n: that is what is charged.
		if err := b.l.charge(2*int64(b.sb.Cap()) + int64(n)); err != nil {
			return err
		}
		b.sb.Grow(n)
	}
	return nil
}

func (b *builder) WriteString(s string) error {
	if err := b.reserve(len(s)); err != nil {
		return err
	}
	b.sb.WriteString(s)
	return nil
}

// writeBytes is WriteString for bytes.
func (b *builder) writeBytes(p []byte) error {
	if err := b.reserve(len(p)); err != nil {
		return err
	}
	b.sb.Write(p)
	return nil
}

func (b *builder) WriteByte(c byte) error {
	if err := b.reserve(1); err != nil {
		return err
	}
	b.sb.WriteByte(c)
	return nil
}

func (b *builder) Len() int       { return b.sb.Len() }
func (b *builder) String() string { return b.sb.String() }

// newOutput returns the builder of a render's text.
func (l *limiter) newOutput() *builder {
	return &builder{l: l, max: l.lim.MaxOutputBytes, what: "output"}
}

// newString returns a builder for a string value.
func (l *limiter) newString() *builder {
	return &builder{l: l, max: l.lim.MaxStringBytes, what: "string"}
}

// =============================================================================

// newStringValue checks and charges s, a string already built whose size
// is a small multiple of its inputs' (upper, lower, title, ...), and
// returns it as a Value.
func (l *limiter) newStringValue(s string) (Value, error) {
	if err := l.str(len(s)); err != nil {
		return Undefined(), err
	}
	return NewString(s), nil
}

// runes is []rune(s), charged: the conversion takes four bytes a
// character, garbage once the caller has built its result.
func (l *limiter) runes(s string) ([]rune, error) {
	if err := l.charge(4 * int64(utf8.RuneCountInString(s))); err != nil {
		return nil, err
	}
	return []rune(s), nil
}

// text is printValue within the limits: a list or dict prints as its repr,
// a string of at most MaxStringBytes.
func (l *limiter) text(v Value) (string, error) {
	if v.kind != KindList && v.kind != KindDict {
		return printValue(v), nil
	}
	return l.repr(v)
}

// repr is Value.String within the limits.
func (l *limiter) repr(v Value) (string, error) {
	b := l.newString()
	if err := l.writeRepr(b, v, 0); err != nil {
		return "", err
	}
	return b.String(), nil
}

// writeRepr writes the Python-style repr of v (see Value.String) to b.
// Errors of b are sticky in l, so the writes within a container are
// checked once per item.
func (l *limiter) writeRepr(b *builder, v Value, depth int) error {
	switch v.kind {
	case KindString:
		b.WriteByte('\'')
		b.WriteString(v.AsString())
		return b.WriteByte('\'')

	case KindList:
		if err := l.nested(depth); err != nil {
			return err
		}
		b.WriteByte('[')
		for i, item := range v.AsList().Items {
			if err := l.step(); err != nil {
				return err
			}
			if i > 0 {
				b.WriteString(", ")
			}
			if err := l.writeRepr(b, item, depth+1); err != nil {
				return err
			}
		}
		return b.WriteByte(']')

	case KindDict:
		if err := l.nested(depth); err != nil {
			return err
		}
		d := v.AsDict()
		b.WriteByte('{')
		for i, key := range d.Keys {
			if err := l.step(); err != nil {
				return err
			}
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('\'')
			b.WriteString(key)
			b.WriteString("': ")
			if err := l.writeRepr(b, d.Data[key], depth+1); err != nil {
				return err
			}
		}
		return b.WriteByte('}')
	}

	return b.WriteString(v.String())
}

// equal is Value.Equals within the limits: each item compared is a step.
func (l *limiter) equal(a, b Value, depth int) (bool, error) {
	if a.kind != b.kind {
		return false, nil
	}

	switch a.kind {
	case KindList:
		if err := l.nested(depth); err != nil {
			return false, err
		}
		x, y := a.AsList(), b.AsList()
		if x.Len() != y.Len() {
			return false, nil
		}
		for i := range x.Items {
			if err := l.step(); err != nil {
				return false, err
			}
			if eq, err := l.equal(x.Items[i], y.Items[i], depth+1); !eq || err != nil {
				return false, err
			}
		}
		return true, nil

	case KindDict:
		if err := l.nested(depth); err != nil {
			return false, err
		}
		x, y := a.AsDict(), b.AsDict()
		if x.Len() != y.Len() {
			return false, nil
		}
		for _, key := range x.Keys {
			if err := l.step(); err != nil {
				return false, err
			}
			yv, ok := y.Get(key)
			if !ok {
				return false, nil
			}
			if eq, err := l.equal(x.Data[key], yv, depth+1); !eq || err != nil {
				return false, err
			}
		}
		return true, nil

	case KindUndefined, KindNone:
		return true, nil

	case KindBool:
		return a.AsBool() == b.AsBool(), nil

	case KindInt:
		return a.AsInt() == b.AsInt(), nil

	case KindFloat:
		return a.AsFloat() == b.AsFloat(), nil

	case KindString:
		return a.AsString() == b.AsString(), nil
	}

	return false, nil
}

// containsValue is the in operator: item in container.
func (l *limiter) containsValue(container, item Value) (bool, error) {
	if container.IsList() {
		for _, v := range container.AsList().Items {
			if err := l.step(); err != nil {
				return false, err
			}
			if eq, err := l.equal(v, item, 0); eq || err != nil {
				return eq, err
			}
		}
		return false, nil
	}
	if container.IsDict() && item.IsString() {
		return container.AsDict().Has(item.AsString()), nil
	}
	if container.IsString() && item.IsString() {
		return strings.Contains(container.AsString(), item.AsString()), nil
	}
	return false, nil
}

// replace is strings.Replace(s, old, repl, count) for a result within the
// limits, which it computes before building it.
func (l *limiter) replace(s, old, repl string, count int) (Value, error) {
	n := strings.Count(s, old)
	if count >= 0 && count < n {
		n = count
	}
	if n == 0 {
		return NewString(s), nil
	}
	size := len(s)
	if delta := len(repl) - len(old); delta > 0 {
		if n > (math.MaxInt-size)/delta {
			return Undefined(), l.str(-1)
		}
		size += n * delta
	} else {
		size += n * delta
	}
	if err := l.str(size); err != nil {
		return Undefined(), err
	}
	return NewString(strings.Replace(s, old, repl, count)), nil
}

// print writes v to the evaluator's output as {{ v }} does.
func (e *evaluator) print(v Value) error {
	if v.kind == KindList || v.kind == KindDict {
		return e.lim.writeRepr(e.output, v, 0)
	}
	return e.output.WriteString(printValue(v))
}
