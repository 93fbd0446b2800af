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
// waits, so a worker that dies mid-call is replaced within HeartbeatTimeout, and a fetch
// cancelled because a sibling failed hears of it at its next heartbeat.
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

// stagedBlobsSweepOptions: one DELETE on an index; a few tries, the next sweep does the rest.
var stagedBlobsSweepOptions = workflow.ActivityOptions{
	StartToCloseTimeout: time.Minute,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval: time.Second, BackoffCoefficient: 2, MaximumAttempts: 3,
		NonRetryableErrorTypes: []string{activities.ErrInvalidInput},
	},
}

// IncidentsRunTimeout bounds one AggregateIncidents run, scheduled or manual (its starter
// sets it as the workflow run timeout): beyond every fetch's ScheduleToClose and the build,
// so that a run stuck for another reason ends and the next refresh can start.
const IncidentsRunTimeout = 15 * time.Minute

// RefreshIncidentsRunTimeout bounds the schedule's RefreshIncidents run: a minute beyond
// the refresh it waits for, so that the refresh's own timeout is the one that fires.
const RefreshIncidentsRunTimeout = IncidentsRunTimeout + time.Minute

// IncidentsScheduleOverlap: a refresh still running when the next is due makes that one
// pointless, so it is skipped (and so is a trigger of the schedule while one runs).
const IncidentsScheduleOverlap = enumspb.SCHEDULE_OVERLAP_POLICY_SKIP

// IncidentsScheduleID is the schedule that rebuilds the snapshot.
const IncidentsScheduleID = "incidents-refresh"

// IncidentsScheduledWorkflowID is the id the schedule gives its RefreshIncidents runs
// (Temporal appends the time to it).
const IncidentsScheduledWorkflowID = "incidents"

// IncidentsRefreshWorkflowID is the one id every AggregateIncidents run has, whoever
// starts it (the schedule's RefreshIncidents or POST /incidents/refresh): Temporal runs at
// most one execution of an id at a time, so at most one refresh runs in the deployment,
// and a start while one runs finds it (and joins it) instead of starting another.
const IncidentsRefreshWorkflowID = "incidents/refresh"

// StagedBlobsSweepScheduleID is the schedule that drops staged blobs runs left behind.
const StagedBlobsSweepScheduleID = "staged-blobs-sweep"

// StagedBlobsSweepWorkflowID is the id the sweep schedule gives its runs (plus the time).
const StagedBlobsSweepWorkflowID = "staged-blobs-sweep"

// StagedBlobsSweepInterval is how often the sweep runs.
const StagedBlobsSweepInterval = time.Hour

// AggregateIncidentsInput is empty: a refresh always takes everything. It is a struct so
// that fields can be added without breaking the schedule's stored arguments.
type AggregateIncidentsInput struct{}

// AggregateIncidentsResult is a small summary: the incident lists never enter history.
// Superseded says the snapshot was built but not published, because one of a refresh that
// started later was there first (SnapshotID is then that one's).
type AggregateIncidentsResult struct {
	SnapshotID int64             `json:"snapshot_id"`
	Summary    incidents.Summary `json:"summary"`
	Bytes      int               `json:"bytes"`
	GzipBytes  int               `json:"gzip_bytes,omitempty"`
	Superseded bool              `json:"superseded,omitempty"`
	DurationMS int64             `json:"duration_ms"`
}

// incidentsCleanupChange is the workflow.GetVersion change id of version 1 of
// AggregateIncidents: on the first fetch that fails for good it cancels the others and
// waits for them to stop, and a failed (or cancelled) run drops what it staged. Runs
// started before it, and their histories, keep the old path: the fetches awaited in order,
// nothing dropped on failure (the sweep schedule takes that within a day).
const incidentsCleanupChange = "incidents-cleanup-on-failure"

// AggregateIncidents fetches the identities and the seven incident types at once, builds
// the grouped snapshot and publishes it, unless a refresh that started later published
// first. If any fetch fails for good, the run fails and nothing is published: servers keep
// the last good snapshot, and what the run staged is dropped.
func AggregateIncidents(ctx workflow.Context, _ AggregateIncidentsInput) (res AggregateIncidentsResult, err error) {
	defer func() { recordEnding(ctx, incidentsEnding(&res), err) }()
	cleanUp := workflow.GetVersion(ctx, incidentsCleanupChange, workflow.DefaultVersion, 1) >= 1
	return aggregateIncidents(ctx, cleanUp)
}

