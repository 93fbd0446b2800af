// Command clusterctl runs relay's production shape as processes (see package cluster):
// scripts/cluster.sh is how people call it.
//
//	clusterctl up [-servers 2] [-workers 3] [-dir .relay/cluster]   starts it and returns
//	clusterctl down [-dir .relay/cluster]                            stops it, drops its databases
//	clusterctl bench [-dir .relay/cluster-bench]                     starts one, measures it, stops it
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"relay/internal/cluster"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "clusterctl:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 || (args[0] != "up" && args[0] != "down" && args[0] != "bench") {
		return fmt.Errorf("usage: clusterctl up|down|bench [flags]")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	dir := fs.String("dir", ".relay/cluster", "`directory` for configuration, logs and state")
	servers := fs.Int("servers", 2, "relay server processes")
	workers := fs.Int("workers", 3, "relay worker processes")
	name := fs.String("name", "cluster", "database `suffix`: temporal_<name>, temporal_visibility_<name>, relay_<name>")
	pg := fs.String("postgres", "127.0.0.1:5432", "PostgreSQL `host:port` (trust authentication)")
	user := fs.String("user", "postgres", "PostgreSQL `user`")
	knobs := fs.String("sim-knobs", "", "relay sim's fault knobs (RELAY_SIM_KNOBS)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if args[0] == "down" {
		return cluster.Down(ctx, abs, 40*time.Second)
	}
	if args[0] == "bench" {
		return bench(ctx, abs, *name)
	}
	if _, err := os.Stat(filepath.Join(abs, "state.json")); err == nil {
		return fmt.Errorf("a cluster already runs from %s: run down first", abs)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return err
	}
	logf := func(format string, a ...any) { fmt.Printf(format+"\n", a...) }
	logf("building relay, the Temporal server and its SQL tool (minutes the first time)")
	bin, err := cluster.Build(ctx, abs)
	if err != nil {
		return err
	}
	c, err := cluster.Start(ctx, cluster.Options{
		Dir: abs, Name: *name, Servers: *servers, Workers: *workers, Postgres: *pg, User: *user,
		SimKnobs: *knobs, Bin: bin, Detach: true, Logf: logf,
	})
	if err != nil {
		return err
	}
	if err := c.WriteState(); err != nil {
		return err
	}
	fmt.Printf("\nrelay cluster is up (logs in %s)\n", abs)
	fmt.Printf("  relay servers     %s\n", strings.Join(c.ServerURLs, " "))
	fmt.Printf("  Temporal          %s (namespace %s, HTTP API %s)\n", c.FrontendAddr, cluster.Namespace, c.FrontendHTTP)
	fmt.Printf("  Temporal metrics  %s\n", c.TemporalMetrics)
	fmt.Printf("  relay store       %s\n", c.DatabaseURL)
	fmt.Printf("  temporal CLI      temporal workflow list --address %s\n", c.FrontendAddr)
	return nil
}

// bench starts the topology in dir (attached: it stops with this command), measures it
// (cluster.Bench) and stops it.
func bench(ctx context.Context, dir, name string) (err error) {
	bin, err := cluster.Build(ctx, dir)
	if err != nil {
		return err
	}
	c, err := cluster.Start(ctx, cluster.Options{
		Dir: dir, Name: name + "_bench", Servers: 2, Workers: 3, Postgres: "127.0.0.1:5432", User: "postgres",
		SimKnobs: cluster.BenchKnobs, Env: append([]string{"RELAY_LOG_LEVEL=warn"}, cluster.BenchEnv...), Bin: bin,
	})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, c.Stop(context.Background())) }()
	return cluster.Bench(ctx, c, os.Stdout)
}
