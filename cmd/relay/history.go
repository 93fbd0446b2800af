package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"relay/internal/app"
	"relay/internal/config"
	"relay/internal/histories"
	"relay/internal/payloadcodec"
	"relay/internal/sim"
)

var historyRecordCommand = command{name: "history record",
	summary: "record every workflow's history from a real run into testdata",
	about: "Runs every workflow type end to end on an embedded, in-memory relay (Temporal, simulators,\n" +
		"worker, API), saves each run's history as <WorkflowType>-<case>.json and replays it against\n" +
		"this build: the proof that workflow changes keep running workflows running.",
	tool: historyRecordTool}

var historyReplayCommand = command{name: "history replay", args: "FILE...",
	summary: "replay histories against this build (the determinism check)",
	about: "Replays histories (from 'relay history record', or 'temporal workflow show --output json')\n" +
		"against this build: an error means the code can no longer continue those runs.",
	tool: historyReplayTool}

func historyRecordTool(fs *flag.FlagSet, stdout, stderr io.Writer) runner {
	dir := fs.String("dir", "workflows/testdata", "where to write the histories")
	overwrite := fs.Bool("overwrite", false,
		"replace histories already in --dir (otherwise refuse: an old history proves old runs still replay)")
	return func(ctx context.Context, _ []string) error {
		return recordHistories(ctx, *dir, *overwrite, stdout, stderr)
	}
}

func historyReplayTool(fs *flag.FlagSet, stdout, _ io.Writer) runner {
	keys := fs.String("keys", "", "the `keys` that encrypted the histories' payloads, as RELAY_PAYLOAD_KEYS holds them "+
		"(default: the key 'relay history record' uses); payloads in the clear need none")
	return func(_ context.Context, files []string) error {
		if len(files) == 0 {
			return usagef("name at least one history file")
		}
		codec := payloadcodec.Recording()
		if *keys != "" {
			parsed, err := payloadcodec.ParseKeys(*keys)
			if err != nil {
				return usagef("--keys: %v", err)
			}
			if codec, err = payloadcodec.New(parsed); err != nil {
				return err
			}
		}
		for _, f := range files {
			if err := histories.Replay(codec, f); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "ok  %s\n", f)
		}
		return nil
	}
}

func recordHistories(ctx context.Context, dir string, overwrite bool, stdout, stderr io.Writer) error {
	dataDir, err := os.MkdirTemp("", "relay-history-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dataDir)
	// dev's defaults trust loopback as a proxy, which lets a recorded event come "from" a public IP.
	cfg := config.DevDefault()
	cfg.HTTPAddr, cfg.TemporalListen, cfg.UIAddr, cfg.DataDir = "127.0.0.1:0", "127.0.0.1:0", "", dataDir
	// Encrypted, as production's are, with the key the replay tests hold.
	cfg.PayloadKeys = payloadcodec.RecordingKeys
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
	target := histories.Target{Client: sys.Client, BaseURL: "http://" + sys.HTTPAddr, WorkflowIDKey: []byte(sys.Config.WorkflowIDKey), SetC42Knobs: func(knobs string) error {
		c42 := sys.Sims.Sim(sim.C42)
		k := c42.Knobs()
		if err := k.Apply(knobs); err != nil {
			return err
		}
		c42.SetKnobs(k)
		return nil
	}}
	written, err := histories.RecordAll(ctx, target, dir, overwrite)
	for _, f := range written {
		fmt.Fprintf(stdout, "recorded and replayed  %s\n", f)
	}
	return err
}
