package scenarios

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sync"
	"time"

	"relay/activities"
	"relay/internal/app"
	"relay/internal/bench"
	"relay/internal/config"
	"relay/internal/sim"
	"relay/internal/store"
	"relay/worker"
)

var submitLatency = bench.Scenario{
	Name:     "submit-latency",
	About:    "POST /event/submit/ offered open-loop at 100/s for 60 s, each event from its own IP, while the geo API stalls up to 5 s on 20% of calls",
	Baseline: "the same load with the geo API answering at once",
	Run:      runSubmitLatency,
}

func runSubmitLatency(ctx context.Context, c *bench.Case) error {
	load, stall := bench.OpenLoop{Rate: 100, Duration: 60 * time.Second}, 5*time.Second
	if c.Smoke {
		load, stall = bench.OpenLoop{Rate: 20, Duration: 2 * time.Second}, time.Second
	}
	const stalls, calm = "relay, geo API stalling", "relay, geo API calm"
	rec := bench.NewRecorder()
	lost := map[string]int{}
	for _, phase := range []struct{ route, knobs string }{
		{stalls, fmt.Sprintf("geoip:hiccup-rate=0.2,hiccup-delay=%s", stall)},
		{calm, ""},
	} {
		r, err := startDev(ctx, c, phase.knobs, BehindLoopbackProxy)
		if err != nil {
			return err
		}
		ids := &TaskIDs{}
		err = load.Run(ctx, rec, Submit(phase.route, r.URL, DistinctIP, ids))
		if err == nil {
			var drained time.Duration
			drained, err = WaitDispatched(ctx, r.Store, ids.All())
			c.Logf("%s: %d accepted, every workflow started %v after the load", phase.route, len(ids.All()), drained.Round(time.Millisecond))
		}
		lost[phase.route] = int(load.Rate*load.Duration.Seconds()) - len(ids.All())
		r.Close()
		if err != nil {
			return err
		}
	}
	s, b := rec.Summary(stalls), rec.Summary(calm)
	if s.Requests == 0 || b.Requests == 0 {
		return fmt.Errorf("no submission accepted: %v", rec.Err())
	}
	c.Add("mean", "ms", s.MeanMS).Vs(b.MeanMS).Want(bench.AtMost(20))
	c.Add("p50", "ms", s.P50MS).Vs(b.P50MS)
	c.Add("p99", "ms", s.P99MS).Vs(b.P99MS).Want(bench.AtMost(50))
	c.Add("submissions not accepted", "", float64(lost[stalls])).Vs(float64(lost[calm])).Want(bench.AtMost(0))
	c.Latency(stalls, rec, stalls)
	c.Latency(calm, rec, calm)
	return nil
}

var geoRate = bench.Scenario{
	Name:  "geo-rate",
	About: "the geo API's calls per second while a backlog of distinct IPs waits: one, three and twelve workers",
	Baseline: "the task-queue rate limit alone: relay's worker with GEOIP_RATE_LIMIT on the relay-geoip queue " +
		"but the store's limiter opened wide",
	Run: runGeoRate,
}

// geoPhase is one way of running the geo workers, measured alike.
type geoPhase struct {
	label, file string
	workers     int  // relay workers, each with its own connection to the store
	limiter     bool // false: the task-queue limit alone
}

