package workflows

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/suite"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"relay/activities"
	"relay/internal/incidents"
)

type IncidentsSuite struct {
	suite.Suite
	testsuite.WorkflowTestSuite
	env *testsuite.TestWorkflowEnvironment
	a   *activities.Incidents
}

func TestIncidents(t *testing.T) { suite.Run(t, new(IncidentsSuite)) }

func (s *IncidentsSuite) SetupTest() {
	logToTest(&s.WorkflowTestSuite, s.T())
	s.env = s.NewTestWorkflowEnvironment()
	s.a = &activities.Incidents{}
	s.env.RegisterActivity(s.a)
}

func (s *IncidentsSuite) AfterTest(_, _ string) { s.env.AssertExpectations(s.T()) }

var built = activities.BuildResult{SnapshotID: 7, Summary: incidents.Summary{Employees: 3, Incidents: 10}, Bytes: 1234}

// fetchesSucceed mocks identities and every type as staged under a key named after it.
func (s *IncidentsSuite) fetchesSucceed(except string) {
	s.env.OnActivity(s.a.FetchIdentities, mock.Anything).Return(activities.Staged{Key: "k/identities"}, nil).Once()
	for _, typ := range incidents.Types {
		if typ != except {
			s.env.OnActivity(s.a.FetchIncidents, mock.Anything, typ).Return(activities.Staged{Key: "k/" + typ}, nil).Once()
		}
	}
}

func (s *IncidentsSuite) TestFetchesEverythingThenBuildsOnce() {
	s.fetchesSucceed("")
	want := activities.BuildInput{IdentitiesKey: "k/identities", TypeKeys: map[string]string{}, AsOf: s.env.Now().UTC()}
	for _, typ := range incidents.Types {
		want.TypeKeys[typ] = "k/" + typ
	}
	s.env.OnActivity(s.a.BuildSnapshot, mock.Anything, want).Return(built, nil).Once()
	s.env.OnActivity(s.a.DropStagedIncidents, mock.Anything).Return(nil).Once()
	s.env.ExecuteWorkflow(AggregateIncidents, AggregateIncidentsInput{})
	s.Require().NoError(s.env.GetWorkflowError())
	var res AggregateIncidentsResult
	s.Require().NoError(s.env.GetWorkflowResult(&res))
	s.Equal(int64(7), res.SnapshotID)
	s.Equal(built.Summary, res.Summary)
}

func (s *IncidentsSuite) TestRetriesA5xxType() {
	s.fetchesSucceed("probing")
	calls := 0
	s.env.OnActivity(s.a.FetchIncidents, mock.Anything, "probing").Return(func(context.Context, string) (activities.Staged, error) {
		calls++
		if calls < 3 {
			return activities.Staged{}, temporal.NewApplicationError("incidents GET /incidents/probing/: 503", activities.ErrUpstreamUnavailable)
		}
		return activities.Staged{Key: "k/probing"}, nil
	}).Times(3)
	s.env.OnActivity(s.a.BuildSnapshot, mock.Anything, mock.Anything).Return(built, nil).Once()
	s.env.OnActivity(s.a.DropStagedIncidents, mock.Anything).Return(nil).Once()
	s.env.ExecuteWorkflow(AggregateIncidents, AggregateIncidentsInput{})
	s.NoError(s.env.GetWorkflowError())
	s.Equal(3, calls)
}

// A type that fails for good fails the run, and nothing is built or published: servers
// keep the last good snapshot.
func (s *IncidentsSuite) TestATypeFailingForGoodPublishesNothing() {
	s.fetchesSucceed("misuse")
	attempts := 0
	s.env.OnActivity(s.a.FetchIncidents, mock.Anything, "misuse").Return(func(context.Context, string) (activities.Staged, error) {
		attempts++
		return activities.Staged{}, temporal.NewApplicationError("incidents GET /incidents/misuse/: 500", activities.ErrUpstreamUnavailable)
	})
	s.env.OnActivity(s.a.DropStagedIncidents, mock.Anything).Return(nil).Once()
	start := s.env.Now()
	s.env.ExecuteWorkflow(AggregateIncidents, AggregateIncidentsInput{})
	err := s.env.GetWorkflowError()
	s.Require().Error(err)
	s.Contains(err.Error(), "misuse")
	// Retried with backoff until the fetch's ScheduleToClose runs out, then given up.
	s.Greater(attempts, 6)
	s.LessOrEqual(s.env.Now().Sub(start), incidentsFetchOptions.ScheduleToCloseTimeout+time.Second)
	// BuildSnapshot was never mocked: had the workflow called it, the run would have
	// failed on the unmocked call instead, and AssertExpectations checks the rest.
}

