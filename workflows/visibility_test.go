package workflows

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"relay/activities"
	"relay/internal/outagesync"
)

// A run records how it ended where an operator filters (search attributes) and where the
// status page reads (memo): a pong, and a failure with its type and message.
func TestARunRecordsItsEnding(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	t.Run("completed", func(t *testing.T) {
		env := ts.NewTestWorkflowEnvironment()
		env.RegisterWorkflow(Ping)
		var p *activities.Pinger
		env.OnActivity(p.Pong, mock.Anything, "hi").Return(activities.Pong{Message: "hi", Worker: "w"}, nil)
		env.OnUpsertTypedSearchAttributes(temporal.NewSearchAttributes(JobAttribute.ValueSet(JobPing),
			OutcomeAttribute.ValueSet(OutcomePong), CountAttribute.ValueSet(0))).Return(nil).Once()
		env.ExecuteWorkflow(Ping, PingInput{Message: "hi"})
		require.NoError(t, env.GetWorkflowError())
		env.AssertExpectations(t)
	})
	t.Run("failed", func(t *testing.T) {
		env := ts.NewTestWorkflowEnvironment()
		env.RegisterWorkflow(Ping)
		env.OnUpsertTypedSearchAttributes(temporal.NewSearchAttributes(JobAttribute.ValueSet(JobPing),
			OutcomeAttribute.ValueSet(OutcomeFailed))).Return(nil).Once()
		env.OnUpsertMemo(map[string]any{FailureMemo: Failure{Type: activities.ErrInvalidInput,
			Message: `queue "nope" is not one of relay's task queues [relay relay-geoip relay-merge]`}}).Return(nil).Once()
		env.ExecuteWorkflow(Ping, PingInput{Message: "hi", Queue: "nope"})
		require.Error(t, env.GetWorkflowError())
		env.AssertExpectations(t)
	})
}

func TestFailureOfKeepsTheApplicationErrorAndBoundsTheMessage(t *testing.T) {
	long := make([]byte, 2*maxFailureMessage)
	for i := range long {
		long[i] = 'x'
	}
	f := failureOf(temporal.NewApplicationError(string(long), activities.ErrUpstreamNotFound))
	assert.Equal(t, activities.ErrUpstreamNotFound, f.Type)
	assert.Len(t, f.Message, maxFailureMessage+len("…"))
	assert.Equal(t, Failure{Type: "error", Message: assert.AnError.Error()}, failureOf(assert.AnError))
}

// A run says in words what it is doing: the Web UI's "current details", answered by the
// SDK's metadata query.
func TestARunSaysWhatItIsDoing(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(SyncSiteOutages)
	var kf *activities.KF
	var seen []string
	env.OnActivity(kf.FetchOutages, mock.Anything, "kingfisher").Return(func(context.Context, string) (activities.StagedOutages, error) {
		seen = append(seen, detailsOf(t, env))
		return activities.StagedOutages{Key: "o"}, nil
	})
	env.OnActivity(kf.FetchSiteInfo, mock.Anything, "kingfisher").Return(activities.SiteInfo{DevicesKey: "d"}, nil)
	env.OnActivity(kf.FilterSiteOutages, mock.Anything, mock.Anything).Return(activities.FilterResult{PostKey: "p", Counts: outagesync.Counts{Kept: 15}}, nil)
	env.OnActivity(kf.PostSiteOutages, mock.Anything, mock.Anything).Return(func(context.Context, activities.PostInput) (int, error) {
		seen = append(seen, detailsOf(t, env))
		return 15, nil
	})
	env.OnActivity(kf.DropStagedOutages, mock.Anything, "kingfisher").Return(nil)
	env.ExecuteWorkflow(SyncSiteOutages, SyncSiteOutagesInput{SiteID: "kingfisher"})
	require.NoError(t, env.GetWorkflowError())
	assert.Equal(t, []string{"fetching all outages and the devices of site kingfisher", "posting 15 outages of site kingfisher"}, seen)
}

// detailsOf asks a running workflow for its current details, as the Web UI does.
func detailsOf(t *testing.T, env *testsuite.TestWorkflowEnvironment) string {
	t.Helper()
	v, err := env.QueryWorkflow("__temporal_workflow_metadata")
	require.NoError(t, err)
	var md sdkpb.WorkflowMetadata
	require.NoError(t, v.Get(&md))
	return md.GetCurrentDetails()
}
