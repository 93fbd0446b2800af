package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"relay/workflows"
)

// EnsureIncidentsSchedule makes the incidents-refresh schedule run every interval: it
// creates the schedule, or updates an existing one's interval and action (several workers
// starting at once all end up here). Its action is RefreshIncidents, which runs the
// refresh under workflows.IncidentsRefreshWorkflowID, the id POST /incidents/refresh
// starts or joins: one refresh at a time, whoever asks. With runNow, it also triggers one
// run at once: a fresh system has no snapshot to serve until then.
func EnsureIncidentsSchedule(ctx context.Context, c client.Client, every time.Duration, runNow bool) error {
	handle, err := ensureSchedule(ctx, c, workflows.IncidentsScheduleID, every, workflows.IncidentsScheduleAction())
	if err != nil {
		return err
	}
	if runNow {
		if err := handle.Trigger(ctx, client.ScheduleTriggerOptions{Overlap: workflows.IncidentsScheduleOverlap}); err != nil {
			return fmt.Errorf("trigger %s: %w", workflows.IncidentsScheduleID, err)
		}
	}
	return nil
}

// EnsureStagedBlobsSweepSchedule makes the staged-blobs-sweep schedule run SweepStagedBlobs
// every workflows.StagedBlobsSweepInterval: it drops what runs that died before their own
// cleanup left in the store.
func EnsureStagedBlobsSweepSchedule(ctx context.Context, c client.Client) error {
	_, err := ensureSchedule(ctx, c, workflows.StagedBlobsSweepScheduleID, workflows.StagedBlobsSweepInterval,
		workflows.StagedBlobsSweepScheduleAction())
	return err
}

// EnsureOutageSyncSchedule makes site's schedule (workflows.OutageSyncScheduleID) sync it
// every interval with cutoff since, running ScheduledSyncSiteOutages, which syncs under the
// site's one sync id (a running sync, requested or scheduled, takes the tick). An interval
// of 0 turns the schedule off: an existing one is deleted.
func EnsureOutageSyncSchedule(ctx context.Context, c client.Client, site, since string, every time.Duration) error {
	id := workflows.OutageSyncScheduleID(site)
	if every == 0 {
		err := c.ScheduleClient().GetHandle(ctx, id).Delete(ctx)
		var notFound *serviceerror.NotFound
		if err != nil && !errors.As(err, &notFound) {
			return fmt.Errorf("delete schedule %s: %w", id, err)
		}
		return nil
	}
	_, err := ensureSchedule(ctx, c, id, every, workflows.OutageSyncScheduleAction(site, since))
	return err
}

// ensureSchedule creates schedule id (overlap: skip), or brings an existing one's spec,
// policy and action up to date: a schedule created by an older worker gets this one's.
func ensureSchedule(ctx context.Context, c client.Client, id string, every time.Duration, action *client.ScheduleWorkflowAction) (client.ScheduleHandle, error) {
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}}
	policy := client.SchedulePolicies{Overlap: workflows.IncidentsScheduleOverlap}
	sc := c.ScheduleClient()
	handle, err := sc.Create(ctx, client.ScheduleOptions{ID: id, Spec: spec, Overlap: policy.Overlap, Action: action})
	if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		handle = sc.GetHandle(ctx, id)
		err = handle.Update(ctx, client.ScheduleUpdateOptions{
			DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
				s := in.Description.Schedule
				s.Spec, s.Policy, s.Action = &spec, &policy, action
				return &client.ScheduleUpdate{Schedule: &s}, nil
			},
		})
	}
	if err != nil {
		return nil, fmt.Errorf("schedule %s: %w", id, err)
	}
	return handle, nil
}
