// Package workflows holds relay's Temporal workflows: deterministic orchestration only.
// Every retry policy and timeout is declared here, at the top of the workflow's file;
// side effects live in package activities.
package workflows

import "time"

// Task queues. relay-geoip carries only the rate-limited geolocation calls, so that its
// limit never slows the other jobs; relay-merge only the merges, whose workflow tasks an
// HTTP request waits on, so that no backlog of other jobs' tasks (a burst of geolocation
// lookups) is ever ahead of them.
const (
	TaskQueue      = "relay"
	GeoIPTaskQueue = "relay-geoip"
	MergeTaskQueue = "relay-merge"
)

// TaskQueues lists every queue a relay worker polls.
var TaskQueues = []string{TaskQueue, GeoIPTaskQueue, MergeTaskQueue}

// Workflow type names, as the Web UI and the temporal CLI show them.
const (
	PingWorkflowType                     = "Ping"
	SyncSiteOutagesWorkflowType          = "SyncSiteOutages"
	ScheduledSyncSiteOutagesWorkflowType = "ScheduledSyncSiteOutages"
	MergeEventSubscriptionsWorkflowType  = "MergeEventSubscriptions"
	AggregateIncidentsWorkflowType       = "AggregateIncidents"
	RefreshIncidentsWorkflowType         = "RefreshIncidents"
	SweepStagedBlobsWorkflowType         = "SweepStagedBlobs"
	GeolocateWorkflowType                = "Geolocate"
)

// All maps every workflow type name to its function: the worker registers these, and
// the replay test replays histories against them.
func All() map[string]any {
	return map[string]any{
		PingWorkflowType:                     Ping,
		SyncSiteOutagesWorkflowType:          SyncSiteOutages,
		ScheduledSyncSiteOutagesWorkflowType: ScheduledSyncSiteOutages,
		MergeEventSubscriptionsWorkflowType:  MergeEventSubscriptions,
		AggregateIncidentsWorkflowType:       AggregateIncidents,
		RefreshIncidentsWorkflowType:         RefreshIncidents,
		SweepStagedBlobsWorkflowType:         SweepStagedBlobs,
		GeolocateWorkflowType:                Geolocate,
	}
}

// upstreamHeartbeatTimeout is how soon Temporal gives up on an activity attempt whose
// worker stopped heartbeating while it waited on an upstream (the activities heartbeat
// every third of it): a killed worker's calls are retried elsewhere after this, not after
// their StartToClose.
const upstreamHeartbeatTimeout = 10 * time.Second
