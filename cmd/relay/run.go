package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"relay/internal/app"
	"relay/internal/config"
	"relay/internal/sim"
)

// shutdownTimeout bounds the graceful stop after SIGINT/SIGTERM: requests in flight
// finish and the worker drains, or they are cut off after this.
const shutdownTimeout = 30 * time.Second

const usage = `relay turns fragile API glue into durable Temporal jobs.

Usage:
  relay <command> [flags]

Commands:
  dev      everything in one process: embedded Temporal server and Web UI, upstream
           simulators, worker and HTTP API (the way to try relay)
  server   the HTTP API only, against TEMPORAL_ADDRESS
  worker   the Temporal worker only, against TEMPORAL_ADDRESS
  sim      the four upstream simulators, with their fault knobs
  history  record every workflow's history from a real run, or replay histories
           against this build (the determinism check)
  bench    measure every performance target against its baseline, as a table, JSON
           and SVG charts (BENCHMARKS.md)
  soak     mixed traffic on every job with upstream faults on, for a bounded time;
           reports errors, memory and latency per route (RELIABILITY.md)

Run 'relay <command> --help' for a command's flags. Each flag can also be set by the
environment variable its help names; a flag wins over the variable.
`

type command struct {
	name   string
	about  string
	groups config.Group
	run    func(ctx context.Context, cfg config.Config, logger *slog.Logger, stdout io.Writer) error
}

var commands = []command{
	{"dev", "Runs everything in one process: an embedded Temporal server (SQLite in the data dir) with\n" +
		"its Web UI, a simulator for every upstream whose URL is not set, the worker and the HTTP API.",
		config.Common | config.HTTP | config.Store | config.Upstream | config.Embedded | config.Sim, runDev},
	{"server", "Runs the HTTP API against the Temporal server at TEMPORAL_ADDRESS.",
		config.Common | config.HTTP | config.Store, runServer},
	{"worker", "Runs the Temporal worker (task queues relay and relay-geoip) against TEMPORAL_ADDRESS.",
		config.Common | config.Store | config.Upstream, runWorker},
	{"sim", "Serves the four upstream simulators on ports 9101 (incidents), 9102 (c42), 9103 (geoip)\n" +
		"and 9104 (kf), with the faults RELAY_SIM_KNOBS sets.",
		config.Sim, runSim},
}

// run is the whole program; main only turns its error into an exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &config.Error{Msg: "no command given"}
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	case "history":
		return runHistory(ctx, args[1:], stdout, stderr)
	case "bench":
		return runBench(ctx, args[1:], stdout, stderr)
	case "soak":
		return runSoak(ctx, args[1:], stdout, stderr)
	}
	for _, cmd := range commands {
		if cmd.name != args[0] {
			continue
		}
		cfg := config.Default()
		fs := flag.NewFlagSet("relay "+cmd.name, flag.ContinueOnError)
		fs.SetOutput(io.Discard) // run prints help and errors itself, each once
		loader := config.Bind(fs, &cfg, cmd.groups)
		if err := loader.Load(args[1:], getenv); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printHelp(stdout, cmd, fs)
				return nil
			}
			return fmt.Errorf("%s: %w (see 'relay %s --help')", cmd.name, err, cmd.name)
		}
		logger := newLogger(cfg, stderr)
		logger.Debug("configuration", "command", cmd.name, "settings", cfg.Redacted(cmd.groups))
		return cmd.run(ctx, cfg, logger, stdout)
	}
	return &config.Error{Msg: fmt.Sprintf("unknown command %q (commands: dev, server, worker, sim, history, bench, soak; see 'relay --help')", args[0])}
}

