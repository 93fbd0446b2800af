package workflows

import (
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// What an operator filters runs by in the Web UI and `temporal workflow list --query`.
// Search attributes are indexed in plain text (the payload codec never sees them): they
// hold ids and words relay chose, never customer data (no IP, name or title).
var (
	// JobAttribute is the job a run belongs to (one of the Job* values), whichever of the
	// job's workflow types it is.
	JobAttribute = temporal.NewSearchAttributeKeyKeyword("RelayJob")
	// OutcomeAttribute is how a run ended (one of the Outcome* values); unset while it runs.
	OutcomeAttribute = temporal.NewSearchAttributeKeyKeyword("RelayOutcome")
	// SiteAttribute is the site an outage sync syncs.
	SiteAttribute = temporal.NewSearchAttributeKeyKeyword("RelaySite")
	// EventIDAttribute is the calendar event a merge merges.
	EventIDAttribute = temporal.NewSearchAttributeKeyKeyword("RelayEventID")
	// CountAttribute is how many things a run produced: events located, subscribers
	// merged, employees published, outages posted, staged blobs dropped.
	CountAttribute = temporal.NewSearchAttributeKeyInt64("RelayCount")
)

// SearchAttributes are relay's custom search attributes with their types: what `relay dev`
// registers and a cluster's operator creates (README "Finding a job").
func SearchAttributes() map[string]enumspb.IndexedValueType {
	out := map[string]enumspb.IndexedValueType{}
	for _, k := range []temporal.SearchAttributeKey{JobAttribute, OutcomeAttribute, SiteAttribute, EventIDAttribute, CountAttribute} {
		out[k.GetName()] = k.GetValueType()
	}
	return out
}

// The jobs, as RelayJob says them.
const (
	JobGeolocation = "geolocation"
	JobMerge       = "merge"
	JobIncidents   = "incidents"
	JobOutageSync  = "outage-sync"
	JobSweep       = "sweep"
	JobPing        = "ping"
)

// The outcomes, as RelayOutcome says them. Each job ends in one of its own, or in
// OutcomeFailed or OutcomeCancelled.
const (
	OutcomeLocated     = "located"     // geolocation: the API placed the IP (or the cache had it)
	OutcomeUnlocatable = "unlocatable" // geolocation: the API's verdict is that it cannot
	OutcomeMerged      = "merged"      // merge: answered with the event and its subscribers
	OutcomePublished   = "published"   // incidents: the snapshot is the one served
	OutcomeSuperseded  = "superseded"  // incidents: built, but a later refresh published first
	OutcomeJoined      = "joined"      // a scheduled run found one running and left its tick to it
	OutcomeSynced      = "synced"      // outage sync: the site's outages are posted
	OutcomeSwept       = "swept"       // sweep: old staged blobs dropped
	OutcomePong        = "pong"        // ping: a worker answered
	OutcomeFailed      = "failed"      // the run failed (the Web UI shows why)
	OutcomeCancelled   = "cancelled"   // someone cancelled the run
)

// The memo fields a run records as it ends: the status page reads them from the list of
// runs instead of each run's history.
const (
	ResultMemo  = "result"  // a run that completed: its result's counts (never customer data)
	FailureMemo = "failure" // a run that failed: a Failure
)

// Failure says why a run failed: the first application error in its chain (the upstream's
// verdict or relay's own error type), else the error as the workflow returned it.
type Failure struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// maxFailureMessage bounds the message a memo keeps: an upstream's error body can be long.
const maxFailureMessage = 500

func failureOf(err error) Failure {
	f := Failure{Type: "error", Message: err.Error()}
	var app *temporal.ApplicationError
	var timeout *temporal.TimeoutError
	switch {
	case errors.As(err, &app):
		f.Type, f.Message = app.Type(), app.Message()
	case errors.As(err, &timeout):
		f.Type = "timeout"
	}
	if len(f.Message) > maxFailureMessage {
		f.Message = f.Message[:maxFailureMessage] + "…"
	}
	return f
}

// jobAttributes are the search attributes a run of job has from its start.
func jobAttributes(job string, more ...temporal.SearchAttributeUpdate) temporal.SearchAttributes {
	return temporal.NewSearchAttributes(append([]temporal.SearchAttributeUpdate{JobAttribute.ValueSet(job)}, more...)...)
}

// say sets what the run is doing, in words, for the Web UI and `temporal workflow describe`
// (the workflow's current details: answered by a query, so no history event, no replay
// concern).
func say(ctx workflow.Context, format string, args ...any) {
	workflow.SetCurrentDetails(ctx, fmt.Sprintf(format, args...))
}

// visibilityChange is the workflow.GetVersion change id of version 1 of every workflow's
// ending: it records the run's outcome and counts (search attributes and memo). Histories
// of runs that ended before it replay without those two commands.
const visibilityChange = "record-outcome"

// ending is what a run records as it ends.
type ending struct {
	job     string
	outcome string // "" takes OutcomeFailed or OutcomeCancelled from the run's error
	count   int
	result  any // the memo's ResultMemo: counts only
	more    []temporal.SearchAttributeUpdate
}

// recordEnding sets the run's outcome and counts as it returns err: call it deferred, with
// the run's named error. The job is set again so that a run started by hand (without
// relay's start options) is found by its job too. A continue-as-new records nothing: the
// next run will.
func recordEnding(ctx workflow.Context, e ending, err error) {
	var can *workflow.ContinueAsNewError
	if errors.As(err, &can) {
		return
	}
	if workflow.GetVersion(ctx, visibilityChange, workflow.DefaultVersion, 1) < 1 {
		return
	}
	switch {
	case err == nil:
	case temporal.IsCanceledError(err):
		e.outcome = OutcomeCancelled
	default:
		e.outcome = OutcomeFailed
	}
	updates := append([]temporal.SearchAttributeUpdate{JobAttribute.ValueSet(e.job), OutcomeAttribute.ValueSet(e.outcome)}, e.more...)
	if err == nil { // a failed run's partial count would only mislead a query
		updates = append(updates, CountAttribute.ValueSet(int64(e.count)))
	}
	logger := workflow.GetLogger(ctx)
	if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
		logger.Warn("outcome not recorded in search attributes", "error", err)
	}
	var memo map[string]any
	switch {
	case err != nil && e.outcome == OutcomeFailed:
		memo = map[string]any{FailureMemo: failureOf(err)}
	case err == nil && e.result != nil:
		memo = map[string]any{ResultMemo: e.result}
	}
	if memo != nil {
		if err := workflow.UpsertMemo(ctx, memo); err != nil {
			logger.Warn("result not recorded in the memo", "error", err)
		}
	}
}
