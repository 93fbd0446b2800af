package app_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

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
