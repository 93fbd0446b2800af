package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"relay/internal/app"
	"relay/internal/config"
	"relay/internal/sim"
	"relay/workflows"
)

// The commands that run relay: dev, server, worker and sim, each given its configuration
// loaded by run, a logger and stdout for the addresses it prints.

// shutdownTimeout bounds the graceful stop after SIGINT/SIGTERM: requests in flight
// finish and the worker drains, or they are cut off after this.
const shutdownTimeout = 30 * time.Second

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
	fmt.Fprintf(stdout, "relay worker: polling task queues %s at %s\n", strings.Join(workflows.TaskQueues, ", "), temporalAddr(cfg))
	return serveUntilDone(ctx, sys, logger)
}

func runSim(ctx context.Context, cfg config.Config, logger *slog.Logger, stdout io.Writer) error {
	ports := map[string]int{}
	for i, name := range sim.Names {
		ports[name] = cfg.SimPorts[i] // config has checked there is one per simulator
	}
	fleet, err := sim.Start(cfg.SimListen, sim.Names, ports, cfg.SimKnobs)
	if err != nil {
		if _, ok := errors.AsType[*sim.KnobsError](err); ok {
			return &config.Error{Name: "RELAY_SIM_KNOBS", Msg: err.Error()}
		}
		return err // a port taken, say: a failure to start, not a configuration mistake
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
	fmt.Fprintf(tw, "  trusted proxies\t%s\n", describeProxies(cfg.TrustedProxies))
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

// describeProxies says whose X-Forwarded-For relay dev believes, and why.
func describeProxies(proxies []netip.Prefix) string {
	if len(proxies) == 0 {
		return "none (X-Forwarded-For is ignored: the client is the TCP peer)"
	}
	names := make([]string, len(proxies))
	for i, p := range proxies {
		if p.IsSingleIP() {
			names[i] = p.Addr().String()
		} else {
			names[i] = p.String()
		}
	}
	why := "RELAY_TRUSTED_PROXIES"
	if slices.Equal(proxies, config.DevDefault().TrustedProxies) {
		why = "dev default: X-Forwarded-For from loopback is believed"
	}
	return strings.Join(names, ", ") + " (" + why + ")"
}

func temporalAddr(cfg config.Config) string {
	if cfg.TemporalAddress == "" {
		return config.DefaultTemporalAddress
	}
	return strings.TrimSpace(cfg.TemporalAddress)
}
