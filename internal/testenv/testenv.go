// Package testenv holds the small helpers every package's tests share: a buffer safe to
// write from other goroutines, a free loopback address, a poll with a deadline, a logger
// into the test log, and the -short switch of end-to-end tests. It imports nothing of
// relay's, so that a unit test linking it stays small (relaytest starts a whole relay).
package testenv

import (
	"bytes"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// SyncBuffer is a bytes.Buffer that goroutines of the code under test may write while the
// test reads it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// FreeAddr is a loopback host:port that was free a moment ago. Another process may take
// it before the caller binds it: use it only where the address must be known beforehand.
// It is chosen below the kernel's ephemeral range (32768 and up on Linux), which every
// outgoing connection and every ":0" listener of the other tests draws from: CI once saw
// a port from ":0" taken by another test's connection before relay dev could bind it.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	for range 100 {
		port := fixedPortLow + rand.IntN(fixedPortHigh-fixedPortLow)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			addr := l.Addr().String()
			l.Close()
			return addr
		}
	}
	tb.Fatalf("testenv: no free port in [%d, %d) after 100 tries", fixedPortLow, fixedPortHigh)
	return ""
}

// The ports FreeAddr picks from: above the well-known services, below the ephemeral range.
const (
	fixedPortLow  = 20000
	fixedPortHigh = 32000
)

// WaitFor asks again after firstPoll, then twice as long each time up to maxPoll: a
// condition met at once is seen within milliseconds, a long wait costs few checks.
const (
	firstPoll = 10 * time.Millisecond
	maxPoll   = 250 * time.Millisecond
)

// WaitFor asks check until it returns nil, and fails the test when within has passed,
// with the last answer of check: an error that says what is still missing. check runs on
// the test's goroutine, so it may fail the test itself (t.Fatal, require).
func WaitFor(tb testing.TB, within time.Duration, check func() error) {
	tb.Helper()
	start := time.Now()
	for wait, checks := firstPoll, 1; ; wait, checks = min(2*wait, maxPoll), checks+1 {
		err := check()
		if err == nil {
			return
		}
		if time.Since(start) >= within {
			tb.Fatalf("still waiting after %s (%d checks): %v", within, checks, err)
			return // a TB whose Fatalf returns
		}
		time.Sleep(wait)
	}
}

// Waitf is a WaitFor check's answer: not there yet, and why.
func Waitf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// EndToEnd skips tb under `go test -short`, saying so: end-to-end tests start a Temporal
// server, processes or a browser, and the everyday loop runs only unit and handler tests.
func EndToEnd(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("end-to-end: skipped under -short (run go test without -short for the full suite)")
	}
}

// Logger writes to the test's log at the level RELAY_TEST_LOG names, or discards.
// Goroutines that outlive the test may go on logging: their lines are dropped.
func Logger(tb testing.TB) *slog.Logger {
	tb.Helper()
	level := os.Getenv("RELAY_TEST_LOG")
	if level == "" {
		return slog.New(slog.DiscardHandler)
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		tb.Fatalf("RELAY_TEST_LOG=%q: %v", level, err)
	}
	w := &testWriter{tb: tb}
	tb.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// testWriter logs each line into the test until the test ends: t.Log after that panics.
// The lock makes the end a clean cut, not a check a late line could slip past.
type testWriter struct {
	tb   testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.tb.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
}
