package app_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"relay/internal/bench"
	"relay/internal/bench/scenarios"
	"relay/internal/relaytest"
	"relay/internal/sim"
	"relay/internal/store"
	"relay/internal/testenv"
)

// The geolocation benchmarks that `relay bench` does not run (it runs submit-latency and
// geo-rate); they use its load generator and requests.

func geoBenchEnv(b *testing.B) *relaytest.Env {
	return relaytest.Start(b, relaytest.OnDisk(),
		relaytest.WithLogger(slog.New(slog.NewJSONHandler(io.Discard, nil))),
		relaytest.WithConfig(scenarios.BehindLoopbackProxy))
}

// BenchmarkSubmitMaxRate steps the offered rate up, 20 s a step, and reports the highest
// at which the mean stays ≤ 200 ms with every submission accepted and stored:
//
//	go test ./internal/app -run '^$' -bench SubmitMaxRate -benchtime 1x -timeout 30m -v
func BenchmarkSubmitMaxRate(b *testing.B) {
	env := geoBenchEnv(b)
	ctx := context.Background()
	best := 0.0
	for b.Loop() {
		for step, rate := range []float64{200, 400, 600, 800, 1000} {
			rec, ids := bench.NewRecorder(), &scenarios.TaskIDs{}
			ipOf := func(i int) string { return scenarios.DistinctIP(step<<20 | i) }
			load := bench.OpenLoop{Rate: rate, Duration: 20 * time.Second}
			if err := load.Run(ctx, rec, scenarios.Submit("submit", env.BaseURL, ipOf, ids)); err != nil {
				b.Fatal(err)
			}
			drained, err := scenarios.WaitDispatched(ctx, env.Store, ids.All())
			if err != nil {
				b.Fatal(err)
			}
			s := rec.Summary("submit")
			b.Logf("rate %4.0f/s: mean %6.1f ms, p99 %7.1f ms, failed %d, outbox drained %v after the step",
				rate, s.MeanMS, s.P99MS, s.Errors, drained.Round(time.Millisecond))
			if s.Errors > 0 || s.MeanMS > 200 {
				break
			}
			best = rate
		}
	}
	b.ReportMetric(best, "max-sustained-submissions/s")
}

// BenchmarkGeoRepeatedIPs submits 1,000 events of which 90% come from 9 IPs seen again
// and again, and reports how many events are located per second (the cache at work):
//
//	go test ./internal/app -run '^$' -bench GeoRepeatedIPs -benchtime 1x -timeout 30m
func BenchmarkGeoRepeatedIPs(b *testing.B) {
	env := geoBenchEnv(b)
	ctx := context.Background()
	ip := func(i int) string {
		if i%10 == 0 {
			return scenarios.DistinctIP(i) // 10% new
		}
		return fmt.Sprintf("12.0.0.%d", i%10) // 90% among 9 repeated IPs
	}
	for b.Loop() {
		start := time.Now()
		rec, ids := bench.NewRecorder(), &scenarios.TaskIDs{}
		if err := (bench.OpenLoop{Rate: 200, Duration: 5 * time.Second}).Run(ctx, rec, scenarios.Submit("submit", env.BaseURL, ip, ids)); err != nil {
			b.Fatal(err)
		}
		if err := rec.Err(); err != nil {
			b.Fatal(err)
		}
		testenv.WaitFor(b, 5*time.Minute, func() error {
			evs, _, err := env.Store.Events(ctx, store.EventFilter{State: store.EventPending, Limit: 1})
			if err != nil {
				b.Fatal(err)
			}
			if len(evs) > 0 {
				return testenv.Waitf("events still pending, among them %s", evs[0].TaskID)
			}
			return nil
		})
		took := time.Since(start)
		b.ReportMetric(float64(len(ids.All()))/took.Seconds(), "located/s")
		b.ReportMetric(float64(len(env.Sims.Sim(sim.GeoIP).Calls())), "geo-calls")
		b.ReportMetric(float64(len(ids.All())), "events")
	}
}
