package workflows

import (
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// OutageSyncScheduleID names the schedule that syncs a site (KF_SITE_ID) every
// KF_SYNC_INTERVAL.
func OutageSyncScheduleID(siteID string) string { return "outage-sync-" + siteID }

// OutageSyncScheduledWorkflowID is the id a site's schedule gives its
// ScheduledSyncSiteOutages runs (Temporal appends the time to it).
func OutageSyncScheduledWorkflowID(siteID string) string { return "outage-sync-scheduled/" + siteID }

// ScheduledSyncSiteOutagesResult says what a scheduled sync did: ran SyncSiteOutages as
// OutageSyncWorkflowID (RunID, Result), or found a sync of the site running (started by
// POST /sites/{site_id}/outage-sync, whatever its cutoff) and left this tick to it
// (Joined).
type ScheduledSyncSiteOutagesResult struct {
	WorkflowID string                 `json:"workflow_id"`
	RunID      string                 `json:"run_id,omitempty"`
	Joined     bool                   `json:"joined,omitempty"`
	Result     *SyncSiteOutagesResult `json:"result,omitempty"`
}

// ScheduledSyncSiteOutages is what a site's schedule runs: SyncSiteOutages as a child under
// the site's one sync id, with its cutoff in the memo as a requested sync has, so that a
// scheduled and a requested sync never run side by side and a request can tell which
// cutoff runs. The child is abandoned, not terminated, if this run ends first: requests
// may have joined it.
func ScheduledSyncSiteOutages(ctx workflow.Context, in SyncSiteOutagesInput) (out ScheduledSyncSiteOutagesResult, err error) {
	defer func() {
		e := ending{job: JobOutageSync, outcome: OutcomeJoined, more: []temporal.SearchAttributeUpdate{SiteAttribute.ValueSet(in.SiteID)}}
		if out.Result != nil {
			e = outageSyncEnding(in.SiteID, out.Result)
		}
		recordEnding(ctx, e, err)
	}()
	id := OutageSyncWorkflowID(in.SiteID)
	say(ctx, "running the sync of site %s as %s", in.SiteID, id)
	child := workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            id,
		TaskQueue:             TaskQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		Memo:                  map[string]any{OutageSyncSinceMemo: in.Since},
		TypedSearchAttributes: jobAttributes(JobOutageSync, SiteAttribute.ValueSet(in.SiteID)),
		StaticSummary:         outageSyncSummary(in.SiteID, in.Since),
	}), SyncSiteOutagesWorkflowType, in)
	var exec workflow.Execution
	if err := child.GetChildWorkflowExecution().Get(ctx, &exec); err != nil {
		if temporal.IsWorkflowExecutionAlreadyStartedError(err) {
			workflow.GetLogger(ctx).Info("a sync of the site is running already; this one is left to it", "site_id", in.SiteID)
			return ScheduledSyncSiteOutagesResult{WorkflowID: id, Joined: true}, nil
		}
		return ScheduledSyncSiteOutagesResult{}, fmt.Errorf("start sync of %s: %w", in.SiteID, err)
	}
	var res SyncSiteOutagesResult
	if err := child.Get(ctx, &res); err != nil {
		return ScheduledSyncSiteOutagesResult{}, fmt.Errorf("sync %s: %w", exec.RunID, err)
	}
	return ScheduledSyncSiteOutagesResult{WorkflowID: exec.ID, RunID: exec.RunID, Result: &res}, nil
}