func (s *IncidentsSuite) TestBadCredentialsAreReportedNotRetried() {
	calls := 0
	s.env.OnActivity(s.a.FetchIdentities, mock.Anything).Return(func(context.Context) (activities.Staged, error) {
		calls++
		return activities.Staged{}, temporal.NewApplicationError("incidents GET /identities: 401 invalid or missing credentials", activities.ErrUpstreamUnauthorized)
	})
	s.env.OnActivity(s.a.FetchIncidents, mock.Anything, mock.Anything).Return(activities.Staged{Key: "k"}, nil).Maybe()
	s.env.OnActivity(s.a.DropStagedIncidents, mock.Anything).Return(nil).Once()
	s.env.ExecuteWorkflow(AggregateIncidents, AggregateIncidentsInput{})
	var appErr *temporal.ApplicationError
	s.Require().ErrorAs(s.env.GetWorkflowError(), &appErr)
	s.Contains(s.env.GetWorkflowError().Error(), "401")
	s.Equal(1, calls)
}

// The first fetch that fails for good cancels its siblings, and the staged lists are
// dropped only after every sibling's cancellation. (The test environment resolves a
// cancelled activity at once; on a real server the fetch options' WaitForCancellation
// makes the run wait until each fetch has stopped: TestIncidentsFailedRefreshLeavesNothing
// in internal/app.)
func (s *IncidentsSuite) TestAFailedFetchCancelsSiblingsThenDropsTheStaged() {
	var mu sync.Mutex
	var events []string
	note := func(e string) { mu.Lock(); events = append(events, e); mu.Unlock() }
	var running sync.WaitGroup // the identities fail once every type's fetch is under way
	running.Add(len(incidents.Types))
	release := make(chan struct{})
	s.env.SetOnActivityCanceledListener(func(info *activity.Info) { note("cancelled " + info.ActivityType.Name) })
	s.env.OnActivity(s.a.FetchIdentities, mock.Anything).Return(func(context.Context) (activities.Staged, error) {
		running.Wait()
		return activities.Staged{}, temporal.NewApplicationError("incidents GET /identities: 401", activities.ErrUpstreamUnauthorized)
	}).Once()
	s.env.OnActivity(s.a.FetchIncidents, mock.Anything, mock.Anything).Return(func(ctx context.Context, typ string) (activities.Staged, error) {
		running.Done()
		<-release // a slow fetch
		return activities.Staged{}, errors.New("released")
	}).Times(len(incidents.Types))
	s.env.OnActivity(s.a.DropStagedIncidents, mock.Anything).Return(func(context.Context) error {
		note("dropped")
		close(release)
		return nil
	}).Once()
	s.env.ExecuteWorkflow(AggregateIncidents, AggregateIncidentsInput{})
	err := s.env.GetWorkflowError()
	s.Require().Error(err)
	s.Contains(err.Error(), "401")
	mu.Lock()
	defer mu.Unlock()
	s.Require().Len(events, len(incidents.Types)+1, "%v", events)
	for _, e := range events[:len(incidents.Types)] {
		s.Equal("cancelled FetchIncidents", e)
	}
	s.Equal("dropped", events[len(incidents.Types)], "the cleanup comes after every sibling's cancellation: %v", events)
}

