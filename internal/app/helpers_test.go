package app_test

import (
	"context"
	"testing"
	"time"

	"relay/internal/app"
	"relay/internal/config"
	"relay/internal/testenv"
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
