package app_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"relay/internal/config"
	"relay/internal/sim"
	"relay/internal/testenv"
)

// load drives url from conns keep-alive connections for d and returns requests/s and the
// sorted latencies. Every connection is its own client, as 64 separate callers would be.
func load(tb testing.TB, url string, conns int, d time.Duration) (float64, []time.Duration) {
	tb.Helper()
	var mu sync.Mutex
	var all []time.Duration
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for range conns {
		wg.Go(func() {
			// DisableCompression: Go's client would otherwise ask for gzip and unpack it,
			// measuring the client's decompression instead of the server.
			c := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, DisableCompression: true}}
			defer c.CloseIdleConnections()
			var lat []time.Duration
			for time.Now().Before(stop) {
				start := time.Now()
				resp, err := c.Get(url)
				if err != nil {
					tb.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					tb.Errorf("%s: %d", url, resp.StatusCode)
					return
				}
				lat = append(lat, time.Since(start))
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(all)
	return float64(len(all)) / d.Seconds(), all
}

// BenchmarkEventCacheHit serves one cached event from relay (the whole middleware stack,
// access log formatted as JSON) and the same bytes from a bare gin handler, side by side,
// 64 connections on loopback, in alternating rounds:
//
//	go test ./internal/app -run '^$' -bench EventCacheHit -benchtime 1x
func BenchmarkEventCacheHit(b *testing.B) {
	env := testenv.Start(b, testenv.WithLogger(slog.New(slog.NewJSONHandler(io.Discard, nil))))
	relayURL := env.BaseURL + "/events-with-subscriptions/" + sim.C42EventTeamSync
	resp, err := http.Get(relayURL) // warm the cache
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("warm-up: %v %v", resp, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	bareURL := serveBare(b, "/events-with-subscriptions/"+sim.C42EventTeamSync, body)
	sideBySide(b, bareURL, relayURL, 3, nil).report(b)
}

// BenchmarkEventCacheMiss asks for events nobody asked for before, one after another,
// with the calendar simulator answering each call in 50 ms; every request runs the merge
// workflow (event and first page fetched at once):
//
//	go test ./internal/app -run '^$' -bench EventCacheMiss -benchtime 200x
func BenchmarkEventCacheMiss(b *testing.B) {
	env := testenv.Start(b, testenv.OnDisk(), testenv.WithConfig(func(c *config.Config) {
		c.SimKnobs = "c42:latency=50ms,size=2000"
	}))
	ids := env.Sims.Sim(sim.C42).Routes().(*sim.C42API).EventIDs()
	get := func(id string) time.Duration {
		start := time.Now()
		resp, err := env.HTTP.Get(env.BaseURL + "/events-with-subscriptions/" + id)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Cache") != "MISS" {
			b.Fatalf("%s: %d %s", id, resp.StatusCode, resp.Header.Get("X-Cache"))
		}
		return time.Since(start)
	}
	for _, id := range ids[len(ids)-10:] { // warm up on ids the loop will not use
		get(id)
	}
	var lat []time.Duration
	i := 0
	for b.Loop() {
		if i >= len(ids)-10 {
			b.Fatal("more iterations than events")
		}
		lat = append(lat, get(ids[i]))
		i++
	}
	slices.Sort(lat)
	b.ReportMetric(ms(percentile(lat, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(lat, 99)), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// benchConns and benchRound shape the side-by-side runs: 64 keep-alive connections, rounds
// of 3 s after a warm-up second each.
const (
	benchConns = 64
	benchRound = 3 * time.Second
)

// serveBare serves body at path from a bare gin.New() on loopback: the ceiling relay is
// measured against. It returns the URL.
func serveBare(b *testing.B, path string, body []byte) string {
	b.Helper()
	bare := gin.New()
	bare.GET(path, func(c *gin.Context) { c.Data(http.StatusOK, "application/json; charset=utf-8", body) })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: bare}
	go srv.Serve(l)
	b.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return "http://" + l.Addr().String() + path
}

type sideBySideResult struct {
	bareRPS, relayRPS float64
	bareLat, relayLat []time.Duration
}

// sideBySide loads bare and relay in alternating rounds; also, if set, runs after each
// pair of rounds (for a third variant).
func sideBySide(b *testing.B, bareURL, relayURL string, rounds int, also func()) sideBySideResult {
	var r sideBySideResult
	for b.Loop() {
		load(b, bareURL, benchConns, time.Second) // warm both
		load(b, relayURL, benchConns, time.Second)
		for range rounds {
			rps, lat := load(b, bareURL, benchConns, benchRound)
			r.bareRPS += rps / float64(rounds)
			r.bareLat = append(r.bareLat, lat...)
			rps, lat = load(b, relayURL, benchConns, benchRound)
			r.relayRPS += rps / float64(rounds)
			r.relayLat = append(r.relayLat, lat...)
			if also != nil {
				also()
			}
		}
	}
	slices.Sort(r.bareLat)
	slices.Sort(r.relayLat)
	return r
}

func (r sideBySideResult) report(b *testing.B) {
	b.ReportMetric(r.relayRPS, "relay-req/s")
	b.ReportMetric(r.bareRPS, "bare-req/s")
	b.ReportMetric(r.relayRPS/r.bareRPS*100, "throughput-%-of-bare")
	b.ReportMetric(ms(percentile(r.relayLat, 50)), "relay-p50-ms")
	b.ReportMetric(ms(percentile(r.bareLat, 50)), "bare-p50-ms")
	b.ReportMetric(ms(percentile(r.relayLat, 99)), "relay-p99-ms")
	b.ReportMetric(ms(percentile(r.bareLat, 99)), "bare-p99-ms")
	b.ReportMetric(float64(percentile(r.relayLat, 99))/float64(percentile(r.bareLat, 99)), "p99-ratio")
}
