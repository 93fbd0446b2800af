package workflows

import (
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"relay/activities"
	"relay/internal/incidents"
)

// incidentsRetryPolicy: the incidents API is slow and sometimes fails; 5xx, 429, time-outs
// and dropped connections are retried with backoff, bounded by time (the fetch options'
// ScheduleToClose), not by a count: the eight fetches go out together, so a rate-limited
// API turns most of them away at each try, and must slow a refresh down, not fail it.
// 401/403 (bad credentials) and answers that break the API's shape are final.
var incidentsRetryPolicy = &temporal.RetryPolicy{
	InitialInterval:        time.Second,
	BackoffCoefficient:     2,
	MaximumInterval:        30 * time.Second,
	NonRetryableErrorTypes: append([]string{activities.ErrInvalidUpstreamData}, activities.NonRetryableUpstreamErrors...),
}

// incidentsFetchOptions: each call may take several seconds; the fetch heartbeats while it
// waits, so a worker that dies mid-call is replaced within HeartbeatTimeout.
var incidentsFetchOptions = workflow.ActivityOptions{
	StartToCloseTimeout:    time.Minute,
	HeartbeatTimeout:       upstreamHeartbeatTimeout,
	ScheduleToCloseTimeout: 5 * time.Minute,
	RetryPolicy:            incidentsRetryPolicy,
}

// incidentsBuildOptions: building touches only the store; a failure there is relay's own
// (a busy database), worth a few quick tries.
var incidentsBuildOptions = workflow.ActivityOptions{
	StartToCloseTimeout: 2 * time.Minute,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval: time.Second, BackoffCoefficient: 2, MaximumAttempts: 3,
		NonRetryableErrorTypes: []string{activities.ErrInvalidUpstreamData},
	},
}

// IncidentsRunTimeout bounds one AggregateIncidents run, scheduled or manual (its starter
// sets it as the workflow run timeout): beyond every fetch's ScheduleToClose and the build,
// so that a run stuck for another reason ends and the next refresh can start.
const IncidentsRunTimeout = 15 * time.Minute

// IncidentsScheduleOverlap: a refresh still running when the next is due makes that one
// pointless, so it is skipped (and so is a manual trigger of the schedule).
const IncidentsScheduleOverlap = enumspb.SCHEDULE_OVERLAP_POLICY_SKIP

// IncidentsScheduleID is the schedule that rebuilds the snapshot.
const IncidentsScheduleID = "incidents-refresh"

// IncidentsScheduledWorkflowID is the id the schedule gives its runs (Temporal appends
// the time to it).
const IncidentsScheduledWorkflowID = "incidents"

// IncidentsManualWorkflowID names a refresh asked for by POST /incidents/refresh.
func IncidentsManualWorkflowID(at time.Time) string {
	return "incidents/manual-" + at.UTC().Format("20060102T150405.000Z")
}

// AggregateIncidentsInput is empty: a refresh always takes everything. It is a struct so
// that fields can be added without breaking the schedule's stored arguments.
type AggregateIncidentsInput struct{}

// AggregateIncidentsResult is a small summary: the incident lists never enter history.
type AggregateIncidentsResult struct {
	SnapshotID int64             `json:"snapshot_id"`
	Summary    incidents.Summary `json:"summary"`
	Bytes      int               `json:"bytes"`
	DurationMS int64             `json:"duration_ms"`
}

// AggregateIncidents fetches the identities and the seven incident types at once, builds
// the grouped snapshot and publishes it. If any fetch fails for good, the run fails and
// nothing is published: servers keep the last good snapshot.
func AggregateIncidents(ctx workflow.Context, _ AggregateIncidentsInput) (AggregateIncidentsResult, error) {
	start := workflow.Now(ctx)
	fetchCtx := workflow.WithActivityOptions(ctx, incidentsFetchOptions)
	var a *activities.Incidents

	identitiesF := workflow.ExecuteActivity(fetchCtx, a.FetchIdentities)
	typeF := make([]workflow.Future, len(incidents.Types))
	for i, typ := range incidents.Types {
		typeF[i] = workflow.ExecuteActivity(fetchCtx, a.FetchIncidents, typ)
	}
	in := activities.BuildInput{TypeKeys: make(map[string]string, len(incidents.Types))}
	var staged activities.Staged
	if err := identitiesF.Get(ctx, &staged); err != nil {
		return AggregateIncidentsResult{}, fmt.Errorf("fetch identities: %w", err)
	}
	in.IdentitiesKey = staged.Key
	for i, typ := range incidents.Types {
		if err := typeF[i].Get(ctx, &staged); err != nil {
			return AggregateIncidentsResult{}, fmt.Errorf("fetch %s incidents: %w", typ, err)
		}
		in.TypeKeys[typ] = staged.Key
	}

	var built activities.BuildResult
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, incidentsBuildOptions), a.BuildSnapshot, in).
		Get(ctx, &built); err != nil {
		return AggregateIncidentsResult{}, fmt.Errorf("build snapshot: %w", err)
	}
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, stagingCleanupOptions), a.DropStagedIncidents).
		Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("staged incident lists left in the store", "error", err)
	}
	return AggregateIncidentsResult{
		SnapshotID: built.SnapshotID, Summary: built.Summary, Bytes: built.Bytes,
		DurationMS: workflow.Now(ctx).Sub(start).Milliseconds(),
	}, nil
}