func runGeoRate(ctx context.Context, c *bench.Case) error {
	backlog, window := bench.OpenLoop{Rate: 200, Duration: 3 * time.Second}, 60*time.Second
	if c.Smoke {
		backlog, window = bench.OpenLoop{Rate: 30, Duration: time.Second}, 3*time.Second
	}
	phases := []geoPhase{
		{"relay, one worker", "one-worker", 1, true},
		{"relay, three workers", "three-workers", 3, true},
		{"relay, twelve workers", "twelve-workers", 12, true},
		{"the task-queue limit alone", "task-queue-limit", 1, false},
	}
	limit := config.Default().GeoIP.RateLimit
	results := map[string]geoCalls{}
	busiest := 0.0
	for _, phase := range phases {
		res, err := runGeoPhase(ctx, c, phase, backlog, window)
		if err != nil {
			return fmt.Errorf("%s: %w", phase.label, err)
		}
		results[phase.label] = res
		for _, p := range res.perSecond {
			busiest = max(busiest, p.Y)
		}
	}
	// A chart for each phase, on one scale: the lines would hide each other on one chart.
	for _, phase := range phases {
		c.Chart("calls-"+phase.file, bench.Chart{
			Title:  "geo-rate, " + phase.label + ": calls to the geo API per second",
			XLabel: "seconds since the first submission (a backlog submitted in the first " + backlog.Duration.String() + ")",
			YLabel: "calls in that second", YMax: busiest + 1,
			Series: []bench.Series{{Label: phase.label, Points: results[phase.label].perSecond, Step: true}},
			Lines:  []bench.Line{{Y: limit, Label: fmt.Sprintf("the API's limit: %g calls/s", limit)}},
		})
	}
	one, three, twelve, base := results[phases[0].label], results[phases[1].label], results[phases[2].label], results[phases[3].label]
	c.Add("calls/s sustained, one worker", "calls/s", one.sustained).Vs(base.sustained).Want(bench.AtLeast(0.9 * limit))
	c.Add("busiest sliding second, one worker", "calls", float64(one.busiest)).Vs(float64(base.busiest)).Want(bench.AtMost(limit))
	c.Add("clock seconds over the limit, one worker", "", float64(one.over)).Vs(float64(base.over)).Want(bench.AtMost(0))
	c.Add("answers 429, one worker", "", float64(one.tooMany)).Vs(float64(base.tooMany)).Want(bench.AtMost(0))
	c.Add("calls/s sustained, three workers", "calls/s", three.sustained).Vs(base.sustained)
	c.Add("busiest sliding second, three workers", "calls", float64(three.busiest)).Vs(float64(base.busiest)).Want(bench.AtMost(limit))
	c.Add("clock seconds over the limit, three workers", "", float64(three.over)).Vs(float64(base.over)).Want(bench.AtMost(0))
	c.Add("answers 429, three workers", "", float64(three.tooMany)).Vs(float64(base.tooMany)).Want(bench.AtMost(0))
	c.Add("calls/s sustained, twelve workers", "calls/s", twelve.sustained).Vs(base.sustained).Want(bench.AtLeast(0.9 * limit))
	c.Add("busiest sliding second, twelve workers", "calls", float64(twelve.busiest)).Vs(float64(base.busiest)).Want(bench.AtMost(limit))
	c.Add("clock seconds over the limit, twelve workers", "", float64(twelve.over)).Vs(float64(base.over)).Want(bench.AtMost(0))
	c.Add("answers 429, twelve workers", "", float64(twelve.tooMany)).Vs(float64(base.tooMany)).Want(bench.AtMost(0))
	return nil
}

// geoCalls is what the geo API saw in one phase.
type geoCalls struct {
	sustained float64 // calls a second after the backlog was in, over the window
	busiest   int     // most calls in any sliding second
	over      int     // clock seconds with more calls than the limit
	tooMany   int     // answers 429
	perSecond []bench.Point
}

