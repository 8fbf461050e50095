// Command batchtrans runs batch translation jobs with a fine-tuned LLM.
// Each subcommand lives in its own file and registers itself in commands;
// main is the only place that calls os.Exit.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"golang.org/x/term"
)

// Exit codes (documented in the README).
const (
	exitOK          = 0
	exitFatal       = 1
	exitUsage       = 2
	exitRowsFailed  = 3
	exitInterrupted = 130 // SIGINT
	exitTerminated  = 143 // SIGTERM
)

// command is one subcommand. run gets the arguments after the command name.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *cliEnv, args []string) error
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

// cliEnv is what every command gets from main.
type cliEnv struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
	// signals reports SIGINT/SIGTERM; commands that drain work watch it.
	signals <-chan os.Signal
}

// exitError carries an exit code through the error chain.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError wraps err so main exits 2.
func usageError(format string, a ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, a...)}
}

// withCode wraps err so main exits with code.
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// exitCode maps an error from a command to the process exit code.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitFatal
}

// newLogger builds the one slog logger: text on a terminal or by default,
// JSON with --log-format json.
func newLogger(w io.Writer, format string) (*slog.Logger, error) {
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, fmt.Errorf("unknown --log-format %q (want text or json)", format)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: batchtrans <command> [arguments]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nexit codes: 0 done; 1 fatal; 2 usage or job-file error; 3 some rows failed; 130/143 interrupted (rerun to resume)")
}

func main() {
	os.Exit(mainCode(os.Args[1:]))
}

func mainCode(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(os.Stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "batchtrans: unknown command %q\n", args[0])
		usage(os.Stderr)
		return exitUsage
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	env := &cliEnv{
		stdin:   os.Stdin,
		stdout:  os.Stdout,
		stderr:  os.Stderr,
		log:     slog.New(slog.NewTextHandler(os.Stderr, nil)),
		signals: sigs,
	}
	err := c.run(context.Background(), env, args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "batchtrans %s: %v\n", c.name, err)
	}
	return exitCode(err)
}
