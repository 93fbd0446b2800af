// Package soak runs relay for a bounded time under mixed traffic on all four jobs with the
// upstreams' faults on, then waits for the work it accepted to finish and reports: errors
// per route (the target is none), memory and goroutines at start and end, latency per
// route, and what became of every accepted event. `relay soak` prints the report.
package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"relay/internal/app"
	"relay/internal/bench"
	"relay/internal/bench/scenarios"
	"relay/internal/config"
	"relay/internal/sim"
	"relay/internal/store"
)

// DefaultKnobs are the faults of a soak: every upstream fails, drops connections and
// garbles answers now and then, the geolocation API stalls up to 5 s, the incidents API is
// slow.
const DefaultKnobs = "failure-rate=0.05,reset-rate=0.02,garble-rate=0.02,truncate-rate=0.02;" +
	"geoip:hiccup-rate=0.1,hiccup-delay=5s;incidents:latency=200ms"

// Options bound a soak.
type Options struct {
	Duration time.Duration // of the load (default 2 minutes)
	Rate     float64       // requests per second over all routes (default 40)
	Knobs    string        // simulator faults (default DefaultKnobs)
	Logger   *slog.Logger  // relay's logs (default: dropped)
	Progress io.Writer     // a line per phase (may be nil)
}

// Report is what a soak saw.
type Report struct {
	Duration    string          `json:"duration"`
	Rate        float64         `json:"rate"`
	Knobs       string          `json:"knobs"`
	Machine     string          `json:"machine"`
	Routes      []bench.Summary `json:"routes"`
	Unexpected  int             `json:"unexpected_errors"` // answers that were not what the route promises
	MemoryStart bench.Memory    `json:"memory_start"`      // after start-up and a first snapshot
	MemoryEnd   bench.Memory    `json:"memory_end"`        // after the accepted work finished and a GC
	MemoryPeak  bench.Memory    `json:"memory_peak"`
	Goroutines  [2]int          `json:"goroutines"` // start, end
	// Accepted events by final state; Pending must be 0 (nothing lost).
	Events map[string]int `json:"events"`
	// UpstreamFaults counts the faults the simulators injected, by kind.
	UpstreamFaults map[string]int `json:"upstream_faults"`
	LastSync       string         `json:"last_outage_sync"`
}

// Passed says whether the soak met its targets: no unexpected error, every accepted
// event finished.
func (r Report) Passed() bool {
	return r.Unexpected == 0 && r.Events[store.EventPending] == 0 && r.LastSync == "completed"
}

// Run starts relay in this process (as `relay dev` does, history in a SQLite file), runs
// the mixed load, waits for the accepted work and reports.
func Run(ctx context.Context, o Options) (Report, error) {
	o = withDefaults(o)
	progress := func(format string, args ...any) {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "soak: "+format+"\n", args...)
		}
	}
	r := Report{Duration: o.Duration.String(), Rate: o.Rate, Knobs: o.Knobs, Machine: bench.DescribeMachine().String()}

	relay, err := scenarios.StartRelay(ctx, o.Logger, app.Dev, o.Knobs, scenarios.BehindLoopbackProxy, func(c *config.Config) {
		c.C42.CacheTTL = 10 * time.Second // so that merges keep missing, not only hitting
	})
	if err != nil {
		return r, err
	}
	defer relay.Close()
	base := relay.URL

	// Before the load: a snapshot to serve and a sync to describe.
	progress("relay up at %s; waiting for the first incident snapshot", base)
	if err := waitHTTP(ctx, base+"/incidents", http.StatusOK, 2*time.Minute); err != nil {
		return r, err
	}
	if err := post(ctx, base+"/sites/kingfisher/outage-sync", http.StatusAccepted); err != nil {
		return r, err
	}
	runtime.GC()
	r.MemoryStart, r.Goroutines[0] = bench.ReadMemory(), runtime.NumGoroutine()

	progress("load: %.0f requests/s for %s, faults %q", o.Rate, o.Duration, o.Knobs)
	rec := bench.NewRecorder()
	ids := &scenarios.TaskIDs{}
	events := []string{sim.C42EventTeamSync, sim.C42EventEmpty, sim.C42EventAllHands}
	stopPeak := bench.SampleMemory()
	loadErr := bench.OpenLoop{Rate: o.Rate, Duration: o.Duration, Timeout: 30 * time.Second}.Run(ctx, rec,
		weighted(30, scenarios.IncidentsGet("GET /incidents", base, false)),
		weighted(15, scenarios.IncidentsGet("GET /incidents (gzip)", base, true)),
		weighted(20, scenarios.EventGet("GET /events-with-subscriptions/{id}", base, events, "")),
		weighted(12, scenarios.Submit("POST /event/submit/", base, publicIP, ids)),
		weighted(6, bench.Get("GET /events", base+"/events?limit=20")),
		weighted(6, bench.Get("GET /sites/{site_id}/outage-sync", base+"/sites/kingfisher/outage-sync")),
		weighted(2, scenarios.OutageSyncPost("POST /sites/{site_id}/outage-sync", base, "kingfisher")),
		weighted(1, accepted(http.MethodPost, "POST /incidents/refresh", base+"/incidents/refresh")),
		weighted(4, bench.Get("GET /readyz", base+"/readyz")),
		weighted(4, bench.Get("GET /", base+"/")),
	)
	r.MemoryPeak = stopPeak()
	if loadErr != nil && ctx.Err() != nil {
		return r, loadErr
	}
	r.Routes = rec.Summaries()
	for _, s := range r.Routes {
		r.Unexpected += s.Errors
	}

	// After: every accepted event must end located or unlocatable, the last sync done.
	progress("load done; waiting for %d accepted events and the last sync", len(ids.All()))
	r.Events, err = waitEvents(ctx, relay.Store, ids.All(), 3*time.Minute)
	if err != nil {
		return r, err
	}
	r.LastSync, err = waitSync(ctx, base, 3*time.Minute)
	if err != nil {
		return r, err
	}
	r.UpstreamFaults = map[string]int{}
	for _, name := range sim.Names {
		for _, c := range relay.Sims.Sim(name).Calls() {
			if c.Fault != "" {
				r.UpstreamFaults[c.Fault]++
			}
		}
	}
	runtime.GC()
	r.MemoryEnd, r.Goroutines[1] = bench.ReadMemory(), runtime.NumGoroutine()
	return r, nil
}

