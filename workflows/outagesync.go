package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"relay/activities"
	"relay/internal/outagesync"
)

// outageSyncRetryPolicy: the outage API answers 429 when the key is over its limit and 500
// at random; both pass with time, so back off up to half a minute, for a bounded number of
// attempts. 400/403/404 and undecodable answers are the API saying no: never retried. (An
// outage the filter cannot read is no error: it is dropped and counted.)
var outageSyncRetryPolicy = &temporal.RetryPolicy{
	InitialInterval:        500 * time.Millisecond,
	BackoffCoefficient:     2,
	MaximumInterval:        30 * time.Second,
	MaximumAttempts:        12,
	NonRetryableErrorTypes: append([]string{activities.ErrInvalidInput}, activities.NonRetryableUpstreamErrors...),
}

// outageSyncActivityOptions bound each step; ScheduleToClose bounds all its retries together.
var outageSyncActivityOptions = workflow.ActivityOptions{
	StartToCloseTimeout:    time.Minute,
	ScheduleToCloseTimeout: 10 * time.Minute,
	RetryPolicy:            outageSyncRetryPolicy,
}

// outageSyncCallOptions are for the steps that call the API: they heartbeat while they
// wait, so a worker that dies mid-call is replaced within HeartbeatTimeout, not StartToClose.
var outageSyncCallOptions = func() workflow.ActivityOptions {
	o := outageSyncActivityOptions
	o.HeartbeatTimeout = upstreamHeartbeatTimeout
	return o
}()

// stagingCleanupOptions: dropping staged lists is housekeeping; a few tries, then leave it.
var stagingCleanupOptions = workflow.ActivityOptions{
	StartToCloseTimeout: 30 * time.Second,
	RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
}

// OutageSyncWorkflowID names a site's sync: one per site runs at a time.
func OutageSyncWorkflowID(siteID string) string { return "outage-sync/" + siteID }

// SyncSiteOutagesInput is what a person types to re-run a sync from the CLI.
type SyncSiteOutagesInput struct {
	SiteID string `json:"site_id"`
	// Since is the RFC 3339 cutoff; empty means the worker's KF_OUTAGES_SINCE.
	Since string `json:"since,omitempty"`
}

// SyncSiteOutagesResult says what the sync did: of the Fetched outages (of every site), it
// kept Kept and dropped each of the others for one reason (outagesync.Filter), then posted
// Posted. DroppedInvalid counts the records it could not read (no device id, a begin or
// end that is not an RFC 3339 time...); results of runs before it was added read 0.
type SyncSiteOutagesResult struct {
	SiteID               string `json:"site_id"`
	Since                string `json:"since"`
	Fetched              int    `json:"fetched"`
	Kept                 int    `json:"kept"`
	DroppedBeforeSince   int    `json:"dropped_before_since"`
	DroppedUnknownDevice int    `json:"dropped_unknown_device"`
	DroppedInvalid       int    `json:"dropped_invalid"`
	Posted               int    `json:"posted"`
}

// dropStagedOnFailureChange is the workflow.GetVersion change id of the cleanup of a failed
// sync's staged lists (version 1). Runs started before it, and their histories, fail
// without cleaning up, as they did; README "Changing a workflow safely" tells the story.
const dropStagedOnFailureChange = "drop-staged-on-failure"

// dropsStagedOnFailure says whether this run cleans up after a failure: yes for runs
// that reach this point on code with the change, no when replaying an older run.
func dropsStagedOnFailure(ctx workflow.Context) bool {
	return workflow.GetVersion(ctx, dropStagedOnFailureChange, workflow.DefaultVersion, 1) >= 1
}

// SyncSiteOutages fetches all outages and the site's devices at once, keeps and names the
// site's outages at or after the cutoff, and posts them once.
func SyncSiteOutages(ctx workflow.Context, in SyncSiteOutagesInput) (res SyncSiteOutagesResult, err error) {
	defer func() { recordEnding(ctx, outageSyncEnding(in.SiteID, &res), err) }()
	return syncSiteOutages(ctx, in, dropsStagedOnFailure)
}

// outageSyncEnding is what a sync of site records as it ends: the outages it posted.
func outageSyncEnding(site string, res *SyncSiteOutagesResult) ending {
	return ending{job: JobOutageSync, outcome: OutcomeSynced, count: res.Posted, result: res,
		more: []temporal.SearchAttributeUpdate{SiteAttribute.ValueSet(site)}}
}