// aggregateIncidents is AggregateIncidents with its versioned decision passed in, so that
// a test can run both paths.
func aggregateIncidents(ctx workflow.Context, cleanUp bool) (_ AggregateIncidentsResult, err error) {
	info := workflow.GetInfo(ctx)
	start := workflow.Now(ctx)
	logger := workflow.GetLogger(ctx)
	var a *activities.Incidents

	fetchOptions := incidentsFetchOptions
	fetchCtx, cancelFetches := workflow.WithCancel(ctx)
	if cleanUp {
		// A cancelled fetch's future resolves only once the activity has stopped: nothing
		// it stages can land after the cleanup.
		fetchOptions.WaitForCancellation = true
		defer func() {
			if err == nil {
				return
			}
			// Disconnected: a cancelled run cleans up too.
			cleanupCtx, _ := workflow.NewDisconnectedContext(workflow.WithActivityOptions(ctx, stagingCleanupOptions))
			if dropErr := workflow.ExecuteActivity(cleanupCtx, a.DropStagedIncidents).Get(cleanupCtx, nil); dropErr != nil {
				logger.Warn("staged incident lists of a failed refresh left in the store", "error", dropErr)
			}
		}()
	}
	fetchCtx = workflow.WithActivityOptions(fetchCtx, fetchOptions)

	say(ctx, "fetching the identities and the %d incident types at once", len(incidents.Types))
	identitiesF := workflow.ExecuteActivity(fetchCtx, a.FetchIdentities)
	typeF := make([]workflow.Future, len(incidents.Types))
	for i, typ := range incidents.Types {
		typeF[i] = workflow.ExecuteActivity(fetchCtx, a.FetchIncidents, typ)
	}
	in := activities.BuildInput{TypeKeys: make(map[string]string, len(incidents.Types)), AsOf: info.WorkflowStartTime}
	if cleanUp {
		err = awaitFetches(ctx, cancelFetches, identitiesF, typeF, &in)
	} else {
		err = awaitFetchesInOrder(ctx, identitiesF, typeF, &in)
	}
	if err != nil {
		return AggregateIncidentsResult{}, err
	}

	say(ctx, "building the snapshot: grouping by employee and priority, then publishing it unless a later refresh did")
	var built activities.BuildResult
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, incidentsBuildOptions), a.BuildSnapshot, in).
		Get(ctx, &built); err != nil {
		return AggregateIncidentsResult{}, fmt.Errorf("build snapshot: %w", err)
	}
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, stagingCleanupOptions), a.DropStagedIncidents).
		Get(ctx, nil); err != nil {
		logger.Warn("staged incident lists left in the store", "error", err)
	}
	return AggregateIncidentsResult{
		SnapshotID: built.SnapshotID, Summary: built.Summary, Bytes: built.Bytes, GzipBytes: built.GzipBytes,
		Superseded: built.Superseded, DurationMS: workflow.Now(ctx).Sub(start).Milliseconds(),
	}, nil
}

// incidentsEnding is what a refresh records as it ends: its outcome and the snapshot's size.
func incidentsEnding(res *AggregateIncidentsResult) ending {
	e := ending{job: JobIncidents, outcome: OutcomePublished, count: res.Summary.Employees, result: res}
	if res.Superseded {
		e.outcome = OutcomeSuperseded
	}
	return e
}

// awaitFetchesInOrder is version 0: each fetch awaited in turn, the first failure (in that
// order) returned at once, the others left running.
func awaitFetchesInOrder(ctx workflow.Context, identitiesF workflow.Future, typeF []workflow.Future, in *activities.BuildInput) error {
	var staged activities.Staged
	if err := identitiesF.Get(ctx, &staged); err != nil {
		return fmt.Errorf("fetch identities: %w", err)
	}
	in.IdentitiesKey = staged.Key
	for i, typ := range incidents.Types {
		if err := typeF[i].Get(ctx, &staged); err != nil {
			return fmt.Errorf("fetch %s incidents: %w", typ, err)
		}
		in.TypeKeys[typ] = staged.Key
	}
	return nil
}

// awaitFetches waits for every fetch as it ends; the first that fails for good cancels the
// others, and it still waits for all of them to stop before it returns that failure.
func awaitFetches(ctx workflow.Context, cancel workflow.CancelFunc, identitiesF workflow.Future, typeF []workflow.Future, in *activities.BuildInput) error {
	var first error
	sel := workflow.NewSelector(ctx)
	done := 0
	add := func(f workflow.Future, what string, keep func(key string)) {
		sel.AddFuture(f, func(f workflow.Future) {
			done++
			say(ctx, "fetching the identities and the incident types: %d of %d done", done, 1+len(typeF))
			var staged activities.Staged
			if err := f.Get(ctx, &staged); err != nil {
				if first == nil {
					first = fmt.Errorf("fetch %s: %w", what, err)
					cancel()
				}
				return
			}
			keep(staged.Key)
		})
	}
	add(identitiesF, "identities", func(key string) { in.IdentitiesKey = key })
	for i, typ := range incidents.Types {
		add(typeF[i], typ+" incidents", func(key string) { in.TypeKeys[typ] = key })
	}
	for range 1 + len(typeF) {
		sel.Select(ctx)
	}
	return first
}

