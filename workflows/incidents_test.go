package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/suite"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

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
	want := activities.BuildInput{IdentitiesKey: "k/identities", TypeKeys: map[string]string{}}
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
	s.env.ExecuteWorkflow(AggregateIncidents, AggregateIncidentsInput{})
	var appErr *temporal.ApplicationError
	s.Require().ErrorAs(s.env.GetWorkflowError(), &appErr)
	s.Contains(s.env.GetWorkflowError().Error(), "401")
	s.Equal(1, calls)
}