// syncSiteOutages is SyncSiteOutages with its versioned decision passed in, so that a test
// can show what the same change does without workflow.GetVersion.
func syncSiteOutages(ctx workflow.Context, in SyncSiteOutagesInput, cleanUpOnFailure func(workflow.Context) bool) (_ SyncSiteOutagesResult, err error) {
	if !outagesync.ValidSiteID(in.SiteID) {
		return SyncSiteOutagesResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("site_id %q: want 1 to 128 of A-Z, a-z, 0-9, _ and -", in.SiteID), activities.ErrInvalidInput, nil)
	}
	if in.Since != "" {
		if _, err := time.Parse(time.RFC3339Nano, in.Since); err != nil {
			return SyncSiteOutagesResult{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("since %q: want an RFC 3339 time like 2022-01-01T00:00:00.000Z", in.Since), activities.ErrInvalidInput, nil)
		}
	}
	logger := workflow.GetLogger(ctx)
	ctx = workflow.WithActivityOptions(ctx, outageSyncActivityOptions)
	callCtx := workflow.WithActivityOptions(ctx, outageSyncCallOptions)
	var kf *activities.KF
	defer func() {
		// A failed sync leaves what its fetches staged; drop it, even when the run was
		// cancelled (hence the disconnected context).
		if err != nil && cleanUpOnFailure(ctx) {
			cleanupCtx, _ := workflow.NewDisconnectedContext(workflow.WithActivityOptions(ctx, stagingCleanupOptions))
			if cleanupErr := workflow.ExecuteActivity(cleanupCtx, kf.DropStagedOutages, in.SiteID).Get(cleanupCtx, nil); cleanupErr != nil {
				logger.Warn("staged lists of a failed sync left in the store", "error", cleanupErr)
			}
		}
	}()

	say(ctx, "fetching all outages and the devices of site %s", in.SiteID)
	outagesF := workflow.ExecuteActivity(callCtx, kf.FetchOutages, in.SiteID)
	siteF := workflow.ExecuteActivity(callCtx, kf.FetchSiteInfo, in.SiteID)
	var staged activities.StagedOutages
	var site activities.SiteInfo
	if err := outagesF.Get(ctx, &staged); err != nil {
		return SyncSiteOutagesResult{}, fmt.Errorf("fetch outages: %w", err)
	}
	if err := siteF.Get(ctx, &site); err != nil {
		return SyncSiteOutagesResult{}, fmt.Errorf("fetch site %s: %w", in.SiteID, err)
	}

	say(ctx, "keeping and naming the site's outages")
	var filtered activities.FilterResult
	if err := workflow.ExecuteActivity(ctx, kf.FilterSiteOutages, activities.FilterInput{
		SiteID: in.SiteID, Since: in.Since, OutagesKey: staged.Key, DevicesKey: site.DevicesKey,
	}).Get(ctx, &filtered); err != nil {
		return SyncSiteOutagesResult{}, fmt.Errorf("filter outages: %w", err)
	}

	say(ctx, "posting %d outages of site %s", filtered.Counts.Kept, in.SiteID)
	var posted int
	if err := workflow.ExecuteActivity(callCtx, kf.PostSiteOutages, activities.PostInput{
		SiteID: in.SiteID, PostKey: filtered.PostKey,
	}).Get(ctx, &posted); err != nil {
		return SyncSiteOutagesResult{}, fmt.Errorf("post site outages: %w", err)
	}

	cleanupCtx := workflow.WithActivityOptions(ctx, stagingCleanupOptions)
	if err := workflow.ExecuteActivity(cleanupCtx, kf.DropStagedOutages, in.SiteID).Get(ctx, nil); err != nil {
		logger.Warn("staged lists left in the store", "error", err) // the sync itself succeeded
	}

	c := filtered.Counts
	logger.Info("outages synced", "site_id", in.SiteID, "kept", c.Kept, "dropped_invalid", c.DroppedInvalid, "posted", posted)
	return SyncSiteOutagesResult{
		SiteID: in.SiteID, Since: filtered.Since,
		Fetched: c.Fetched, Kept: c.Kept, DroppedBeforeSince: c.DroppedBeforeSince,
		DroppedUnknownDevice: c.DroppedUnknownDevice, DroppedInvalid: c.DroppedInvalid, Posted: posted,
	}, nil
}