// RefreshIncidentsInput is empty; a struct so that fields can be added.
type RefreshIncidentsInput struct{}

// RefreshIncidentsResult says what a scheduled refresh did: ran AggregateIncidents as
// IncidentsRefreshWorkflowID (RunID, Result), or found one running (started by POST
// /incidents/refresh) and left this tick to it (Joined).
type RefreshIncidentsResult struct {
	WorkflowID string                    `json:"workflow_id"`
	RunID      string                    `json:"run_id,omitempty"`
	Joined     bool                      `json:"joined,omitempty"`
	Result     *AggregateIncidentsResult `json:"result,omitempty"`
}

// incidentsRefreshChildOptions run the refresh under its one id. Abandoned, not
// terminated, if this run ends first: requests may have joined the refresh.
var incidentsRefreshChildOptions = workflow.ChildWorkflowOptions{
	WorkflowID:            IncidentsRefreshWorkflowID,
	TaskQueue:             TaskQueue,
	WorkflowRunTimeout:    IncidentsRunTimeout,
	WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
	TypedSearchAttributes: jobAttributes(JobIncidents),
	StaticSummary:         incidentsRefreshSummary,
}

// RefreshIncidents is what the schedule runs: AggregateIncidents as a child under the one
// refresh id, so that a scheduled refresh and a requested one never run side by side (the
// schedule names its own runs <id>-<time>, which no one could join).
func RefreshIncidents(ctx workflow.Context, _ RefreshIncidentsInput) (out RefreshIncidentsResult, err error) {
	defer func() {
		e := ending{job: JobIncidents, outcome: OutcomeJoined}
		if out.Result != nil {
			e = incidentsEnding(out.Result)
		}
		recordEnding(ctx, e, err)
	}()
	say(ctx, "running the refresh as %s", IncidentsRefreshWorkflowID)
	child := workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, incidentsRefreshChildOptions),
		AggregateIncidentsWorkflowType, AggregateIncidentsInput{})
	var exec workflow.Execution
	if err := child.GetChildWorkflowExecution().Get(ctx, &exec); err != nil {
		if temporal.IsWorkflowExecutionAlreadyStartedError(err) {
			workflow.GetLogger(ctx).Info("a refresh is running already; this one is left to it")
			return RefreshIncidentsResult{WorkflowID: IncidentsRefreshWorkflowID, Joined: true}, nil
		}
		return RefreshIncidentsResult{}, fmt.Errorf("start refresh: %w", err)
	}
	var res AggregateIncidentsResult
	if err := child.Get(ctx, &res); err != nil {
		return RefreshIncidentsResult{}, fmt.Errorf("refresh %s: %w", exec.RunID, err)
	}
	return RefreshIncidentsResult{WorkflowID: exec.ID, RunID: exec.RunID, Result: &res}, nil
}

// SweepStagedBlobsInput: OlderThan is a Go duration ("24h"); empty means
// activities.StagedBlobsMaxAge.
type SweepStagedBlobsInput struct {
	OlderThan string `json:"older_than,omitempty"`
}

// SweepStagedBlobsResult counts the blobs dropped.
type SweepStagedBlobsResult struct {
	Deleted int64 `json:"deleted"`
}

// SweepStagedBlobs drops staged blobs older than a day: what runs that failed, timed out
// or were terminated before their own cleanup left in the store. The sweep schedule runs it.
func SweepStagedBlobs(ctx workflow.Context, in SweepStagedBlobsInput) (res SweepStagedBlobsResult, err error) {
	defer func() {
		recordEnding(ctx, ending{job: JobSweep, outcome: OutcomeSwept, count: int(res.Deleted), result: res}, err)
	}()
	age := activities.StagedBlobsMaxAge
	if in.OlderThan != "" {
		d, err := time.ParseDuration(in.OlderThan)
		if err != nil {
			return SweepStagedBlobsResult{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("older_than %q: want a duration like 24h", in.OlderThan), activities.ErrInvalidInput, err)
		}
		age = d
	}
	var a *activities.Incidents
	var n int64
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, stagedBlobsSweepOptions), a.SweepStagedBlobs, age).
		Get(ctx, &n); err != nil {
		return SweepStagedBlobsResult{}, fmt.Errorf("sweep staged blobs: %w", err)
	}
	return SweepStagedBlobsResult{Deleted: n}, nil
}
