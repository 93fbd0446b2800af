package scenarios

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"relay/internal/app"
	"relay/internal/bench"
	"relay/internal/sim"
)

// upstreamLatency is how long the calendar API takes to answer in both merge scenarios.
const upstreamLatency = 50 * time.Millisecond

var mergeHit = bench.Scenario{
	Name:  "merge-hit",
	About: "cached GET /events-with-subscriptions/{id}: 64 connections, and one client",
	Baseline: "a bare gin handler returning the same bytes (64 connections, alternating rounds); " +
		"the calendar API's own latency, 50 ms (one client)",
	Run: runMergeHit,
}

func runMergeHit(ctx context.Context, c *bench.Case) error {
	r, err := startDev(ctx, c, fmt.Sprintf("c42:latency=%s", upstreamLatency))
	if err != nil {
		return err
	}
	defer r.Close()
	ids := []string{sim.C42EventTeamSync}
	resp, body, err := call(ctx, http.MethodGet, r.URL+"/events-with-subscriptions/"+ids[0]) // fills the cache
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("first GET: %d %.200s", resp.StatusCode, body)
	}
	bareURL, stopBare, err := bench.ServeBytes("/events-with-subscriptions/"+ids[0], body)
	if err != nil {
		return err
	}
	defer stopBare()

	load, rounds, hits, upstreamCalls := bench.ClosedLoop{Conns: 64, Duration: 3 * time.Second, Warmup: time.Second}, 3, 2000, 100
	if c.Smoke {
		load, rounds, hits, upstreamCalls = bench.ClosedLoop{Conns: 64, Duration: 300 * time.Millisecond, Warmup: 100 * time.Millisecond}, 1, 50, 5
	}
	const bare, many, one, upstream = "bare gin, 64 connections", "relay, 64 connections", "relay, one client", "calendar API, one client"
	rec := bench.NewRecorder()
	if err := bench.SideBySide(ctx, load, rounds, rec, bench.Get(bare, bareURL), EventGet(many, r.URL, ids, "HIT")); err != nil {
		return err
	}
	if err := (bench.ClosedLoop{Conns: 1, Requests: hits}).Run(ctx, rec, EventGet(one, r.URL, ids, "HIT")); err != nil {
		return err
	}
	if err := (bench.ClosedLoop{Conns: 1, Requests: upstreamCalls}).Run(ctx, rec, calendarEventGet(upstream, r, ids)); err != nil {
		return err
	}
	if err := rec.Err(); err != nil {
		return err
	}
	b, m, o, u := rec.Summary(bare), rec.Summary(many), rec.Summary(one), rec.Summary(upstream)
	c.Add("throughput, 64 connections", "req/s", m.PerSecond).Vs(b.PerSecond).Want(bench.RatioAtLeast(0.7))
	c.Add("p99, 64 connections", "ms", m.P99MS).Vs(b.P99MS).Want(bench.RatioAtMost(1.5))
	c.Add("p50, one client", "ms", o.P50MS).Vs(u.P50MS)
	c.Add("p99, one client", "ms", o.P99MS).Vs(u.P99MS)
	for _, series := range []string{bare, many, one, upstream} {
		c.Latency(series, rec, series)
	}
	return nil
}

// calendarEventGet asks the calendar simulator itself for the i-th of ids (cycling), with
// relay's token: the upstream's own latency.
func calendarEventGet(route string, r *Relay, ids []string) bench.Request {
	return bench.Request{Route: route, New: func(ctx context.Context, i int) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.Config.C42.URL+"/api/v2/events/"+ids[i%len(ids)]+"/", nil)
		if err == nil {
			req.Header.Set("Authorization", "Token "+r.Config.C42.Token)
		}
		return req, err
	}}
}

var mergeMiss = bench.Scenario{
	Name:     "merge-miss",
	About:    "GET /events-with-subscriptions/{id} of events nobody asked for before, one after another, the calendar API answering in 50 ms",
	Baseline: "the calendar API's own latency: the same events fetched from it directly, one after another",
	Run:      runMergeMiss,
}

