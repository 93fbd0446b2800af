package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"relay/internal/app"
	"relay/internal/config"
	"relay/internal/histories"
)

const historyUsage = `Usage:
  relay history record [--dir workflows/testdata] [--overwrite]
      runs every workflow type end to end on an embedded, in-memory relay (Temporal,
      simulators, worker, API), saves each run's history as <WorkflowType>-<case>.json
      and replays it against this build
  relay history replay FILE...
      replays histories (from 'record', or 'temporal workflow show --output json')
      against this build: an error means the code can no longer continue those runs
`

// runHistory records and replays workflow histories: the proof that workflow changes keep
// running workflows running.
func runHistory(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, historyUsage)
		return &config.Error{Msg: "history: no subcommand given (record or replay)"}
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, historyUsage)
		return nil
	case "record":
		fs := flag.NewFlagSet("relay history record", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		dir := fs.String("dir", "workflows/testdata", "where to write the histories")
		overwrite := fs.Bool("overwrite", false, "replace histories already in --dir (otherwise refuse: an old history proves old runs still replay)")
		if err := fs.Parse(args[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(stdout, historyUsage)
				return nil
			}
			return &config.Error{Msg: "history record: " + err.Error()}
		}
		return recordHistories(ctx, *dir, *overwrite, stdout, stderr)
	case "replay":
		if len(args) < 2 {
			return &config.Error{Msg: "history replay: name at least one history file"}
		}
		for _, f := range args[1:] {
			if err := histories.Replay(f); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "ok  %s\n", f)
		}
		return nil
	}
	return &config.Error{Msg: fmt.Sprintf("history: unknown subcommand %q (record or replay)", args[0])}
}

func recordHistories(ctx context.Context, dir string, overwrite bool, stdout, stderr io.Writer) error {
	dataDir, err := os.MkdirTemp("", "relay-history-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dataDir)
	cfg := config.Default()
	cfg.HTTPAddr, cfg.TemporalListen, cfg.UIAddr, cfg.DataDir = "127.0.0.1:0", "127.0.0.1:0", "", dataDir
	// Trusting loopback as a proxy lets a recorded event come "from" a public IP.
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	parts := app.Dev
	parts.InMemory = true
	sys, err := app.Start(ctx, cfg, parts, logger)
	if err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		_ = sys.Stop(stopCtx)
	}()
	written, err := histories.RecordAll(ctx, histories.Target{Client: sys.Client, BaseURL: "http://" + sys.HTTPAddr}, dir, overwrite)
	for _, f := range written {
		fmt.Fprintf(stdout, "recorded and replayed  %s\n", f)
	}
	return err
}
