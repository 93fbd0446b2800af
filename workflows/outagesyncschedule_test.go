package workflows

import (
	"errors"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/workflow"
)

// The schedule's ScheduledSyncSiteOutages runs the sync as a child under the site's one
// sync id (its memo, which the test environment does not pass on, is checked end to end in
// internal/app).
func (s *OutageSyncSuite) TestScheduledSyncRunsTheSyncUnderTheSitesOneID() {
	s.env.RegisterWorkflowWithOptions(SyncSiteOutages, workflow.RegisterOptions{Name: SyncSiteOutagesWorkflowType})
	in := SyncSiteOutagesInput{SiteID: "norwich-pear-tree", Since: "2022-01-01T00:00:00.000Z"}
	var childID string
	var childIn SyncSiteOutagesInput
	s.env.OnWorkflow(SyncSiteOutagesWorkflowType, mock.Anything, mock.Anything).
		Return(func(ctx workflow.Context, got SyncSiteOutagesInput) (SyncSiteOutagesResult, error) {
			info := workflow.GetInfo(ctx)
			childID, childIn = info.WorkflowExecution.ID, got
			return SyncSiteOutagesResult{SiteID: got.SiteID, Since: got.Since, Posted: 3}, nil
		}).Once()
	s.env.ExecuteWorkflow(ScheduledSyncSiteOutages, in)
	var res ScheduledSyncSiteOutagesResult
	s.Require().NoError(s.env.GetWorkflowResult(&res))
	s.Equal(OutageSyncWorkflowID(in.SiteID), childID)
	s.Equal(in, childIn)
	s.Equal(OutageSyncWorkflowID(in.SiteID), res.WorkflowID)
	s.False(res.Joined)
	s.Require().NotNil(res.Result)
	s.Equal(3, res.Result.Posted)
}

// A failed sync fails the scheduled run, so that the schedule's runs show it.
func (s *OutageSyncSuite) TestScheduledSyncFailsWithTheSync() {
	s.env.RegisterWorkflowWithOptions(SyncSiteOutages, workflow.RegisterOptions{Name: SyncSiteOutagesWorkflowType})
	s.env.OnWorkflow(SyncSiteOutagesWorkflowType, mock.Anything, mock.Anything).
		Return(SyncSiteOutagesResult{}, errors.New("unknown site")).Once()
	s.env.ExecuteWorkflow(ScheduledSyncSiteOutages, SyncSiteOutagesInput{SiteID: "atlantis"})
	s.Require().Error(s.env.GetWorkflowError())
}
