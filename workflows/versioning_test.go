package workflows

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"relay/internal/testenv"
)

// The worked example of changing a workflow safely (README, "Changing a workflow safely").
//
// SyncSiteOutages used to fail without dropping what its fetches had staged. Version 1
// drops it. Runs that failed before the change have histories without the cleanup:
// SyncSiteOutages-unknown-site-v0.json was recorded from the code before it,
// SyncSiteOutages-unknown-site-before-outcomes.json from the code after it (and before the
// next change, record-outcome, which the naive variant below does not make).
const (
	historyBeforeChange = "SyncSiteOutages-unknown-site-v0.json"
	historyAfterChange  = "SyncSiteOutages-unknown-site-before-outcomes.json"
)

func replaySyncSiteOutages(t *testing.T, wf func(workflow.Context, SyncSiteOutagesInput) (SyncSiteOutagesResult, error), file string) error {
	t.Helper()
	replayer := worker.NewWorkflowReplayer()
	replayer.RegisterWorkflowWithOptions(wf, workflow.RegisterOptions{Name: SyncSiteOutagesWorkflowType})
	return replayer.ReplayWorkflowHistoryFromJSONFile(sdklog.NewStructuredLogger(testenv.Logger(t)), filepath.Join("testdata", file))
}

// With workflow.GetVersion, both the old history and the new one replay: old runs keep
// their old path, new runs take the new one.
func TestVersionedChangeReplaysOldAndNewHistories(t *testing.T) {
	require.NoError(t, replaySyncSiteOutages(t, SyncSiteOutages, historyBeforeChange))
	require.NoError(t, replaySyncSiteOutages(t, SyncSiteOutages, historyAfterChange))
}

// The same change made naively, without workflow.GetVersion, cannot continue an old run:
// on replay it schedules a cleanup the history does not have. This is what the replay
// tests exist to catch before a deploy does.
func TestUnversionedChangeBreaksOldHistories(t *testing.T) {
	alwaysCleanUp := func(workflow.Context) bool { return true }
	naive := func(ctx workflow.Context, in SyncSiteOutagesInput) (SyncSiteOutagesResult, error) {
		return syncSiteOutages(ctx, in, alwaysCleanUp)
	}
	err := replaySyncSiteOutages(t, naive, historyBeforeChange)
	require.Error(t, err)
	require.Contains(t, err.Error(), "nondeterministic")
	// Only old runs break: the replayer skips a version marker the code does not ask for,
	// so the new history replays even here. That is why the old history must be kept.
	require.NoError(t, replaySyncSiteOutages(t, naive, historyAfterChange))
}
