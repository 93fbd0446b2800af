package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"relay/internal/bench"
	"relay/internal/bench/scenarios"
)

const benchAbout = `Measures relay's performance targets, each against its baseline measured in the same
run on this machine. Each scenario starts relay in this process (embedded Temporal with
its history in SQLite, simulators with the scenario's latency and faults, worker, HTTP
API), loads it on loopback with bounded request counts and durations, and reports rows:
scenario, metric, relay, baseline, ratio, target, pass. With no scenario named, all run
at every size (about 11 minutes); name one as name or name:size[,size...].

Exits 1 when a scenario fails to run; a target missed shows in the table, not in the
exit code.`

var benchCommand = command{name: "bench", args: "[scenario[:size,...]...]",
	summary: "measure every performance target against its baseline, as a table, JSON\n" +
		"and SVG charts (BENCHMARKS.md)",
	about: benchAbout, tool: benchTool, more: printScenarios}

// benchTool is `relay bench`: its flags are its own, not relay's configuration, since
// every scenario configures the relay it starts.
func benchTool(fs *flag.FlagSet, stdout, stderr io.Writer) runner {
	jsonPath := fs.String("json", "", "write the results as JSON to this `file`; the charts go beside it unless -out says")
	outDir := fs.String("out", "", "write the SVG charts into this `dir`")
	smoke := fs.Bool("smoke", false,
		"a short run of every scenario at its smallest size: shows each works, its numbers mean little (CI)")
	logLevel := fs.String("log-level", "", "print the logs of the relay under test at this `level` "+
		"(debug, info, warn, error); by default they are formatted and dropped")
	return func(ctx context.Context, names []string) error {
		jobs, err := bench.Select(scenarios.All, names, *smoke)
		if err != nil {
			return usagef("%v", err)
		}
		opts := bench.Options{Smoke: *smoke, Progress: stderr,
			Command: strings.TrimSpace("relay bench " + strings.Join(append(flagArgs(fs), names...), " "))}
		if *logLevel != "" {
			var level slog.Level
			if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
				return usagef("-log-level: %v", err)
			}
			opts.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
		}

		report := bench.Run(ctx, jobs, opts)
		fmt.Fprintln(stdout)
		report.WriteTable(stdout)
		dir := *outDir
		if dir == "" && *jsonPath != "" {
			dir = filepath.Dir(*jsonPath)
		}
		if dir != "" {
			if err := report.WriteCharts(dir); err != nil {
				return fmt.Errorf("bench: charts: %w", err)
			}
		}
		if *jsonPath != "" {
			if err := report.WriteJSON(*jsonPath); err != nil {
				return fmt.Errorf("bench: %w", err)
			}
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("bench: interrupted")
		}
		if failed := report.Failed(); len(failed) > 0 {
			return fmt.Errorf("bench: %d of %d cases failed to run", len(failed), len(report.Cases))
		}
		return nil
	}
}

// flagArgs writes back the flags that were set, for the report's command line.
func flagArgs(fs *flag.FlagSet) []string {
	var out []string
	fs.Visit(func(f *flag.Flag) {
		if f.Value.String() == "true" {
			out = append(out, "--"+f.Name)
		} else {
			out = append(out, "--"+f.Name, f.Value.String())
		}
	})
	return out
}

// printScenarios ends bench's help: the scenarios, their sizes and baselines.
func printScenarios(w io.Writer) {
	fmt.Fprintln(w, "\nScenarios:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, s := range scenarios.All {
		sizes := ""
		if len(s.Sizes) > 0 {
			var ls []string
			for _, n := range s.Sizes {
				ls = append(ls, bench.SizeLabel(n))
			}
			sizes = " (sizes " + strings.Join(ls, ", ") + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s%s\n", s.Name, s.About, sizes)
		if s.Baseline != "" {
			fmt.Fprintf(tw, "  \tbaseline: %s\n", s.Baseline)
		}
	}
	tw.Flush()
}