func runMergeMiss(ctx context.Context, c *bench.Case) error {
	r, err := startDev(ctx, c, fmt.Sprintf("c42:latency=%s,size=2000", upstreamLatency))
	if err != nil {
		return err
	}
	defer r.Close()
	ids := r.Sims.Sim(sim.C42).Routes().(*sim.C42API).EventIDs()
	n, warm := 200, 10
	if c.Smoke {
		n, warm = 5, 2
	}
	if len(ids) < n+warm {
		return fmt.Errorf("the calendar simulator has %d events, want %d", len(ids), n+warm)
	}
	// Warm up on events the measurement will not ask for: each must be a miss.
	if err := (bench.ClosedLoop{Conns: 1, Requests: warm}).Run(ctx, bench.NewRecorder(), EventGet("", r.URL, ids[n:n+warm], "MISS")); err != nil {
		return err
	}
	const miss, upstream = "relay, cache miss", "calendar API"
	rec := bench.NewRecorder()
	if err := (bench.ClosedLoop{Conns: 1, Requests: n}).Run(ctx, rec, EventGet(miss, r.URL, ids[:n], "MISS")); err != nil {
		return err
	}
	if err := (bench.ClosedLoop{Conns: 1, Requests: n}).Run(ctx, rec, calendarEventGet(upstream, r, ids[:n])); err != nil {
		return err
	}
	const floor, floorWaiting = "Temporal alone: a new run answers at once", "Temporal alone: a new run answers after a 50 ms local activity"
	if err := measureUpdateFloor(ctx, r, rec, floor, n, 0); err != nil {
		return err
	}
	if err := measureUpdateFloor(ctx, r, rec, floorWaiting, n, upstreamLatency); err != nil {
		return err
	}
	if err := rec.Err(); err != nil {
		return err
	}
	m, u := rec.Summary(miss), rec.Summary(upstream)
	c.Add("p50, end to end", "ms", m.P50MS).Vs(u.P50MS).Want(bench.AtMost(80))
	c.Add("p99, end to end", "ms", m.P99MS).Vs(u.P99MS)
	// Issue 14: misses at most 10 ms above the upstream in relay dev (21 ms before).
	c.Add("p50 above the upstream's", "ms", m.P50MS-u.P50MS).Want(bench.AtMost(10))
	// The floor under that: Temporal's own part of any answer fetched inside a workflow.
	c.Add("p50, Update-with-Start of a run that answers at once", "ms", rec.Summary(floor).P50MS)
	c.Add("p50 above 50 ms, Update-with-Start of a run that waits 50 ms first", "ms",
		rec.Summary(floorWaiting).P50MS-float64(upstreamLatency)/float64(time.Millisecond))
	c.Latency(miss, rec, miss)
	c.Latency(upstream, rec, upstream)
	return nil
}

var mergeTwoServers = bench.Scenario{
	Name: "merge-two-servers",
	About: "200 events nobody asked for before, each asked on one relay server, then on a second one (same Temporal, " +
		"same calendar API answering in 50 ms): calendar API calls per event, and the second server's latency",
	Baseline: "the first server's misses",
	Run:      runMergeTwoServers,
}

func runMergeTwoServers(ctx context.Context, c *bench.Case) error {
	r, err := startDev(ctx, c, fmt.Sprintf("c42:latency=%s,size=2000", upstreamLatency))
	if err != nil {
		return err
	}
	defer r.Close()
	cfg := r.Config
	cfg.HTTPAddr = "127.0.0.1:0"
	second, err := app.Start(ctx, cfg, app.Server, c.Logger)
	if err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = second.Stop(stopCtx)
	}()
	c42 := r.Sims.Sim(sim.C42)
	ids := c42.Routes().(*sim.C42API).EventIDs()
	n := 200
	if c.Smoke {
		n = 5
	}
	if len(ids) < n {
		return fmt.Errorf("the calendar simulator has %d events, want %d", len(ids), n)
	}
	const first, again = "first server, miss", "second server, answered by the workflow"
	rec := bench.NewRecorder()
	before := c42.CallCount("/api/v2/events/")
	for i := range n {
		if err := (bench.ClosedLoop{Conns: 1, Requests: 1}).Run(ctx, rec, EventGet(first, r.URL, ids[i:i+1], "MISS")); err != nil {
			return err
		}
		if err := (bench.ClosedLoop{Conns: 1, Requests: 1}).Run(ctx, rec, EventGet(again, "http://"+second.HTTPAddr, ids[i:i+1], "HIT")); err != nil {
			return err
		}
	}
	if err := rec.Err(); err != nil {
		return err
	}
	calls := float64(c42.CallCount("/api/v2/events/")-before) / float64(n)
	c.Add("calendar API calls per event, two servers", "calls", calls).Want(bench.AtMost(1))
	f, a := rec.Summary(first), rec.Summary(again)
	c.Add("p50, second server's first ask", "ms", a.P50MS).Vs(f.P50MS)
	c.Add("p99, second server's first ask", "ms", a.P99MS).Vs(f.P99MS)
	c.Latency(first, rec, first)
	c.Latency(again, rec, again)
	return nil
}
