package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"relay/workflows"
)

// EnsureIncidentsSchedule makes the incidents-refresh schedule run every interval: it
// creates the schedule, or updates an existing one's interval (several workers starting
// at once all end up here). With runNow, it also triggers one run at once: a fresh system
// has no snapshot to serve until then.
func EnsureIncidentsSchedule(ctx context.Context, c client.Client, every time.Duration, runNow bool) error {
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}}
	policy := client.SchedulePolicies{Overlap: workflows.IncidentsScheduleOverlap}
	sc := c.ScheduleClient()
	handle, err := sc.Create(ctx, client.ScheduleOptions{
		ID:      workflows.IncidentsScheduleID,
		Spec:    spec,
		Overlap: policy.Overlap,
		Action: &client.ScheduleWorkflowAction{
			ID:                 workflows.IncidentsScheduledWorkflowID,
			Workflow:           workflows.AggregateIncidentsWorkflowType,
			Args:               []any{workflows.AggregateIncidentsInput{}},
			TaskQueue:          workflows.TaskQueue,
			WorkflowRunTimeout: workflows.IncidentsRunTimeout,
		},
	})
	if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		handle = sc.GetHandle(ctx, workflows.IncidentsScheduleID)
		err = handle.Update(ctx, client.ScheduleUpdateOptions{
			DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
				s := in.Description.Schedule
				s.Spec, s.Policy = &spec, &policy
				return &client.ScheduleUpdate{Schedule: &s}, nil
			},
		})
	}
	if err != nil {
		return fmt.Errorf("schedule %s: %w", workflows.IncidentsScheduleID, err)
	}
	if runNow {
		if err := handle.Trigger(ctx, client.ScheduleTriggerOptions{Overlap: workflows.IncidentsScheduleOverlap}); err != nil {
			return fmt.Errorf("trigger %s: %w", workflows.IncidentsScheduleID, err)
		}
	}
	return nil
}
