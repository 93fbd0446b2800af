package app_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"relay/internal/app"
	"relay/internal/config"
	"relay/internal/relaytest"
	"relay/internal/store"
	"relay/internal/temporalserver"
	"relay/internal/testenv"

	"github.com/stretchr/testify/require"
)

// startDev runs app.Start for dev in memory and stops whatever started when the test ends.
// It is end-to-end: skipped under -short.
func startDev(t *testing.T, cfg config.Config) (*app.System, error) {
	t.Helper()
	testenv.EndToEnd(t)
	parts := app.Dev
	parts.InMemory = true
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sys, err := app.Start(ctx, cfg, parts, testenv.Logger(t))
	if err == nil {
		t.Cleanup(func() { _ = sys.Stop(context.Background()) })
	}
	return sys, err
}

// startWorkers runs n more worker processes' worth of relay beside env, each with its own
// connection to env's store file, stopped when the test ends.
func startWorkers(t *testing.T, env *relaytest.Env, n int) {
	t.Helper()
	cfg := env.Config
	cfg.DatabaseURL = store.DefaultURL(cfg.DataDir) // the file the first process uses
	for range n {
		w, err := app.Start(t.Context(), cfg, app.Worker, testenv.Logger(t))
		require.NoError(t, err)
		t.Cleanup(func() { _ = w.Stop(context.Background()) })
	}
}

// restartTemporal starts env's embedded Temporal server again on its address and data
// file, after the test stopped it (relaytest.OnDisk keeps the file).
func restartTemporal(t *testing.T, env *relaytest.Env, addr string) {
	t.Helper()
	back, err := temporalserver.Start(temporalserver.Options{
		FrontendAddr: addr,
		DatabaseFile: filepath.Join(env.Config.DataDir, "temporal.db"),
		Namespace:    env.Config.TemporalNamespace,
		Logger:       testenv.Logger(t),
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = back.Stop() })
}
