package scenarios

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"time"

	"relay/internal/bench"
	"relay/internal/config"
	"relay/internal/outagesync"
	"relay/internal/sim"
	"relay/workflows"
)

var outageFilter = bench.Scenario{
	Name:  "outage-filter",
	About: "outagesync.Filter on one core: the outages against a site of 10,000 devices",
	Sizes: []int{10_000, 100_000, 1_000_000},
	Run:   runOutageFilter,
}

func runOutageFilter(ctx context.Context, c *bench.Case) error {
	since := config.Default().KF.OutagesSince
	devices, list := outagesync.Sample(10_000, 2_000, c.Size, since)
	runs := min(max(10_000_000/c.Size, 10), 500) // a few seconds at every size
	if c.Smoke {
		runs = 2
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)) // one core, the garbage collector's work included
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	took := make([]time.Duration, 0, runs)
	for range runs {
		if err := ctx.Err(); err != nil {
			return err
		}
		start := time.Now()
		out, counts := outagesync.Filter(since, devices, list)
		took = append(took, time.Since(start))
		if counts.Fetched != len(list) || counts.Kept != len(out) || counts.DroppedInvalid != 0 || len(out) == 0 {
			return fmt.Errorf("filter counts %+v, %d kept", counts, len(out))
		}
	}
	runtime.ReadMemStats(&after)
	slices.Sort(took)
	median := took[len(took)/2]
	throughput := c.Add("throughput, one core (median run)", "outages/s", float64(len(list))/median.Seconds())
	if c.Size >= 1_000_000 { // the target's size: smaller runs pay more for the site's device map per outage
		throughput.Want(bench.AtLeast(2e6))
	}
	c.Add("time per filter (median)", "ms", bench.Millis(median))
	c.Add("allocations per outage", "", float64(after.Mallocs-before.Mallocs)/float64(runs*len(list)))
	return nil
}

// outageSite is the site the outage API's simulator generates with most outages.
const outageSite = "norwich-pear-tree"

var outageSync = bench.Scenario{
	Name:     "outage-sync",
	About:    "POST /sites/norwich-pear-tree/outage-sync to the workflow's result over 10,000 outages, 30% of the outage API's calls failing 500",
	Baseline: "the same syncs with no call failing",
	Run:      runOutageSync,
}

func runOutageSync(ctx context.Context, c *bench.Case) error {
	size, syncs, cleanSyncs := 10_000, 10, 5
	if c.Smoke {
		size, syncs, cleanSyncs = 1_000, 1, 1
	}
	r, err := startDev(ctx, c, fmt.Sprintf("kf:size=%d,failure-rate=0.3", size))
	if err != nil {
		return err
	}
	defer r.Close()
	kf := r.Sims.Sim(sim.KF)
	const faulty, clean = "relay, 30% failing", "relay, none failing"
	rec := bench.NewRecorder()
	calls, fails := map[string]int{}, map[string]int{}
	syncOnce := func(route string) func(ctx context.Context, _ int) error {
		return func(ctx context.Context, i int) error {
			kf.ResetCalls()
			start := time.Now()
			defer func() {
				n, failed := 0, 0
				for _, call := range kf.Calls() {
					n++
					if call.Status == http.StatusInternalServerError {
						failed++
					}
				}
				calls[route], fails[route] = calls[route]+n, fails[route]+failed
				c.Logf("%s, sync %d: %v, %d calls, %d answered 500", route, i+1, time.Since(start).Round(time.Millisecond), n, failed)
			}()
			if err := postOutageSync(ctx, r); err != nil {
				return err
			}
			var res workflows.SyncSiteOutagesResult
			if err := r.Client.GetWorkflow(ctx, workflows.OutageSyncWorkflowID(outageSite), "").Get(ctx, &res); err != nil {
				return err
			}
			if res.Fetched < size || res.Posted != res.Kept {
				return fmt.Errorf("sync result %+v", res)
			}
			return nil
		}
	}
	if err := bench.Repeat(ctx, rec, faulty, syncs, syncOnce(faulty)); err != nil {
		return err
	}
	knobs := kf.Knobs()
	knobs.FailureRate = 0
	kf.SetKnobs(knobs) // the same data: only Size and Seed make new
	if err := bench.Repeat(ctx, rec, clean, cleanSyncs, syncOnce(clean)); err != nil {
		return err
	}
	api := kf.Routes().(*sim.KFAPI)
	posts := api.Posts()
	if len(posts) == 0 || posts[len(posts)-1].Status != http.StatusOK || !bytes.Equal(posts[len(posts)-1].Body, api.Expected(outageSite)) {
		return fmt.Errorf("the last POST to the outage API was not exactly the site's outages")
	}
	if err := rec.Err(); err != nil && rec.Summary(clean).Errors > 0 {
		return err // with no faults every sync must complete; under faults that is the target below
	}
	f, b := rec.Summary(faulty), rec.Summary(clean)
	c.Add("syncs completed", "", float64(f.Requests)).Want(bench.AtLeast(float64(syncs)))
	c.Add("median time per sync", "s", f.P50MS/1000).Vs(b.P50MS / 1000)
	c.Add("slowest sync", "s", f.MaxMS/1000).Vs(b.MaxMS / 1000)
	c.Add("calls to the outage API per sync", "", float64(calls[faulty])/float64(syncs)).Vs(float64(calls[clean]) / float64(cleanSyncs))
	c.Add("of which answered 500", "", float64(fails[faulty])/float64(syncs)).Vs(float64(fails[clean]) / float64(cleanSyncs))
	c.Latency(faulty, rec, faulty)
	c.Latency(clean, rec, clean)
	return nil
}

func postOutageSync(ctx context.Context, r *Relay) error {
	resp, body, err := call(ctx, http.MethodPost, r.URL+"/sites/"+outageSite+"/outage-sync")
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST outage-sync: %d %.200s", resp.StatusCode, body)
	}
	return nil
}
