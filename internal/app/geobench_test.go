package app_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"relay/internal/app"
	"relay/internal/config"
	"relay/internal/sim"
	"relay/internal/store"
	"relay/internal/testenv"
)

func geoBenchEnv(b *testing.B, knobs string, opts ...testenv.Option) *testenv.Env {
	return testenv.Start(b, append([]testenv.Option{
		testenv.OnDisk(),
		testenv.WithLogger(slog.New(slog.NewJSONHandler(io.Discard, nil))),
		testenv.WithConfig(func(c *config.Config) {
			c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
			c.GeoIP.SubmitRate = 1e6
			c.SimKnobs = knobs
		}),
	}, opts...)...)
}

// openLoop offers rate submissions a second for d, each sent on schedule whatever the
// answers before it (no coordinated omission), and returns the latencies measured from
// each one's scheduled time, the accepted task ids, and the failures.
func openLoop(b *testing.B, env *testenv.Env, rate float64, d time.Duration, ipOf func(i int) string) ([]time.Duration, []string, int) {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 512, DisableCompression: true}}
	defer client.CloseIdleConnections()
	n := int(rate * d.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	lat := make([]time.Duration, n)
	ids := make([]string, n)
	failed := make([]bool, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(at))
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, env.BaseURL+"/event/submit/", strings.NewReader(`{"name":"load","status_code":200}`))
			req.Header.Set("X-Forwarded-For", ipOf(i))
			resp, err := client.Do(req)
			if err != nil {
				failed[i] = true
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			lat[i] = time.Since(at)
			if resp.StatusCode != http.StatusAccepted {
				failed[i] = true
				return
			}
			if _, rest, ok := strings.Cut(string(body), `"task_id":"`); ok {
				ids[i], _, _ = strings.Cut(rest, `"`)
			}
		})
	}
	wg.Wait()
	var okLat []time.Duration
	var okIDs []string
	nFailed := 0
	for i := range n {
		if failed[i] {
			nFailed++
			continue
		}
		okLat = append(okLat, lat[i])
		okIDs = append(okIDs, ids[i])
	}
	slices.Sort(okLat)
	return okLat, okIDs, nFailed
}

func mean(ds []time.Duration) time.Duration {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(max(len(ds), 1))
}

// distinctIP gives every i its own public address.
func distinctIP(i int) string { return fmt.Sprintf("11.%d.%d.%d", i>>16&255, i>>8&255, i&255) }

