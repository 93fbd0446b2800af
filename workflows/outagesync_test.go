package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/suite"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"relay/activities"
	"relay/internal/outagesync"
)

type OutageSyncSuite struct {
	suite.Suite
	testsuite.WorkflowTestSuite
	env *testsuite.TestWorkflowEnvironment
	kf  *activities.KF
}

func TestOutageSync(t *testing.T) { suite.Run(t, new(OutageSyncSuite)) }

func (s *OutageSyncSuite) SetupTest() {
	logToTest(&s.WorkflowTestSuite, s.T())
	s.env = s.NewTestWorkflowEnvironment()
	s.kf = &activities.KF{}
	s.env.RegisterActivity(s.kf)
}

func (s *OutageSyncSuite) AfterTest(_, _ string) { s.env.AssertExpectations(s.T()) }

// The worked example of spec/upstreams.md §4 with eight records the filter cannot read
// among its six outages (as activities.TestKFDropsAndCountsInvalidOutages serves it).
var (
	staged   = activities.StagedOutages{Key: "k/outages", Count: 14}
	siteInfo = activities.SiteInfo{ID: "kingfisher", Name: "KingFisher", Devices: 2, DevicesKey: "k/devices"}
	filtered = activities.FilterResult{
		Since:   "2022-01-01T00:00:00.000Z",
		Counts:  outagesync.Counts{Fetched: 14, Kept: 3, DroppedBeforeSince: 2, DroppedUnknownDevice: 1, DroppedInvalid: 8},
		PostKey: "k/post",
	}
)

// happyFetches mocks the two fetches and the filter as succeeding.
func (s *OutageSyncSuite) happyFetches() {
	s.env.OnActivity(s.kf.FetchOutages, mock.Anything, "kingfisher").Return(staged, nil).Once()
	s.env.OnActivity(s.kf.FetchSiteInfo, mock.Anything, "kingfisher").Return(siteInfo, nil).Once()
	s.env.OnActivity(s.kf.FilterSiteOutages, mock.Anything, activities.FilterInput{
		SiteID: "kingfisher", Since: "2022-01-01T00:00:00.000Z", OutagesKey: staged.Key, DevicesKey: siteInfo.DevicesKey,
	}).Return(filtered, nil).Once()
}

func (s *OutageSyncSuite) result() SyncSiteOutagesResult {
	s.Require().True(s.env.IsWorkflowCompleted())
	s.Require().NoError(s.env.GetWorkflowError())
	var res SyncSiteOutagesResult
	s.Require().NoError(s.env.GetWorkflowResult(&res))
	return res
}

var input = SyncSiteOutagesInput{SiteID: "kingfisher", Since: "2022-01-01T00:00:00.000Z"}

func (s *OutageSyncSuite) TestSyncsAndCountsEverything() {
	s.happyFetches()
	s.env.OnActivity(s.kf.PostSiteOutages, mock.Anything, activities.PostInput{SiteID: "kingfisher", PostKey: "k/post"}).Return(3, nil).Once()
	s.env.OnActivity(s.kf.DropStagedOutages, mock.Anything, "kingfisher").Return(nil).Once()
	s.env.ExecuteWorkflow(SyncSiteOutages, input)
	res := s.result()
	s.Equal(SyncSiteOutagesResult{
		SiteID: "kingfisher", Since: "2022-01-01T00:00:00.000Z",
		Fetched: 14, Kept: 3, DroppedBeforeSince: 2, DroppedUnknownDevice: 1, DroppedInvalid: 8, Posted: 3,
	}, res)

	// The result's JSON is what the Web UI, the CLI and GET /sites/{id}/outage-sync show.
	body, err := json.Marshal(res)
	s.Require().NoError(err)
	s.JSONEq(`{"site_id": "kingfisher", "since": "2022-01-01T00:00:00.000Z", "fetched": 14, "kept": 3,
		"dropped_before_since": 2, "dropped_unknown_device": 1, "dropped_invalid": 8, "posted": 3}`, string(body))
}

// A run recorded before dropped_invalid existed has a filter result without it (and a
// worker of that code returns one): it reads as 0, and the sync completes as before.
func (s *OutageSyncSuite) TestAFilterResultWithoutDroppedInvalid() {
	var old activities.FilterResult
	s.Require().NoError(json.Unmarshal([]byte(`{"since": "2022-01-01T00:00:00.000Z", "post_key": "k/post",
		"counts": {"fetched": 6, "kept": 3, "dropped_before_since": 2, "dropped_unknown_device": 1}}`), &old))
	s.env.OnActivity(s.kf.FetchOutages, mock.Anything, "kingfisher").Return(staged, nil).Once()
	s.env.OnActivity(s.kf.FetchSiteInfo, mock.Anything, "kingfisher").Return(siteInfo, nil).Once()
	s.env.OnActivity(s.kf.FilterSiteOutages, mock.Anything, mock.Anything).Return(old, nil).Once()
	s.env.OnActivity(s.kf.PostSiteOutages, mock.Anything, mock.Anything).Return(3, nil).Once()
	s.env.OnActivity(s.kf.DropStagedOutages, mock.Anything, mock.Anything).Return(nil).Once()
	s.env.ExecuteWorkflow(SyncSiteOutages, input)
	s.Equal(SyncSiteOutagesResult{
		SiteID: "kingfisher", Since: "2022-01-01T00:00:00.000Z",
		Fetched: 6, Kept: 3, DroppedBeforeSince: 2, DroppedUnknownDevice: 1, Posted: 3,
	}, s.result())
}