func printHelp(w io.Writer, cmd command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: relay %s [flags]\n\n%s\n\nFlags:\n", cmd.name, cmd.about)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // config has checked it
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func runDev(ctx context.Context, cfg config.Config, logger *slog.Logger, stdout io.Writer) error {
	sys, err := app.Start(ctx, cfg, app.Dev, logger)
	if err != nil {
		return err
	}
	printDevAddresses(stdout, sys)
	return serveUntilDone(ctx, sys, logger)
}

func runServer(ctx context.Context, cfg config.Config, logger *slog.Logger, stdout io.Writer) error {
	sys, err := app.Start(ctx, cfg, app.Server, logger)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "relay server: HTTP API on http://%s, Temporal at %s\n", sys.HTTPAddr, temporalAddr(cfg))
	return serveUntilDone(ctx, sys, logger)
}

func runWorker(ctx context.Context, cfg config.Config, logger *slog.Logger, stdout io.Writer) error {
	for _, u := range []struct{ env, url string }{
		{"INCIDENTS_API_URL", cfg.Incidents.URL}, {"C42_API_URL", cfg.C42.URL},
		{"GEOIP_API_URL", cfg.GeoIP.URL}, {"KF_API_URL", cfg.KF.URL},
	} {
		if u.url == "" {
			return &config.Error{Name: u.env, Msg: "required by relay worker (only dev starts simulators)"}
		}
	}
	sys, err := app.Start(ctx, cfg, app.Worker, logger)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "relay worker: polling task queues relay and relay-geoip at %s\n", temporalAddr(cfg))
	return serveUntilDone(ctx, sys, logger)
}

func runSim(ctx context.Context, cfg config.Config, logger *slog.Logger, stdout io.Writer) error {
	fleet, err := sim.Start(cfg.SimListen, sim.Names, sim.DefaultPorts, cfg.SimKnobs)
	if err != nil {
		return &config.Error{Name: "RELAY_SIM_KNOBS", Msg: err.Error()}
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "relay sim: upstream simulators")
	for _, name := range sim.Names {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", name, fleet.URL(name), fleet.Sim(name).Knobs())
	}
	tw.Flush()
	<-ctx.Done()
	logger.Info("stopping simulators")
	stopCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	return fleet.Close(stopCtx)
}

// serveUntilDone waits for a signal (ctx) and then stops the system gracefully.
func serveUntilDone(ctx context.Context, sys *app.System, logger *slog.Logger) error {
	waitErr := sys.Wait(ctx)
	logger.Info("shutting down: finishing requests and draining the worker", "timeout", shutdownTimeout)
	stopCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	return errors.Join(waitErr, sys.Stop(stopCtx))
}

func printDevAddresses(w io.Writer, sys *app.System) {
	cfg := sys.Config
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "relay dev is running")
	fmt.Fprintf(tw, "  HTTP API\thttp://%s\n", sys.HTTPAddr)
	fmt.Fprintf(tw, "  status page\thttp://%s/\n", sys.HTTPAddr)
	if sys.Temporal != nil {
		fmt.Fprintf(tw, "  Temporal\t%s (embedded, namespace %s)\n", sys.Temporal.FrontendAddr(), cfg.TemporalNamespace)
		if ui := sys.Temporal.UIAddr(); ui != "" {
			fmt.Fprintf(tw, "  Web UI\thttp://%s/namespaces/%s/workflows\n", ui, cfg.TemporalNamespace)
		}
	} else {
		fmt.Fprintf(tw, "  Temporal\t%s (namespace %s)\n", cfg.TemporalAddress, cfg.TemporalNamespace)
	}
	if sys.Sims != nil {
		for _, name := range sim.Names {
			if u := sys.Sims.URL(name); u != "" {
				fmt.Fprintf(tw, "  simulator %s\t%s\n", name, u)
			}
		}
	}
	fmt.Fprintf(tw, "  data\t%s (%s)\n", cfg.DataDir, sys.Store.Dialect())
	tw.Flush()
	fmt.Fprintln(w, "Stop with Ctrl-C.")
}

func temporalAddr(cfg config.Config) string {
	if cfg.TemporalAddress == "" {
		return config.DefaultTemporalAddress
	}
	return strings.TrimSpace(cfg.TemporalAddress)
}
