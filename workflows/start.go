package workflows

import (
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
)

// How relay starts its workflows: every option of every start, in one place, so that the
// API and the worker's dispatcher only say which one.

// IncidentsRefreshStartOptions starts a refresh (POST /incidents/refresh) under the one
// refresh id, which the schedule's runs use too: while a refresh runs, the start fails
// with WorkflowExecutionAlreadyStarted naming the running run, and the caller joins it.
// A closed refresh's id may be reused.
func IncidentsRefreshStartOptions() client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                       IncidentsRefreshWorkflowID,
		TaskQueue:                TaskQueue,
		WorkflowRunTimeout:       IncidentsRunTimeout,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		// Without it the SDK answers a running id with that run, and the caller could not
		// tell a join from a start.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		TypedSearchAttributes:                    jobAttributes(JobIncidents),
		StaticSummary:                            incidentsRefreshSummary,
	}
}

// incidentsRefreshSummary says what a refresh does, in the Web UI and `temporal workflow describe`.
const incidentsRefreshSummary = "Rebuild the incident snapshot: fetch every incident type and the identities, group by employee and priority, publish"

// IncidentsScheduleAction is what the incidents-refresh schedule starts: RefreshIncidents,
// which runs the refresh under IncidentsRefreshWorkflowID (see RefreshIncidents).
func IncidentsScheduleAction() *client.ScheduleWorkflowAction {
	return &client.ScheduleWorkflowAction{
		ID:                    IncidentsScheduledWorkflowID,
		Workflow:              RefreshIncidentsWorkflowType,
		Args:                  []any{RefreshIncidentsInput{}},
		TaskQueue:             TaskQueue,
		WorkflowRunTimeout:    RefreshIncidentsRunTimeout,
		TypedSearchAttributes: jobAttributes(JobIncidents),
		StaticSummary:         "Scheduled: " + incidentsRefreshSummary + " (or leave the tick to a refresh running)",
	}
}

// StagedBlobsSweepScheduleAction is what the staged-blobs-sweep schedule starts.
func StagedBlobsSweepScheduleAction() *client.ScheduleWorkflowAction {
	return &client.ScheduleWorkflowAction{
		ID:                    StagedBlobsSweepWorkflowID,
		Workflow:              SweepStagedBlobsWorkflowType,
		Args:                  []any{SweepStagedBlobsInput{}},
		TaskQueue:             TaskQueue,
		WorkflowRunTimeout:    5 * time.Minute,
		TypedSearchAttributes: jobAttributes(JobSweep),
		StaticSummary:         "Drop the staged blobs that runs which died before their own cleanup left behind",
	}
}

// OutageSyncScheduleAction is what site's schedule starts: ScheduledSyncSiteOutages, which
// syncs under the site's one sync id with cutoff since.
func OutageSyncScheduleAction(site, since string) *client.ScheduleWorkflowAction {
	return &client.ScheduleWorkflowAction{
		ID:                    OutageSyncScheduledWorkflowID(site),
		Workflow:              ScheduledSyncSiteOutagesWorkflowType,
		Args:                  []any{SyncSiteOutagesInput{SiteID: site, Since: since}},
		TaskQueue:             TaskQueue,
		TypedSearchAttributes: jobAttributes(JobOutageSync, SiteAttribute.ValueSet(site)),
		StaticSummary:         "Scheduled: " + outageSyncSummary(site, since) + " (or leave the tick to a sync running)",
	}
}

// EventSubscriptionsStartOptions starts an event's run, alive for ttl after its fetch, or
// joins the one running (Update-with-Start: however many servers ask, one run fetches). A
// closed run's id may be reused: the next request after the answer expired starts a new
// run. The run timeout is only a backstop: a run ends by itself at fetch + ttl.
func EventSubscriptionsStartOptions(eventID string, ttl time.Duration) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                       EventSubscriptionsWorkflowID(eventID),
		TaskQueue:                MergeTaskQueue,
		WorkflowRunTimeout:       EventSubscriptionsFetchTimeout + ttl + time.Minute,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		TypedSearchAttributes:    jobAttributes(JobMerge, EventIDAttribute.ValueSet(eventID)),
		StaticSummary: fmt.Sprintf("Merge calendar event %s with its subscribers' first names; answer from memory for %s after the fetch",
			eventID, ttl),
	}
}

// EventSubscriptionsUpdateOptions asks the event's run (the one the start operation
// started or found) for the merged event. It waits until the run has accepted the update:
// at once for an answer from memory, which then comes with it; otherwise the asker then
// waits on the handle for the fetch. Waiting for acceptance only tells a Temporal that
// does not answer (503) from a fetch that takes long (504).
func EventSubscriptionsUpdateOptions(eventID string) client.UpdateWorkflowOptions {
	return client.UpdateWorkflowOptions{
		WorkflowID:   EventSubscriptionsWorkflowID(eventID),
		UpdateName:   EventSubscriptionsUpdate,
		WaitForStage: client.WorkflowUpdateStageAccepted,
	}
}

// GeolocateStartOptions signal-with-starts an IP's lookup: a running lookup of the IP
// takes the signal, else a new run starts (a closed one's id may be reused: the cache, not
// the id, says whether the IP was looked up lately).
func GeolocateStartOptions(idKey []byte, ip string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                    GeolocateWorkflowID(idKey, ip),
		TaskQueue:             TaskQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		TypedSearchAttributes: jobAttributes(JobGeolocation),
		// No IP here: the summary is not the run's input, and may be shown to anyone.
		StaticSummary: "Locate one client IP through the rate-limited geolocation API (or the cache) and settle every event pending from it",
	}
}

// OutageSyncSinceMemo is the memo field that holds a sync's cutoff, so that a request for
// another cutoff can be told which one runs without reading its history.
const OutageSyncSinceMemo = "since"

// OutageSyncStartOptions starts a site's sync with cutoff since. One sync per site runs at
// a time: a start while one runs fails with WorkflowExecutionAlreadyStarted, and the caller
// joins it or refuses, by its cutoff (in the memo). A closed sync's id may be reused.
func OutageSyncStartOptions(siteID, since string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                       OutageSyncWorkflowID(siteID),
		TaskQueue:                TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		// Without it the SDK answers a running id with that run, and the caller could not
		// tell a join from a start.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		Memo:                                     map[string]any{OutageSyncSinceMemo: since},
		TypedSearchAttributes:                    jobAttributes(JobOutageSync, SiteAttribute.ValueSet(siteID)),
		StaticSummary:                            outageSyncSummary(siteID, since),
	}
}

// outageSyncSummary says what a sync of site does.
func outageSyncSummary(site, since string) string {
	if since == "" {
		since = "the worker's KF_OUTAGES_SINCE"
	}
	return fmt.Sprintf("Sync site %s: fetch all outages and the site's devices, keep the site's since %s, name them, post them", site, since)
}
