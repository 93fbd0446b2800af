package app_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"relay/internal/config"
	"relay/internal/sim"
	"relay/internal/testenv"
	"relay/workflows"
)

// BenchmarkPingWorkflow times a one-activity workflow from start to result on the
// embedded server, as `relay dev` runs it (SQLite file) and as the tests do (memory):
//
//	go test ./internal/app -run '^$' -bench PingWorkflow -benchtime 500x
func BenchmarkPingWorkflow(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts []testenv.Option
	}{{"sqlite-file", []testenv.Option{testenv.OnDisk()}}, {"memory", nil}} {
		b.Run(mode.name, func(b *testing.B) {
			env := testenv.Start(b, mode.opts...)
			ctx := context.Background()
			ping := func(i int) time.Duration {
				start := time.Now()
				run, err := env.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
					ID: workflows.PingWorkflowID(fmt.Sprintf("bench-%s-%d-%d", mode.name, b.N, i)), TaskQueue: workflows.TaskQueue,
				}, workflows.PingWorkflowType, workflows.PingInput{Message: "bench"})
				if err != nil {
					b.Fatal(err)
				}
				if err := run.Get(ctx, nil); err != nil {
					b.Fatal(err)
				}
				return time.Since(start)
			}
			for i := range 20 { // warm the caches and the worker's pollers
				ping(-1 - i)
			}
			var lat []time.Duration
			for i := 0; b.Loop(); i++ {
				lat = append(lat, ping(i))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(percentile(lat, 50).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(percentile(lat, 99).Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
		})
	}
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

// BenchmarkOutageSync10k runs whole syncs of the default site over 10,000 outages while
// 30% of the outage API's calls fail with 500, through the HTTP API, and reports the time
// and the calls (attempts) each sync took:
//
//	go test ./internal/app -run '^$' -bench OutageSync10k -benchtime 5x
func BenchmarkOutageSync10k(b *testing.B) {
	env := testenv.Start(b, testenv.OnDisk(), testenv.WithConfig(func(c *config.Config) {
		c.SimKnobs = "kf:size=10000,failure-rate=0.3"
	}))
	kf := env.Sims.Sim(sim.KF)
	api := kf.Routes().(*sim.KFAPI)
	ctx := context.Background()
	var calls, failures int
	var took []time.Duration
	for b.Loop() {
		kf.ResetCalls()
		start := time.Now()
		resp, body := env.Do(b, http.MethodPost, "/sites/norwich-pear-tree/outage-sync", nil)
		if resp.StatusCode != http.StatusAccepted {
			b.Fatalf("POST: %d %s", resp.StatusCode, body)
		}
		var res workflows.SyncSiteOutagesResult
		if err := env.Client.GetWorkflow(ctx, workflows.OutageSyncWorkflowID("norwich-pear-tree"), "").Get(ctx, &res); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
		if res.Fetched < 10000 || res.Posted != res.Kept {
			b.Fatalf("unexpected result %+v", res)
		}
		for _, c := range kf.Calls() {
			calls++
			if c.Status == http.StatusInternalServerError {
				failures++
			}
		}
	}
	posts := api.Posts()
	if last := posts[len(posts)-1]; last.Status != http.StatusOK || string(last.Body) != string(api.Expected("norwich-pear-tree")) {
		b.Fatalf("last POST: %d, body exactly right: %v", last.Status, string(last.Body) == string(api.Expected("norwich-pear-tree")))
	}
	slices.Sort(took)
	n := float64(len(took))
	b.ReportMetric(took[len(took)/2].Seconds(), "median-s/sync")
	b.ReportMetric(took[len(took)-1].Seconds(), "max-s/sync")
	b.ReportMetric(float64(calls)/n, "calls/sync")
	b.ReportMetric(float64(failures)/n, "500s/sync")
}
