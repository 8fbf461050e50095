package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/batchtrans/batchtrans/engine/tokenizer"
)

func init() {
	register(&command{name: "tokenize", summary: "print the token ids of a text (or of JSONL texts on stdin)", run: tokenizeCmd})
}

const tokenizeUsage = "usage: batchtrans tokenize --model DIR [--special] [--jsonl] [TEXT]"

// maxTokenizeLine bounds one --jsonl input line.
const maxTokenizeLine = 64 << 20

// tokenizeCmd prints token ids with the model's tokenizer.json. The ids are
// what Hugging Face's tokenizer(text)["input_ids"] gives: the text's ids
// wrapped in the post-processor's tokens (the BOS of Llama 3's official
// tokenizer.json; none for a ByteLevel post-processor). Without --special,
// special-token strings in the text stay literal text (as for job data);
// with it they become their ids, exactly as in Hugging Face.
//
// TEXT (the arguments joined by spaces, or all of stdin when there are none)
// prints one JSON array. With --jsonl, each stdin line is an object
// {"text": ...} and gives one line {"ids": [...]}, in order. A line that is
// not such an object stops the command with exit code 1 (bad input data, as
// for any fatal input error), after the lines before it were written.
func tokenizeCmd(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("tokenize", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	model := fs.String("model", "", "Hugging Face model folder holding tokenizer.json (required)")
	special := fs.Bool("special", false, "turn special-token strings such as <|eot_id|> into their ids")
	jsonl := fs.Bool("jsonl", false, `read {"text": ...} objects from stdin, one a line; write {"ids": [...]} a line`)
	if err := fs.Parse(args); err != nil {
		return usageError("%v (%s)", err, tokenizeUsage)
	}
	switch {
	case *model == "":
		return usageError("--model is required (%s)", tokenizeUsage)
	case *jsonl && fs.NArg() > 0:
		return usageError("--jsonl reads its texts from stdin; drop the TEXT argument (%s)", tokenizeUsage)
	}
	tok, err := tokenizer.Load(*model)
	if err != nil {
		return withCode(exitFatal, err)
	}
	encode := func(text string) []int {
		if *special {
			return tok.WithSpecial(tok.EncodeSpecial(text))
		}
		return tok.WithSpecial(tok.Encode(text))
	}
	out := bufio.NewWriter(env.stdout)
	if !*jsonl {
		text := strings.Join(fs.Args(), " ")
		if fs.NArg() == 0 {
			b, err := io.ReadAll(env.stdin)
			if err != nil {
				return withCode(exitFatal, fmt.Errorf("read stdin: %w", err))
			}
			text = string(b)
		}
		if err := writeJSONLine(out, encode(text)); err != nil {
			return withCode(exitFatal, err)
		}
		return withCode(exitFatal, out.Flush())
	}
	err = tokenizeLines(ctx, env.stdin, out, encode)
	if ferr := out.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("write stdout: %w", ferr)
	}
	return withCode(exitFatal, err)
}

// tokenizeLines is the --jsonl loop.
func tokenizeLines(ctx context.Context, in io.Reader, out *bufio.Writer, encode func(string) []int) error {
	r := bufio.NewReaderSize(in, 1<<16)
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		line, err := readLine(r)
		if errors.Is(err, io.EOF) && len(line) == 0 {
			return nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("stdin line %d: %w", n, err)
		}
		var obj struct {
			Text *string `json:"text"`
		}
		if jerr := json.Unmarshal(line, &obj); jerr != nil {
			return fmt.Errorf("stdin line %d: not a JSON object with a \"text\" string: %w", n, jerr)
		}
		if obj.Text == nil {
			return fmt.Errorf("stdin line %d: field \"text\" is missing or null", n)
		}
		if werr := writeJSONLine(out, map[string][]int{"ids": idsOrEmpty(encode(*obj.Text))}); werr != nil {
			return werr
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
	}
}

// readLine returns the next line without its line ending, refusing lines
// over maxTokenizeLine bytes.
func readLine(r *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := r.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > maxTokenizeLine {
			return nil, fmt.Errorf("line longer than %d bytes", maxTokenizeLine)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		buf = bytes.TrimSuffix(bytes.TrimSuffix(buf, []byte("\n")), []byte("\r"))
		return buf, err
	}
}

func idsOrEmpty(ids []int) []int {
	if ids == nil {
		return []int{}
	}
	return ids
}

func writeJSONLine(w io.Writer, v any) error {
	if ids, ok := v.([]int); ok {
		v = idsOrEmpty(ids)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write stdout: %w", err)
	}
	return nil
}
