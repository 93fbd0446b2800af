package scenarios

import (
	"context"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"relay/internal/bench"
)

// The merge-miss scenario's floor: what Temporal alone costs a request answered by
// Update-with-Start on a new run, measured in the same relay dev as the merges, one request
// at a time. A run that answers at once is the least any such answer takes; a run that
// first waits in a local activity as long as the calendar API answers is the least a miss
// fetched inside the workflow takes (the merge adds the two HTTP calls, the page merge and
// the HTTP API). The workflow and its queue are the benchmark's own.
const (
	floorTaskQueue = "bench-update-floor"
	floorWorkflow  = "BenchUpdateFloor"
	floorUpdate    = "answer"
)

// benchUpdateFloor answers its one update after waiting wait in a local activity (none
// when zero), then ends.
func benchUpdateFloor(ctx workflow.Context, wait time.Duration) error {
	done := false
	if err := workflow.SetUpdateHandler(ctx, floorUpdate, func(ctx workflow.Context) (bool, error) {
		return true, workflow.Await(ctx, func() bool { return done })
	}); err != nil {
		return err
	}
	if wait > 0 {
		ctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: wait + 5*time.Second})
		if err := workflow.ExecuteLocalActivity(ctx, floorWait, wait).Get(ctx, nil); err != nil {
			return err
		}
	}
	done = true
	return workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
}

// floorWait stands for the upstream call: it only takes as long.
func floorWait(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// measureUpdateFloor records n Update-with-Starts of new runs under route, each run
// waiting wait, one after another.
func measureUpdateFloor(ctx context.Context, r *Relay, rec *bench.Recorder, route string, n int, wait time.Duration) error {
	w := sdkworker.New(r.Client, floorTaskQueue, sdkworker.Options{})
	w.RegisterWorkflowWithOptions(benchUpdateFloor, workflow.RegisterOptions{Name: floorWorkflow})
	w.RegisterActivity(floorWait)
	if err := w.Start(); err != nil {
		return err
	}
	defer w.Stop()
	prefix := fmt.Sprintf("bench-update-floor/%d/%s/", time.Now().UnixNano(), wait)
	for i := range n {
		op := r.Client.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
			ID: fmt.Sprint(prefix, i), TaskQueue: floorTaskQueue,
			WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		}, floorWorkflow, wait)
		start := time.Now()
		h, err := r.Client.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
			StartWorkflowOperation: op,
			UpdateOptions:          client.UpdateWorkflowOptions{UpdateName: floorUpdate, WaitForStage: client.WorkflowUpdateStageCompleted},
		})
		if err == nil {
			var ok bool
			err = h.Get(ctx, &ok)
		}
		rec.Observe(route, time.Since(start), err)
		if err != nil {
			return fmt.Errorf("%s: %w", route, err)
		}
	}
	return nil
}