func withDefaults(o Options) Options {
	if o.Duration <= 0 {
		o.Duration = 2 * time.Minute
	}
	if !(o.Rate > 0) {
		o.Rate = 40
	}
	if o.Knobs == "" {
		o.Knobs = DefaultKnobs
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

func weighted(w int, r bench.Request) bench.Request { r.Weight = w; return r }

// publicIP spreads submissions over 200 placeable clients: many events share an IP, as
// real traffic does, so the cache and the shared lookups are exercised.
func publicIP(i int) string { return fmt.Sprintf("8.%d.%d.9", 20+i%200/50, i%50) }

// accepted is a bodiless request wanting 202.
func accepted(method, route, url string) bench.Request {
	return bench.Request{
		Route: route,
		New: func(ctx context.Context, _ int) (*http.Request, error) {
			return http.NewRequestWithContext(ctx, method, url, nil)
		},
		Check: func(resp *http.Response, _ []byte) error {
			if resp.StatusCode != http.StatusAccepted {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		},
	}
}

var client = bench.Client(4, 30*time.Second)

func post(ctx context.Context, url string, want int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("POST %s: %s", url, resp.Status)
	}
	return nil
}

// poll calls check every 200 ms until it reports done or the timeout passes.
func poll(ctx context.Context, what string, timeout time.Duration, check func() (bool, error)) error {
	return bench.Poll(ctx, "soak: "+what, timeout, 200*time.Millisecond, check)
}

func waitHTTP(ctx context.Context, url string, want int, timeout time.Duration) error {
	return poll(ctx, "GET "+url+" answering "+http.StatusText(want), timeout, func() (bool, error) {
		resp, err := client.Get(url)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == want, nil
	})
}

// waitEvents waits until no accepted event is pending and counts them by state (with
// the pending ones, if the wait ran out).
func waitEvents(ctx context.Context, st *store.Store, ids []string, timeout time.Duration) (map[string]int, error) {
	var states map[string]int
	err := poll(ctx, "accepted events finishing", timeout, func() (bool, error) {
		states = map[string]int{}
		for _, id := range ids {
			ev, err := st.Event(ctx, id)
			if err != nil {
				return false, fmt.Errorf("accepted event %s: %w", id, err)
			}
			states[ev.State]++
		}
		return states[store.EventPending] == 0, nil
	})
	if err != nil && states != nil && states[store.EventPending] > 0 {
		return states, nil // reported as pending: lost, as far as the target goes
	}
	return states, err
}

func waitSync(ctx context.Context, base string, timeout time.Duration) (string, error) {
	var state string
	err := poll(ctx, "the last outage sync finishing", timeout, func() (bool, error) {
		resp, err := client.Get(base + "/sites/kingfisher/outage-sync")
		if err != nil {
			return false, nil
		}
		defer resp.Body.Close()
		var st struct {
			State string `json:"state"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			return false, nil
		}
		state = st.State
		return state != "running", nil
	})
	return state, err
}

// Print writes the report as a table and a few lines.
func (r Report) Print(w io.Writer) {
	fmt.Fprintf(w, "relay soak: %s at %.0f requests/s, faults %q\n%s\n\n", r.Duration, r.Rate, r.Knobs, r.Machine)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "route\trequests\terrors\tp50 ms\tp99 ms\tmax ms\t")
	for _, s := range r.Routes {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%.1f\t%.1f\t\n", s.Route, s.Requests, s.Errors, s.P50MS, s.P99MS, s.MaxMS)
	}
	tw.Flush()
	for _, s := range r.Routes {
		for msg, n := range s.ErrorKinds {
			fmt.Fprintf(w, "  error %s: %d× %s\n", s.Route, n, msg)
		}
	}
	fmt.Fprintf(w, "\nunexpected errors: %d\n", r.Unexpected)
	fmt.Fprintf(w, "accepted events by final state: %s\n", counts(r.Events))
	fmt.Fprintf(w, "last outage sync: %s\n", r.LastSync)
	fmt.Fprintf(w, "upstream faults injected: %s\n", counts(r.UpstreamFaults))
	fmt.Fprintf(w, "memory: start %s, end %s, peak %s; goroutines %d → %d\n",
		mem(r.MemoryStart), mem(r.MemoryEnd), mem(r.MemoryPeak), r.Goroutines[0], r.Goroutines[1])
	if r.Passed() {
		fmt.Fprintln(w, "PASS: no unexpected error, nothing accepted left unfinished")
	} else {
		fmt.Fprintln(w, "FAIL")
	}
}

func counts(m map[string]int) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	if len(parts) == 0 {
		return "none"
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

func mem(m bench.Memory) string {
	return fmt.Sprintf("RSS %.0f MB / heap %.0f MB", float64(m.RSS)/1e6, float64(m.Heap)/1e6)
}