// A build that fails drops the staged lists too.
func (s *IncidentsSuite) TestAFailedBuildDropsTheStaged() {
	s.fetchesSucceed("")
	s.env.OnActivity(s.a.BuildSnapshot, mock.Anything, mock.Anything).
		Return(activities.BuildResult{}, temporal.NewNonRetryableApplicationError("bad", activities.ErrInvalidUpstreamData, nil)).Once()
	s.env.OnActivity(s.a.DropStagedIncidents, mock.Anything).Return(nil).Once()
	s.env.ExecuteWorkflow(AggregateIncidents, AggregateIncidentsInput{})
	s.Require().Error(s.env.GetWorkflowError())
}

// Runs of before the change (version 0) fail without cleaning up, as they did: the
// DropStagedIncidents mock is absent, and an unexpected call would fail the test.
func (s *IncidentsSuite) TestVersion0FailsWithoutCleanup() {
	s.env.OnActivity(s.a.FetchIdentities, mock.Anything).
		Return(activities.Staged{}, temporal.NewApplicationError("401", activities.ErrUpstreamUnauthorized)).Once()
	s.env.OnActivity(s.a.FetchIncidents, mock.Anything, mock.Anything).Return(activities.Staged{Key: "k"}, nil).Maybe()
	s.env.ExecuteWorkflow(func(ctx workflow.Context) (AggregateIncidentsResult, error) { return aggregateIncidents(ctx, false) })
	s.Require().Error(s.env.GetWorkflowError())
}

// A snapshot built by a run that a later one beat to publication says so.
func (s *IncidentsSuite) TestASupersededSnapshotIsReported() {
	s.fetchesSucceed("")
	s.env.OnActivity(s.a.BuildSnapshot, mock.Anything, mock.Anything).
		Return(activities.BuildResult{SnapshotID: 9, Superseded: true}, nil).Once()
	s.env.OnActivity(s.a.DropStagedIncidents, mock.Anything).Return(nil).Once()
	s.env.ExecuteWorkflow(AggregateIncidents, AggregateIncidentsInput{})
	var res AggregateIncidentsResult
	s.Require().NoError(s.env.GetWorkflowResult(&res))
	s.True(res.Superseded)
	s.Equal(int64(9), res.SnapshotID)
}

// The schedule's RefreshIncidents runs the refresh as a child under the one refresh id.
func (s *IncidentsSuite) TestRefreshIncidentsRunsTheRefreshUnderItsOneID() {
	s.env.RegisterWorkflowWithOptions(AggregateIncidents, workflow.RegisterOptions{Name: AggregateIncidentsWorkflowType})
	var childID string
	s.env.OnWorkflow(AggregateIncidentsWorkflowType, mock.Anything, mock.Anything).
		Return(func(ctx workflow.Context, _ AggregateIncidentsInput) (AggregateIncidentsResult, error) {
			childID = workflow.GetInfo(ctx).WorkflowExecution.ID
			return AggregateIncidentsResult{SnapshotID: 5}, nil
		}).Once()
	s.env.ExecuteWorkflow(RefreshIncidents, RefreshIncidentsInput{})
	var res RefreshIncidentsResult
	s.Require().NoError(s.env.GetWorkflowResult(&res))
	s.Equal(IncidentsRefreshWorkflowID, childID)
	s.Equal(IncidentsRefreshWorkflowID, res.WorkflowID)
	s.False(res.Joined)
	s.Require().NotNil(res.Result)
	s.Equal(int64(5), res.Result.SnapshotID)
}

func (s *IncidentsSuite) TestSweepStagedBlobsDropsWhatIsADayOld() {
	s.env.OnActivity(s.a.SweepStagedBlobs, mock.Anything, 24*time.Hour).Return(int64(3), nil).Once()
	s.env.ExecuteWorkflow(SweepStagedBlobs, SweepStagedBlobsInput{})
	var res SweepStagedBlobsResult
	s.Require().NoError(s.env.GetWorkflowResult(&res))
	s.Equal(int64(3), res.Deleted)
}

func (s *IncidentsSuite) TestSweepStagedBlobsRefusesABadAge() {
	s.env.ExecuteWorkflow(SweepStagedBlobs, SweepStagedBlobsInput{OlderThan: "a day"})
	s.Require().Error(s.env.GetWorkflowError())
}
