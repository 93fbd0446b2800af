package scenarios

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/client"

	"relay/internal/bench"
	"relay/workflows"
)

var workflowLatency = bench.Scenario{
	Name:  "workflow-latency",
	About: "one-activity Ping workflows one after another, start to result, on the embedded server",
	Run:   runWorkflowLatency,
}

func runWorkflowLatency(ctx context.Context, c *bench.Case) error {
	r, err := startDev(ctx, c, "")
	if err != nil {
		return err
	}
	defer r.Close()
	n, warm := 500, 20
	if c.Smoke {
		n, warm = 10, 3
	}
	ping := func(ctx context.Context, i int) error {
		run, err := r.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: workflows.PingWorkflowID(fmt.Sprintf("bench-%d", i)), TaskQueue: workflows.TaskQueue,
		}, workflows.PingWorkflowType, workflows.PingInput{Message: "bench"})
		if err != nil {
			return err
		}
		return run.Get(ctx, nil)
	}
	// Warm the caches and the worker's pollers.
	if err := bench.Repeat(ctx, bench.NewRecorder(), "", warm, func(ctx context.Context, i int) error { return ping(ctx, -1-i) }); err != nil {
		return err
	}
	rec := bench.NewRecorder()
	const route = "Ping workflow"
	if err := bench.Repeat(ctx, rec, route, n, ping); err != nil {
		return err
	}
	if err := rec.Err(); err != nil {
		return err
	}
	s := rec.Summary(route)
	c.Add("p50, start to result", "ms", s.P50MS).Want(bench.AtMost(20))
	c.Add("p99, start to result", "ms", s.P99MS)
	c.Add("max, start to result", "ms", s.MaxMS)
	c.Latency("Ping, start to result (history in SQLite)", rec, route)
	return nil
}