// checkNothingLost waits until every accepted event's workflow is started (the outbox is
// drained) and checks each accepted task id is stored.
func checkNothingLost(b *testing.B, env *testenv.Env, ids []string) time.Duration {
	start := time.Now()
	for {
		pending, err := env.Store.UndispatchedEvents(context.Background(), 1)
		if err != nil {
			b.Fatal(err)
		}
		if len(pending) == 0 {
			break
		}
		if time.Since(start) > 5*time.Minute {
			b.Fatal("outbox not drained after 5 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, id := range ids {
		if _, err := env.Store.Event(context.Background(), id); err != nil {
			b.Fatalf("accepted event %s: %v", id, err)
		}
	}
	return time.Since(start)
}

// BenchmarkSubmitLatency offers 100 submissions a second for 60 s while the geolocation
// API stalls 5 s on 20% of its calls:
//
//	go test ./internal/app -run '^$' -bench SubmitLatency -benchtime 1x -timeout 30m
func BenchmarkSubmitLatency(b *testing.B) {
	env := geoBenchEnv(b, "geoip:hiccup-rate=0.2,hiccup-delay=5s")
	for b.Loop() {
		lat, ids, failed := openLoop(b, env, 100, 60*time.Second, distinctIP)
		b.ReportMetric(ms(mean(lat)), "mean-ms")
		b.ReportMetric(ms(percentile(lat, 50)), "p50-ms")
		b.ReportMetric(ms(percentile(lat, 99)), "p99-ms")
		b.ReportMetric(float64(failed), "failed")
		b.ReportMetric(float64(len(ids)), "accepted")
		checkNothingLost(b, env, ids)
	}
}

// BenchmarkSubmitMaxRate steps the offered rate up, 20 s a step, and reports the highest
// at which the mean stays ≤ 200 ms with every submission accepted and stored:
//
//	go test ./internal/app -run '^$' -bench SubmitMaxRate -benchtime 1x -timeout 30m
func BenchmarkSubmitMaxRate(b *testing.B) {
	env := geoBenchEnv(b, "")
	best := 0.0
	for b.Loop() {
		for _, rate := range []float64{200, 400, 600, 800, 1000} {
			lat, ids, failed := openLoop(b, env, rate, 20*time.Second, func(i int) string { return distinctIP(int(rate)*100000 + i) })
			drain := checkNothingLost(b, env, ids)
			b.Logf("rate %4.0f/s: mean %6.1f ms, p99 %7.1f ms, failed %d, outbox drained %v after the step",
				rate, ms(mean(lat)), ms(percentile(lat, 99)), failed, drain.Round(time.Millisecond))
			if failed > 0 || mean(lat) > 200*time.Millisecond {
				break
			}
			best = rate
		}
	}
	b.ReportMetric(best, "max-sustained-submissions/s")
}

// BenchmarkGeoBudget keeps a backlog of distinct IPs and measures the geolocation API's
// use over 60 s, with one worker and with three:
//
//	go test ./internal/app -run '^$' -bench GeoBudget -benchtime 1x -timeout 30m
func BenchmarkGeoBudget(b *testing.B) {
	for _, workers := range []int{1, 3} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			env := geoBenchEnv(b, "")
			cfg := env.Config
			cfg.DatabaseURL = store.DefaultURL(cfg.DataDir)
			for range workers - 1 {
				w, err := app.Start(context.Background(), cfg, app.Worker, slog.New(slog.DiscardHandler))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = w.Stop(context.Background()) })
			}
			geo := env.Sims.Sim(sim.GeoIP)
			for b.Loop() {
				// A backlog far larger than 60 s of budget.
				_, _, failed := openLoop(b, env, 200, 3*time.Second, distinctIP)
				if failed > 0 {
					b.Fatalf("%d submissions failed", failed)
				}
				geo.ResetCalls()
				time.Sleep(60 * time.Second)
			}
			calls := geo.Calls()
			over, n429 := 0, 0
			perSecond := map[int64]int{}
			for _, c := range calls {
				perSecond[c.At.Unix()]++
				if c.Status == http.StatusTooManyRequests {
					n429++
				}
			}
			for _, n := range perSecond {
				if n > 5 {
					over++
				}
			}
			b.ReportMetric(float64(len(calls))/60, "calls/s")
			b.ReportMetric(float64(sim.MaxCallsPerWindow(calls, time.Second)), "busiest-sliding-second")
			b.ReportMetric(float64(over), "clock-seconds-over-5")
			b.ReportMetric(float64(n429), "429s")
		})
	}
}

// BenchmarkGeoRepeatedIPs submits 1,000 events of which 90% come from 10 IPs already
// seen, and reports how many events are located per second (the cache at work):
//
//	go test ./internal/app -run '^$' -bench GeoRepeatedIPs -benchtime 1x -timeout 30m
func BenchmarkGeoRepeatedIPs(b *testing.B) {
	env := geoBenchEnv(b, "")
	ip := func(i int) string {
		if i%10 == 0 {
			return distinctIP(i) // 10% new
		}
		return fmt.Sprintf("12.0.0.%d", i%10) // 90% among 9 repeated IPs
	}
	for b.Loop() {
		start := time.Now()
		_, ids, failed := openLoop(b, env, 200, 5*time.Second, ip)
		if failed > 0 {
			b.Fatalf("%d failed", failed)
		}
		deadline := time.Now().Add(5 * time.Minute)
		for {
			evs, _, err := env.Store.Events(context.Background(), store.EventFilter{State: store.EventPending, Limit: 1})
			if err != nil {
				b.Fatal(err)
			}
			if len(evs) == 0 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("events still pending")
			}
			time.Sleep(100 * time.Millisecond)
		}
		took := time.Since(start)
		b.ReportMetric(float64(len(ids))/took.Seconds(), "located/s")
		b.ReportMetric(float64(len(env.Sims.Sim(sim.GeoIP).Calls())), "geo-calls")
		b.ReportMetric(float64(len(ids)), "events")
	}
}
