package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"

	"relay/internal/soak"
)

var soakCommand = command{name: "soak",
	summary: "mixed traffic on every job with upstream faults on, for a bounded time;\n" +
		"reports errors, memory and latency per route (RELIABILITY.md)",
	about: "Starts relay in this process (as relay dev, simulators with faults), sends mixed traffic\n" +
		"to every route for a bounded time, waits for the accepted work to finish, and reports.\n" +
		"Exits 1 when anything accepted went unfinished or a route answered unexpectedly.",
	tool: soakTool}

// soakTool is `relay soak`: a bounded run of mixed traffic with faults on, which fails
// (exit 1) when anything accepted went unfinished or a route answered unexpectedly.
func soakTool(fs *flag.FlagSet, stdout, stderr io.Writer) runner {
	duration := fs.Duration("duration", 0, "how long the load runs (default 2m0s)")
	rate := fs.Float64("rate", 0, "requests per second over all routes (default 40)")
	knobs := fs.String("knobs", "", "simulator faults, as RELAY_SIM_KNOBS (default: "+soak.DefaultKnobs+")")
	jsonPath := fs.String("json", "", "also write the report as JSON to this `file`")
	return func(ctx context.Context, _ []string) error {
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
}