func runGeoPhase(ctx context.Context, c *bench.Case, phase geoPhase, backlog bench.OpenLoop, window time.Duration) (geoCalls, error) {
	parts := app.Dev
	if !phase.limiter {
		parts.Worker = false // the baseline's own worker below replaces it
	}
	r, err := StartRelay(ctx, c.Logger, parts, "", BehindLoopbackProxy)
	if err != nil {
		return geoCalls{}, err
	}
	defer r.Close()
	if phase.limiter {
		for range phase.workers - 1 {
			cfg := r.Config
			cfg.DatabaseURL = store.DefaultURL(cfg.DataDir)
			w, err := app.Start(ctx, cfg, app.Worker, c.Logger)
			if err != nil {
				return geoCalls{}, err
			}
			defer w.Stop(context.Background())
		}
	} else {
		stop, err := startTaskQueueLimitedWorker(r, c)
		if err != nil {
			return geoCalls{}, err
		}
		defer stop()
	}

	geo := r.Sims.Sim(sim.GeoIP)
	geo.ResetCalls()
	start := time.Now()
	rec := bench.NewRecorder()
	if err := backlog.Run(ctx, rec, Submit("submit", r.URL, DistinctIP, nil)); err != nil {
		return geoCalls{}, err
	}
	if err := rec.Err(); err != nil {
		return geoCalls{}, err
	}
	windowStart := start.Add(backlog.Duration)
	select {
	case <-ctx.Done():
		return geoCalls{}, ctx.Err()
	case <-time.After(time.Until(windowStart.Add(window))):
	}
	res := countGeoCalls(geo.Calls(), start, windowStart, window, r.Config.GeoIP.RateLimit)
	c.Logf("%s: %.2f calls/s, busiest second %d, %d answered 429", phase.label, res.sustained, res.busiest, res.tooMany)
	return res, nil
}

func countGeoCalls(calls []sim.Call, start, windowStart time.Time, window time.Duration, limit float64) geoCalls {
	res := geoCalls{busiest: sim.MaxCallsPerWindow(calls, time.Second)}
	perClock := map[int64]int{}
	buckets := make([]int, int(math.Ceil(windowStart.Add(window).Sub(start).Seconds())))
	inWindow := 0
	for _, call := range calls {
		perClock[call.At.Unix()]++
		if call.Status == http.StatusTooManyRequests {
			res.tooMany++
		}
		if !call.At.Before(windowStart) && call.At.Before(windowStart.Add(window)) {
			inWindow++
		}
		if b := int(call.At.Sub(start) / time.Second); b >= 0 && b < len(buckets) {
			buckets[b]++
		}
	}
	for _, n := range perClock {
		if float64(n) > limit {
			res.over++
		}
	}
	res.sustained = float64(inWindow) / window.Seconds()
	for i, n := range buckets {
		res.perSecond = append(res.perSecond, bench.Point{X: float64(i), Y: float64(n)})
	}
	return res
}

// startTaskQueueLimitedWorker runs relay's worker and dispatcher as app does, but with
// the store's limiter opened so wide that only the relay-geoip queue's task-queue rate
// limit (GEOIP_RATE_LIMIT, enforced by the Temporal server) paces the geo calls.
func startTaskQueueLimitedWorker(r *Relay, c *bench.Case) (stop func(), err error) {
	cfg := r.Config
	geo, err := activities.NewGeo(activities.GeoOptions{
		BaseURL: cfg.GeoIP.URL, HTTP: &http.Client{Timeout: 45 * time.Second}, Store: r.Store,
		RateLimit: 1e6, CacheTTL: cfg.GeoIP.CacheTTL,
	})
	if err != nil {
		return nil, err
	}
	w, err := worker.New(r.Client, worker.Activities{
		Pinger: &activities.Pinger{}, Geo: geo,
		// Registered because the worker wants them all; this phase calls none of them.
		KF:        activities.NewKF(activities.KFOptions{}),
		C42:       activities.NewC42(activities.C42Options{}),
		Incidents: activities.NewIncidents(activities.IncidentsOptions{}),
	}, worker.Options{GeoIPRateLimit: cfg.GeoIP.RateLimit})
	if err != nil {
		return nil, err
	}
	if err := w.Start(); err != nil {
		return nil, err
	}
	dispatchCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		worker.NewDispatcher(r.Store, r.Client, c.Logger, 100*time.Millisecond, nil, []byte(r.Config.WorkflowIDKey)).Run(dispatchCtx)
	})
	return func() { cancel(); wg.Wait(); w.Stop() }, nil
}
