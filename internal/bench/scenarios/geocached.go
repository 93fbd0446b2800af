package scenarios

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"relay/internal/bench"
	"relay/internal/sim"
	"relay/workflows"
)

// geoCachedBefore is the per-event design's figure (GeolocateEvent, before issue 13):
// 1,000 events from 20 cached IPs took 17 s to be located on this machine.
const geoCachedBefore = 58.0

var geoCached = bench.Scenario{
	Name: "geo-cached",
	About: "10,000 events from 50 client IPs already in the location cache, submitted on 64 connections at once: " +
		"events located per second, from the first submission to the last located",
	Baseline: fmt.Sprintf("the per-event workflow design before issue 13 (a workflow, two activities and timers per "+
		"event): %g events/s, its recorded figure", geoCachedBefore),
	Run: runGeoCached,
}

func runGeoCached(ctx context.Context, c *bench.Case) error {
	events, ips := 10_000, 50
	if c.Smoke {
		events, ips = 300, 10
	}
	r, err := startDev(ctx, c, "", BehindLoopbackProxy)
	if err != nil {
		return err
	}
	defer r.Close()
	ipOf := func(i int) string { return fmt.Sprintf("12.0.%d.1", i%ips) }

	// Warm the cache: one event per IP, located through the API.
	warm := &TaskIDs{}
	rec := bench.NewRecorder()
	if err := (bench.ClosedLoop{Conns: 8, Requests: ips}).Run(ctx, rec, Submit("warm", r.URL, ipOf, warm)); err != nil {
		return err
	}
	if err := waitLocated(ctx, r, 2*time.Minute); err != nil {
		return fmt.Errorf("warming the cache: %w", err)
	}
	calls := len(r.Sims.Sim(sim.GeoIP).Calls())

	ids := &TaskIDs{}
	rec = bench.NewRecorder()
	start := time.Now()
	if err := (bench.ClosedLoop{Conns: 64, Requests: events}).Run(ctx, rec, Submit("submit", r.URL, ipOf, ids)); err != nil {
		return err
	}
	if err := rec.Err(); err != nil {
		return err
	}
	submitted := time.Since(start)
	if err := waitLocated(ctx, r, 5*time.Minute); err != nil {
		return err
	}
	took := time.Since(start)
	n := len(ids.All())
	perSecond := float64(n) / took.Seconds()
	extra := len(r.Sims.Sim(sim.GeoIP).Calls()) - calls
	c.Logf("%d events submitted in %s, all located after %s: %.0f/s; %d more calls to the API", n,
		submitted.Round(time.Millisecond), took.Round(time.Millisecond), perSecond, extra)
	c.Add("events located per second", "events/s", perSecond).Vs(geoCachedBefore).Want(bench.AtLeast(500))
	c.Add("submissions accepted per second", "events/s", float64(n)/submitted.Seconds())
	c.Add("calls to the geo API for cached IPs", "", float64(extra)).Want(bench.AtMost(0))
	history, err := historyEvents(ctx, r, workflows.GeolocateWorkflowType)
	if err != nil {
		return err
	}
	c.Add("workflow history events per located event", "events", float64(history)/float64(n+ips))
	c.Latency("submit", rec, "submit")
	return nil
}

// waitLocated waits until no event is pending.
func waitLocated(ctx context.Context, r *Relay, timeout time.Duration) error {
	return bench.Poll(ctx, "every event located", timeout, 50*time.Millisecond, func() (bool, error) {
		p, err := r.Store.PendingEvents(ctx)
		return p.Events == 0, err
	})
}

// historyEvents sums the history length of every run of a workflow type.
func historyEvents(ctx context.Context, r *Relay, workflowType string) (int64, error) {
	var total int64
	var token []byte
	for {
		page, err := r.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("WorkflowType = '%s'", workflowType), NextPageToken: token,
		})
		if err != nil {
			return 0, err
		}
		for _, ex := range page.Executions {
			total += ex.GetHistoryLength()
		}
		if token = page.NextPageToken; len(token) == 0 {
			return total, nil
		}
	}
}