func (s *OutageSyncSuite) TestFetchesRunConcurrently() {
	var outagesStarted, siteStarted time.Time
	s.env.OnActivity(s.kf.FetchOutages, mock.Anything, "kingfisher").After(5 * time.Second).
		Return(func(context.Context, string) (activities.StagedOutages, error) {
			outagesStarted = s.env.Now()
			return staged, nil
		}).Once()
	s.env.OnActivity(s.kf.FetchSiteInfo, mock.Anything, "kingfisher").After(5 * time.Second).
		Return(func(context.Context, string) (activities.SiteInfo, error) {
			siteStarted = s.env.Now()
			return siteInfo, nil
		}).Once()
	s.env.OnActivity(s.kf.FilterSiteOutages, mock.Anything, mock.Anything).Return(filtered, nil).Once()
	s.env.OnActivity(s.kf.PostSiteOutages, mock.Anything, mock.Anything).Return(3, nil).Once()
	s.env.OnActivity(s.kf.DropStagedOutages, mock.Anything, mock.Anything).Return(nil).Once()
	start := s.env.Now()
	s.env.ExecuteWorkflow(SyncSiteOutages, input)
	s.result()
	// Each fetch takes 5 s; side by side both finish 5 s in, one after the other would take 10.
	s.Less(outagesStarted.Sub(start), 6*time.Second)
	s.Less(siteStarted.Sub(start), 6*time.Second)
}

func (s *OutageSyncSuite) TestRetries500sThenPostsExactlyOnce() {
	s.happyFetches()
	posts := 0
	s.env.OnActivity(s.kf.PostSiteOutages, mock.Anything, mock.Anything).Return(func(context.Context, activities.PostInput) (int, error) {
		posts++
		if posts <= 3 {
			return 0, temporal.NewApplicationError("kf POST /site-outages/kingfisher: 500 simulated failure", activities.ErrUpstreamUnavailable)
		}
		return 3, nil
	}).Times(4)
	s.env.OnActivity(s.kf.DropStagedOutages, mock.Anything, mock.Anything).Return(nil).Once()
	s.env.ExecuteWorkflow(SyncSiteOutages, input)
	s.Equal(3, s.result().Posted)
	s.Equal(4, posts, "three 500s, then one successful POST and no more")
}

func (s *OutageSyncSuite) TestRetries429OnTheFetches() {
	calls := 0
	s.env.OnActivity(s.kf.FetchOutages, mock.Anything, "kingfisher").Return(func(context.Context, string) (activities.StagedOutages, error) {
		calls++
		if calls == 1 {
			return activities.StagedOutages{}, temporal.NewApplicationError("kf GET /outages: 429 Too Many Requests", activities.ErrUpstreamRateLimited)
		}
		return staged, nil
	}).Twice()
	s.env.OnActivity(s.kf.FetchSiteInfo, mock.Anything, "kingfisher").Return(siteInfo, nil).Once()
	s.env.OnActivity(s.kf.FilterSiteOutages, mock.Anything, mock.Anything).Return(filtered, nil).Once()
	s.env.OnActivity(s.kf.PostSiteOutages, mock.Anything, mock.Anything).Return(3, nil).Once()
	s.env.OnActivity(s.kf.DropStagedOutages, mock.Anything, mock.Anything).Return(nil).Once()
	s.env.ExecuteWorkflow(SyncSiteOutages, input)
	s.Equal(3, s.result().Posted)
	s.Equal(2, calls)
}

