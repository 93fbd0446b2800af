package workflows

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/suite"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"relay/activities"
	"relay/internal/testenv"
)

type PingSuite struct {
	suite.Suite
	testsuite.WorkflowTestSuite
	env    *testsuite.TestWorkflowEnvironment
	pinger *activities.Pinger
}

func TestPing(t *testing.T) { suite.Run(t, new(PingSuite)) }

func (s *PingSuite) SetupTest() {
	logToTest(&s.WorkflowTestSuite, s.T())
	s.env = s.NewTestWorkflowEnvironment()
	s.pinger = &activities.Pinger{Worker: "test-worker"}
	s.env.RegisterActivity(s.pinger)
}

func (s *PingSuite) AfterTest(_, _ string) { s.env.AssertExpectations(s.T()) }

func (s *PingSuite) TestAnswersThroughTheActivity() {
	s.env.ExecuteWorkflow(Ping, PingInput{Message: "hi"})
	s.True(s.env.IsWorkflowCompleted())
	s.NoError(s.env.GetWorkflowError())
	var res PingResult
	s.NoError(s.env.GetWorkflowResult(&res))
	s.Equal(PingResult{Message: "hi", Worker: "test-worker", Queue: TaskQueue}, res)
}

func (s *PingSuite) TestSleepsOnADurableTimerFirst() {
	start := s.env.Now()
	var pongAt time.Time
	s.env.OnActivity(s.pinger.Pong, mock.Anything, "later").Return(func(_ context.Context, msg string) (activities.Pong, error) {
		pongAt = s.env.Now()
		return activities.Pong{Message: msg, Worker: "w"}, nil
	}).Once()
	s.env.ExecuteWorkflow(Ping, PingInput{Message: "later", Sleep: "90s"})
	s.NoError(s.env.GetWorkflowError())
	s.GreaterOrEqual(pongAt.Sub(start), 90*time.Second, "time skipping runs the timer, and the activity after it")
}

func (s *PingSuite) TestRunsOnTheQueueAsked() {
	s.env.OnActivity(s.pinger.Pong, mock.Anything, "geo").Return(activities.Pong{Message: "geo"}, nil).Once()
	s.env.ExecuteWorkflow(Ping, PingInput{Message: "geo", Queue: GeoIPTaskQueue})
	var res PingResult
	s.NoError(s.env.GetWorkflowResult(&res))
	s.Equal(GeoIPTaskQueue, res.Queue)
}

func (s *PingSuite) TestRetriesTheActivityByItsPolicy() {
	attempts := 0
	s.env.OnActivity(s.pinger.Pong, mock.Anything, "flaky").Return(func(_ context.Context, msg string) (activities.Pong, error) {
		attempts++
		if attempts < 3 {
			return activities.Pong{}, errors.New("transient")
		}
		return activities.Pong{Message: msg}, nil
	}).Times(3)
	s.env.ExecuteWorkflow(Ping, PingInput{Message: "flaky"})
	s.NoError(s.env.GetWorkflowError())
	s.Equal(3, attempts)
}

func (s *PingSuite) TestGivesUpAfterMaximumAttempts() {
	s.env.OnActivity(s.pinger.Pong, mock.Anything, "down").Return(activities.Pong{}, errors.New("still down")).
		Times(int(pingActivityOptions.RetryPolicy.MaximumAttempts))
	s.env.ExecuteWorkflow(Ping, PingInput{Message: "down"})
	err := s.env.GetWorkflowError()
	s.Error(err)
	s.Contains(err.Error(), "still down")
}

func (s *PingSuite) TestRejectsBadInputWithoutCallingTheActivity() {
	for name, in := range map[string]PingInput{
		"unknown queue":  {Queue: "nope"},
		"bad sleep":      {Sleep: "soon"},
		"negative sleep": {Sleep: "-1s"},
		"too long sleep": {Sleep: "48h"},
	} {
		env := s.NewTestWorkflowEnvironment()
		env.RegisterActivity(&activities.Pinger{})
		env.ExecuteWorkflow(Ping, in)
		err := env.GetWorkflowError()
		s.Require().Error(err, name)
		var appErr *temporal.ApplicationError
		s.Require().ErrorAs(err, &appErr, name)
		s.Equal("InvalidInput", appErr.Type(), name)
		s.True(appErr.NonRetryable(), name)
	}
}

// logToTest sends the SDK test environment's log (a DEBUG line per activity) where
// testenv.Logger says: nowhere, unless RELAY_TEST_LOG asks for it.
func logToTest(s *testsuite.WorkflowTestSuite, t *testing.T) {
	s.SetLogger(sdklog.NewStructuredLogger(testenv.Logger(t)))
}
