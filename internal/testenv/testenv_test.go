package testenv

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// fatalTB records Fatalf instead of ending the test, so that a failure can be inspected.
type fatalTB struct {
	testing.TB
	fatal string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) { f.fatal = fmt.Sprintf(format, args...) }

func TestWaitForReturnsOnceTheCheckPasses(t *testing.T) {
	calls := 0
	start := time.Now()
	WaitFor(t, time.Minute, func() error {
		calls++
		if calls < 4 {
			return Waitf("call %d", calls)
		}
		return nil
	})
	if calls != 4 {
		t.Errorf("check called %d times, want 4", calls)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("three short waits took %v", took)
	}
}

func TestWaitForFailsWithTheLastAnswer(t *testing.T) {
	f := &fatalTB{TB: t}
	calls := 0
	WaitFor(f, 30*time.Millisecond, func() error {
		calls++
		return Waitf("%d events still pending", 10-calls)
	})
	if calls < 2 {
		t.Errorf("check called %d times in 30 ms", calls)
	}
	want := fmt.Sprintf("still waiting after 30ms (%d checks): %d events still pending", calls, 10-calls)
	if f.fatal != want {
		t.Errorf("failure %q, want %q", f.fatal, want)
	}
}

func TestSyncBufferTakesConcurrentWrites(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				_, _ = b.Write([]byte("x"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if got := len(b.String()); got != 800 {
		t.Errorf("%d bytes, want 800", got)
	}
}

func TestFreeAddrCanBeBound(t *testing.T) {
	addr := FreeAddr(t)
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("FreeAddr = %q, want a loopback address", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	l.Close()
}

func TestLoggerWritesAtTheLevelAsked(t *testing.T) {
	t.Setenv("RELAY_TEST_LOG", "warn")
	l := Logger(t)
	if l.Enabled(t.Context(), slog.LevelDebug) || !l.Enabled(t.Context(), slog.LevelWarn) {
		t.Error("RELAY_TEST_LOG=warn: want warnings, not debug")
	}
	l.Warn("a line for the test log")

	t.Setenv("RELAY_TEST_LOG", "")
	if Logger(t).Enabled(t.Context(), slog.LevelError) {
		t.Error("without RELAY_TEST_LOG the logger discards")
	}
}