func (s *OutageSyncSuite) TestUpstreamNoFailsAtOnceWithItsMessage() {
	for _, tc := range []struct {
		typ, msg string
	}{
		{activities.ErrUpstreamNotFound, "kf GET /site-info/kingfisher: 404 site not found"},
		{activities.ErrUpstreamUnauthorized, "kf GET /site-info/kingfisher: 403 Forbidden"},
		{activities.ErrUpstreamBadRequest, "kf GET /site-info/kingfisher: 400 bad request"},
	} {
		s.Run(tc.typ, func() {
			env := s.NewTestWorkflowEnvironment()
			env.RegisterActivity(s.kf)
			calls := 0
			env.OnActivity(s.kf.FetchOutages, mock.Anything, mock.Anything).Return(staged, nil).Maybe()
			// Returned as the activities return them: retryable by themselves, so only the
			// policy's NonRetryableErrorTypes stops the retries.
			env.OnActivity(s.kf.FetchSiteInfo, mock.Anything, mock.Anything).Return(func(context.Context, string) (activities.SiteInfo, error) {
				calls++
				return activities.SiteInfo{}, temporal.NewApplicationError(tc.msg, tc.typ)
			})
			env.OnActivity(s.kf.DropStagedOutages, mock.Anything, "kingfisher").Return(nil).Once()
			env.ExecuteWorkflow(SyncSiteOutages, input)
			err := env.GetWorkflowError()
			s.Require().Error(err)
			s.Contains(err.Error(), tc.msg)
			var appErr *temporal.ApplicationError
			s.Require().ErrorAs(err, &appErr)
			s.Equal(1, calls, "a %s is not retried", tc.typ)
			env.AssertExpectations(s.T()) // the failed sync dropped what it had staged
		})
	}
}

func (s *OutageSyncSuite) TestGivesUpOnEndless500s() {
	s.env.OnActivity(s.kf.FetchOutages, mock.Anything, mock.Anything).
		Return(activities.StagedOutages{}, temporal.NewApplicationError("500", activities.ErrUpstreamUnavailable)).
		Times(int(outageSyncRetryPolicy.MaximumAttempts))
	s.env.OnActivity(s.kf.FetchSiteInfo, mock.Anything, mock.Anything).Return(siteInfo, nil).Maybe()
	s.env.OnActivity(s.kf.DropStagedOutages, mock.Anything, "kingfisher").Return(nil).Once()
	s.env.ExecuteWorkflow(SyncSiteOutages, input)
	s.Error(s.env.GetWorkflowError())
}

func (s *OutageSyncSuite) TestAFailedSyncStillFailsWhenItsCleanupFails() {
	s.env.OnActivity(s.kf.FetchOutages, mock.Anything, mock.Anything).Return(staged, nil).Once()
	s.env.OnActivity(s.kf.FetchSiteInfo, mock.Anything, mock.Anything).
		Return(activities.SiteInfo{}, temporal.NewApplicationError("kf GET /site-info/kingfisher: 404 site not found", activities.ErrUpstreamNotFound)).Once()
	s.env.OnActivity(s.kf.DropStagedOutages, mock.Anything, "kingfisher").Return(errors.New("database is locked")).
		Times(int(stagingCleanupOptions.RetryPolicy.MaximumAttempts))
	s.env.ExecuteWorkflow(SyncSiteOutages, input)
	err := s.env.GetWorkflowError()
	s.Require().Error(err)
	s.Contains(err.Error(), "404 site not found", "the sync's own error, not the cleanup's")
}

func (s *OutageSyncSuite) TestRejectsBadInputBeforeAnyCall() {
	for name, in := range map[string]SyncSiteOutagesInput{
		"empty site":    {},
		"site with /":   {SiteID: "a/b"},
		"bad since":     {SiteID: "kingfisher", Since: "yesterday"},
		"date only":     {SiteID: "kingfisher", Since: "2022-01-01"},
		"too long site": {SiteID: string(make([]byte, 129))},
	} {
		env := s.NewTestWorkflowEnvironment()
		env.RegisterActivity(s.kf)
		env.ExecuteWorkflow(SyncSiteOutages, in)
		var appErr *temporal.ApplicationError
		s.Require().ErrorAs(env.GetWorkflowError(), &appErr, name)
		s.Equal(activities.ErrInvalidInput, appErr.Type(), name)
	}
}

func (s *OutageSyncSuite) TestEmptySinceLeavesTheCutoffToTheWorker() {
	s.env.OnActivity(s.kf.FetchOutages, mock.Anything, "kingfisher").Return(staged, nil).Once()
	s.env.OnActivity(s.kf.FetchSiteInfo, mock.Anything, "kingfisher").Return(siteInfo, nil).Once()
	s.env.OnActivity(s.kf.FilterSiteOutages, mock.Anything, activities.FilterInput{
		SiteID: "kingfisher", OutagesKey: staged.Key, DevicesKey: siteInfo.DevicesKey,
	}).Return(filtered, nil).Once()
	s.env.OnActivity(s.kf.PostSiteOutages, mock.Anything, mock.Anything).Return(3, nil).Once()
	s.env.OnActivity(s.kf.DropStagedOutages, mock.Anything, mock.Anything).Return(nil).Once()
	s.env.ExecuteWorkflow(SyncSiteOutages, SyncSiteOutagesInput{SiteID: "kingfisher"})
	s.Equal("2022-01-01T00:00:00.000Z", s.result().Since)
}
