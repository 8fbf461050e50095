package chat

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ardanlabs/jinja"
)

// dateLayouts are the forms Options.Date may take for strftime_now.
var dateLayouts = []string{
	"02 Jan 2006", "2 Jan 2006", "02 January 2006", "2 January 2006",
	"2006-01-02", "Jan 2, 2006", "January 2, 2006", time.RFC3339,
}

// parseDate reads a pinned date.
func parseDate(s string) (time.Time, error) {
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("date %q is not like \"25 Nov 2026\" or \"2026-11-25\"", s)
}

// maxStrftimeFormat bounds strftime_now's format. What a function passed
// to the template returns is outside the library's render limits, and a
// format can expand several times over ("%A" is "Wednesday").
const maxStrftimeFormat = 1 << 10

// strftimeNow returns the template's strftime_now: it formats the pinned
// date, never the clock, so prompts do not change when a run crosses
// midnight.
func strftimeNow(date string) func([]jinja.Value, map[string]jinja.Value) (jinja.Value, error) {
	return func(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
		if len(args) != 1 || !args[0].IsString() {
			return jinja.Undefined(), errors.New("strftime_now: want one format string")
		}
		if len(args[0].AsString()) > maxStrftimeFormat {
			return jinja.Undefined(), fmt.Errorf("strftime_now: format of %d bytes exceeds the limit of %d", len(args[0].AsString()), maxStrftimeFormat)
		}
		if date == "" {
			return jinja.Undefined(), errors.New("strftime_now: no date pinned (set the prompt date)")
		}
		t, err := parseDate(date)
		if err != nil {
			return jinja.Undefined(), fmt.Errorf("strftime_now: %w", err)
		}
		s, err := strftime(args[0].AsString(), t)
		if err != nil {
			return jinja.Undefined(), fmt.Errorf("strftime_now: %w", err)
		}
		return jinja.NewString(s), nil
	}
}

// strftime formats t like Python's time.strftime in the C locale, for the
// directives chat templates use.
func strftime(format string, t time.Time) (string, error) {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		i++
		if i >= len(format) {
			return "", errors.New("format ends with a lone %")
		}
		pad := true
		if format[i] == '-' && i+1 < len(format) { // glibc: no padding
			pad = false
			i++
		}
		num := func(v, width int) {
			s := strconv.Itoa(v)
			if pad {
				for len(s) < width {
					s = "0" + s
				}
			}
			b.WriteString(s)
		}
		switch format[i] {
		case 'Y':
			num(t.Year(), 4)
		case 'y':
			num(t.Year()%100, 2)
		case 'm':
			num(int(t.Month()), 2)
		case 'd':
			num(t.Day(), 2)
		case 'e':
			s := strconv.Itoa(t.Day())
			if pad && len(s) < 2 {
				s = " " + s
			}
			b.WriteString(s)
		case 'j':
			num(t.YearDay(), 3)
		case 'H':
			num(t.Hour(), 2)
		case 'I':
			h := t.Hour() % 12
			if h == 0 {
				h = 12
			}
			num(h, 2)
		case 'M':
			num(t.Minute(), 2)
		case 'S':
			num(t.Second(), 2)
		case 'p':
			b.WriteString(t.Format("PM"))
		case 'b', 'h':
			b.WriteString(t.Format("Jan"))
		case 'B':
			b.WriteString(t.Format("January"))
		case 'a':
			b.WriteString(t.Format("Mon"))
		case 'A':
			b.WriteString(t.Format("Monday"))
		case 'w':
			num(int(t.Weekday()), 1)
		case 'u':
			w := int(t.Weekday())
			if w == 0 {
				w = 7
			}
			num(w, 1)
		case 'F':
			b.WriteString(t.Format("2006-01-02"))
		case 'D':
			b.WriteString(t.Format("01/02/06"))
		case 'T':
			b.WriteString(t.Format("15:04:05"))
		case 'Z':
			b.WriteString(t.Format("MST"))
		case 'z':
			b.WriteString(t.Format("-0700"))
		case '%':
			b.WriteByte('%')
		default:
			return "", fmt.Errorf("unsupported directive %%%c", format[i])
		}
	}
	return b.String(), nil
}
