package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/batchtrans/batchtrans/engine/device"
)

func init() {
	register(&command{name: "devices", summary: "show what the device probe found and what auto picks", run: devicesCmd})
}

func devicesCmd(_ context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("devices", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return usageError("%v (usage: batchtrans devices)", err)
	}
	if fs.NArg() > 0 {
		return usageError("devices takes no arguments, got %q", fs.Args())
	}
	return printDevices(env.stdout, device.System().Probe())
}

// printDevices writes the probe's findings, then the choice auto makes with
// the lines it would log.
func printDevices(w io.Writer, info device.Info) error {
	for _, l := range device.Describe(info) {
		if _, err := fmt.Fprintln(w, l); err != nil {
			return err
		}
	}
	var notes []string
	dev, err := device.Choose(info, "auto", func(s string) { notes = append(notes, s) })
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "auto picks: %s\n", dev)
	for _, n := range notes {
		fmt.Fprintf(w, "  %s\n", n)
	}
	return nil
}
