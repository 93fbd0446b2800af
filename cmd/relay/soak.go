package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"relay/internal/config"
	"relay/internal/soak"
)

// runSoak is `relay soak`: a bounded run of mixed traffic with faults on, which fails
// (exit 1) when anything accepted went unfinished or a route answered unexpectedly.
func runSoak(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("relay soak", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	duration := fs.Duration("duration", 0, "how long the load runs (default 2m0s)")
	rate := fs.Float64("rate", 0, "requests per second over all routes (default 40)")
	knobs := fs.String("knobs", "", "simulator faults, as RELAY_SIM_KNOBS (default: "+soak.DefaultKnobs+")")
	jsonPath := fs.String("json", "", "also write the report as JSON to this `file`")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, "Usage: relay soak [flags]\n\nStarts relay in this process (as relay dev, simulators with faults), sends mixed traffic\n"+
				"to every route for a bounded time, waits for the accepted work to finish, and reports.\n\nFlags:")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil
		}
		return &config.Error{Msg: fmt.Sprintf("soak: %v (see 'relay soak --help')", err)}
	}
	if fs.NArg() > 0 {
		return &config.Error{Msg: fmt.Sprintf("soak: unexpected argument %q", fs.Arg(0))}
	}
	report, err := soak.Run(ctx, soak.Options{Duration: *duration, Rate: *rate, Knobs: *knobs, Progress: stderr})
	if err != nil {
		return err
	}
	report.Print(stdout)
	if *jsonPath != "" {
		b, err := json.MarshalIndent(report, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*jsonPath, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if !report.Passed() {
		return errors.New("soak: targets missed (see the report)")
	}
	return nil
}
