// Package relaytest starts the whole of relay inside a test: the embedded Temporal server
// (in memory), the simulators, the worker and the HTTP API, on free loopback ports, and
// stops them when the test ends. Every test that uses it is end-to-end: it is skipped
// under go test -short.
package relaytest

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"relay/internal/app"
	"relay/internal/config"
	"relay/internal/payloadcodec"
	"relay/internal/testenv"
)

// Env is a running relay for one test.
type Env struct {
	*app.System
	// BaseURL is the HTTP API's root, like http://127.0.0.1:41234.
	BaseURL string
	// HTTP is a client for the API with a timeout, so that a hung call fails the test.
	HTTP *http.Client
}

// Option changes how the environment starts.
type Option func(*setup)

type setup struct {
	cfg    config.Config
	parts  app.Parts
	logger *slog.Logger
}

// WithConfig lets a test set anything, e.g. API keys or simulator knobs.
func WithConfig(f func(*config.Config)) Option {
	return func(s *setup) { f(&s.cfg) }
}

// WithLogger sends relay's logs to l instead of the test log (benchmarks use it to pay
// for formatting log lines, as a real process does).
func WithLogger(l *slog.Logger) Option {
	return func(s *setup) { s.logger = l }
}

// WithoutWorker starts everything but the Temporal worker, for tests that run (and kill)
// workers of their own.
func WithoutWorker() Option {
	return func(s *setup) { s.parts.Worker = false }
}

// OnDisk keeps the embedded server's history in a SQLite file, exactly as `relay dev`
// does, instead of in memory.
func OnDisk() Option {
	return func(s *setup) { s.parts.InMemory = false }
}

// Start brings relay up and registers its stop with tb.Cleanup. Logs go to the test log
// when RELAY_TEST_LOG is set (e.g. RELAY_TEST_LOG=debug), otherwise nowhere.
func Start(tb testing.TB, opts ...Option) *Env {
	tb.Helper()
	testenv.EndToEnd(tb)
	s := setup{cfg: config.Default(), parts: app.Dev}
	s.cfg.HTTPAddr = "127.0.0.1:0"
	s.cfg.TemporalListen = "127.0.0.1:0"
	s.cfg.UIAddr = ""
	s.cfg.DataDir = tb.TempDir()
	// No scheduled outage sync unless a test asks (its hourly tick, on the hour, would
	// join or refuse a test's own sync of the default site).
	s.cfg.KF.SyncInterval = 0
	// Encrypted as in production, with the key the recorded histories use, so that a
	// history a test records replays (workflows/testdata); dev makes the workflow id key.
	s.cfg.PayloadKeys = payloadcodec.RecordingKeys
	s.parts.InMemory = true
	for _, o := range opts {
		o(&s)
	}
	if s.logger == nil {
		s.logger = testenv.Logger(tb)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sys, err := app.Start(ctx, s.cfg, s.parts, s.logger)
	if err != nil {
		tb.Fatalf("relaytest: start relay: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := sys.Stop(ctx); err != nil {
			tb.Errorf("relaytest: stop relay: %v", err)
		}
	})
	return &Env{System: sys, BaseURL: "http://" + sys.HTTPAddr, HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// Do sends a request to the API and returns the response with its body read.
func (e *Env) Do(tb testing.TB, method, path string, body io.Reader, header ...string) (*http.Response, []byte) {
	tb.Helper()
	req, err := http.NewRequest(method, e.BaseURL+path, body)
	if err != nil {
		tb.Fatalf("request %s %s: %v", method, path, err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.HTTP.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, b
}
