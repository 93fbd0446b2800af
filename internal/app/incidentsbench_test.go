package app_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"relay/internal/config"
	"relay/internal/incidents"
	"relay/internal/testenv"
	"relay/workflows"
)

// BenchmarkIncidentsGet serves GET /incidents from relay and the same pre-encoded bytes
// from a bare gin handler (the ceiling), side by side, 64 connections on loopback, at three
// sizes; and relay with Accept-Encoding: gzip (pre-compressed bytes):
//
//	go test ./internal/app -run '^$' -bench IncidentsGet -benchtime 1x
func BenchmarkIncidentsGet(b *testing.B) {
	for _, size := range []int{1_000, 10_000, 100_000} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			env := testenv.Start(b, testenv.WithLogger(slog.New(slog.NewJSONHandler(io.Discard, nil))),
				testenv.WithConfig(func(c *config.Config) { c.SimKnobs = fmt.Sprintf("incidents:size=%d", size) }))
			url := env.BaseURL + "/incidents"
			deadline := time.Now().Add(2 * time.Minute)
			var body []byte
			for {
				resp, b2 := env.Do(b, http.MethodGet, "/incidents", nil)
				if resp.StatusCode == http.StatusOK {
					body = b2
					break
				}
				if time.Now().After(deadline) {
					b.Fatal("no snapshot")
				}
				time.Sleep(100 * time.Millisecond)
			}
			bareURL := serveBare(b, "/incidents", body)
			const rounds = 2
			var gzipRPS float64
			r := sideBySide(b, bareURL, url, rounds, func() {
				rps, _ := loadGzip(b, url, benchConns, benchRound)
				gzipRPS += rps / rounds
			})
			r.report(b)
			b.ReportMetric(float64(len(body))/1e6, "MB-body")
			b.ReportMetric(gzipRPS, "gzip-req/s")
			b.ReportMetric(gzipRPS/r.bareRPS, "gzip-x-bare")
		})
	}
}

// loadGzip is load with Accept-Encoding: gzip set by hand, so that the client keeps the
// compressed bytes (as a browser or curl --compressed would, minus decompressing).
func loadGzip(tb testing.TB, url string, conns int, d time.Duration) (float64, int64) {
	var n atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for range conns {
		wg.Go(func() {
			c := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}}
			defer c.CloseIdleConnections()
			for time.Now().Before(stop) {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Header.Set("Accept-Encoding", "gzip")
				resp, err := c.Do(req)
				if err != nil {
					tb.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.Header.Get("Content-Encoding") != "gzip" {
					tb.Error("not gzip")
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(n.Load()) / d.Seconds(), n.Load()
}

// BenchmarkIncidentsRefresh100k times a refresh of 100,000 incidents with the simulator
// answering each endpoint in 2 s, against the baseline of fetching the eight endpoints
// one after another in the same run; it reports the peak heap while the refresh runs and
// the largest payload in the workflow's history:
//
//	go test ./internal/app -run '^$' -bench IncidentsRefresh100k -benchtime 3x
func BenchmarkIncidentsRefresh100k(b *testing.B) {
	env := testenv.Start(b, testenv.OnDisk(), testenv.WithConfig(func(c *config.Config) {
		c.SimKnobs = "incidents:size=100000,latency=2s"
	}))
	ctx := context.Background()
	waitFor := func(id, runID string) workflows.AggregateIncidentsResult {
		var res workflows.AggregateIncidentsResult
		if err := env.Client.GetWorkflow(ctx, id, runID).Get(ctx, &res); err != nil {
			b.Fatal(err)
		}
		return res
	}

	// Baseline: the old script's way, one endpoint after another.
	seqStart := time.Now()
	for _, path := range append([]string{"/identities"}, prefixed("/incidents/", incidents.Types)...) {
		req, _ := http.NewRequest(http.MethodGet, env.Config.Incidents.URL+path, nil)
		req.SetBasicAuth(env.Config.Incidents.User, env.Config.Incidents.Password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	sequential := time.Since(seqStart)

	var took []time.Duration
	var peakHeap uint64
	var largest int
	var res workflows.AggregateIncidentsResult
	for b.Loop() {
		stopSampling := sampleHeap(&peakHeap)
		start := time.Now()
		resp, body := env.Do(b, http.MethodPost, "/incidents/refresh", nil)
		if resp.StatusCode != http.StatusAccepted {
			b.Fatalf("refresh: %d %s", resp.StatusCode, body)
		}
		id := strings.Split(strings.Split(string(body), `"workflow_id":"`)[1], `"`)[0]
		res = waitFor(id, "")
		took = append(took, time.Since(start))
		stopSampling()
		if l := largestPayload(b, env, id); l > largest {
			largest = l
		}
	}
	if res.Summary.Incidents+res.Summary.Unattributed != 100_000 {
		b.Fatalf("summary %+v", res.Summary)
	}
	slices.Sort(took)
	b.ReportMetric(took[len(took)/2].Seconds(), "median-s/refresh")
	b.ReportMetric(sequential.Seconds(), "sequential-fetch-s")
	b.ReportMetric(float64(peakHeap)/1e6, "peak-heap-MB")
	b.ReportMetric(float64(vmHWM())/1e6, "process-peak-RSS-MB")
	b.ReportMetric(float64(largest)/1024, "largest-payload-KiB")
	b.ReportMetric(float64(res.Bytes)/1e6, "snapshot-MB")
}

func prefixed(prefix string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = prefix + n + "/"
	}
	return out
}

// sampleHeap records the largest live heap until the returned stop is called.
func sampleHeap(peak *uint64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > *peak {
				*peak = m.HeapAlloc
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// vmHWM is the process's peak resident memory (everything in the test process: the
// embedded Temporal server, the simulator, the worker and the API).
func vmHWM() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// largestPayload is the largest event of a workflow's history, in bytes.
func largestPayload(tb testing.TB, env *testenv.Env, workflowID string) int {
	it := env.Client.GetWorkflowHistory(context.Background(), workflowID, "", false, 0)
	largest := 0
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			tb.Fatal(err)
		}
		if n := proto.Size(ev); n > largest {
			largest = n
		}
	}
	return largest
}
