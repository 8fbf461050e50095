package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/batchtrans/batchtrans/examples/internal/chrf"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options are the command's flags.
type options struct {
	hyp, ref, src, id string
	show              int
}

// row is one scored line of the input.
type row struct {
	line          int
	id            string
	hyp, ref, src string
	failed        bool
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("chrf", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.hyp, "hyp", "translation", "field holding the machine translation")
	fs.StringVar(&o.ref, "ref", "de", "field holding the human translation")
	fs.StringVar(&o.src, "src", "en", `field holding the source text ("" for none)`)
	fs.StringVar(&o.id, "id", "id", `field shown as the row's id ("" for none)`)
	fs.IntVar(&o.show, "show", 8, "rows to print beside their reference")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: chrf [flags] FILE.jsonl")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 || o.show < 0 || o.hyp == "" || o.ref == "" {
		fs.Usage()
		return 2
	}
	path := fs.Arg(0)
	rows, err := readRows(path, o)
	if err != nil {
		fmt.Fprintf(stderr, "chrf: %v\n", err)
		return 1
	}
	if err := report(stdout, path, rows, o); err != nil {
		fmt.Fprintf(stderr, "chrf: %v\n", err)
		return 1
	}
	return 0
}

// readRows reads every line of path; errors name the line and field.
func readRows(path string, o options) ([]row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rows []row
	r := bufio.NewReaderSize(f, 1<<16)
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			rw, perr := parseRow(line, n, o)
			if perr != nil {
				return nil, fmt.Errorf("%s line %d: %w", path, n, perr)
			}
			rows = append(rows, rw)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s line %d: %w", path, n, err)
		}
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: no rows", path)
	}
	return rows, nil
}

func parseRow(line []byte, n int, o options) (row, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(line, &obj); err != nil {
		return row{}, fmt.Errorf("not a JSON object: %w", err)
	}
	rw := row{line: n}
	hyp, ok, err := stringField(obj, o.hyp)
	if err != nil {
		return row{}, err
	}
	rw.hyp, rw.failed = hyp, !ok
	if rw.ref, ok, err = stringField(obj, o.ref); err != nil {
		return row{}, err
	} else if !ok {
		return row{}, fmt.Errorf("field %q: missing or null", o.ref)
	}
	if o.src != "" {
		if rw.src, ok, err = stringField(obj, o.src); err != nil {
			return row{}, err
		} else if !ok {
			return row{}, fmt.Errorf("field %q: missing or null", o.src)
		}
	}
	if o.id != "" {
		if raw, has := obj[o.id]; has {
			var s string
			if json.Unmarshal(raw, &s) == nil {
				rw.id = s
			} else {
				rw.id = string(bytes.TrimSpace(raw))
			}
		}
	}
	return rw, nil
}

// stringField returns obj[name] as a string; ok is false when the field is
// missing or null; any other type is an error naming the field.
func stringField(obj map[string]json.RawMessage, name string) (s string, ok bool, err error) {
	raw, has := obj[name]
	if !has || string(bytes.TrimSpace(raw)) == "null" {
		return "", false, nil
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, fmt.Errorf("field %q: not a string", name)
	}
	return s, true, nil
}

func report(w io.Writer, path string, rows []row, o options) error {
	hyps := make([]string, len(rows))
	refs := make([]string, len(rows))
	srcs := make([]string, len(rows))
	failed := 0
	for i, r := range rows {
		hyps[i], refs[i], srcs[i] = r.hyp, r.ref, r.src
		if r.failed {
			failed++
		}
	}
	score, err := chrf.Corpus(hyps, refs)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%s: %d rows, %d without a translation\n", path, len(rows), failed)
	show := min(o.show, len(rows))
	width := max(len(o.src), len(o.ref)+len(" (human)"), len(o.hyp)) + 1
	for k := range show {
		r := rows[k*len(rows)/show]
		head := fmt.Sprintf("line %d", r.line)
		if r.id != "" {
			head += ", " + o.id + " " + r.id
		}
		fmt.Fprintf(bw, "\n[%d/%d] %s\n", k+1, show, head)
		if o.src != "" {
			fmt.Fprintf(bw, "  %-*s %s\n", width, o.src+":", oneLine(r.src))
		}
		fmt.Fprintf(bw, "  %-*s %s\n", width, o.ref+" (human):", oneLine(r.ref))
		hyp := oneLine(r.hyp)
		if r.failed {
			hyp = "(no translation)"
		}
		fmt.Fprintf(bw, "  %-*s %s   [chrF %.1f]\n", width, o.hyp+":", hyp, chrf.Sentence(r.hyp, r.ref))
	}
	fmt.Fprintf(bw, "\nchrF2 (sacreBLEU's definition: character 6-grams, beta 2), %d rows\n", len(rows))
	fmt.Fprintf(bw, "  %-*s %6.2f\n", 28, o.hyp+" vs "+o.ref+":", score)
	if o.src != "" {
		copyScore, err := chrf.Corpus(srcs, refs)
		if err != nil {
			return err
		}
		fmt.Fprintf(bw, "  %-*s %6.2f\n", 28, "copying "+o.src+" unchanged:", copyScore)
	}
	return bw.Flush()
}

// oneLine keeps a printed row on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
