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
	"relay/internal/eventsubscriptions"
)

type EventSubscriptionsSuite struct {
	suite.Suite
	testsuite.WorkflowTestSuite
	env *testsuite.TestWorkflowEnvironment
	c42 *activities.C42
}

func TestEventSubscriptions(t *testing.T) { suite.Run(t, new(EventSubscriptionsSuite)) }

func (s *EventSubscriptionsSuite) SetupTest() {
	logToTest(&s.WorkflowTestSuite, s.T())
	s.env = s.NewTestWorkflowEnvironment()
	s.c42 = &activities.C42{}
	s.env.RegisterActivity(s.c42)
}

func (s *EventSubscriptionsSuite) AfterTest(_, _ string) { s.env.AssertExpectations(s.T()) }

const evID = "d6e66cb0ced8e46102bcfd93ceac51b0_14752373875438"

func page(offset int) activities.PageRequest {
	return activities.PageRequest{EventID: evID, Offset: offset, Limit: eventsubscriptions.PageSize}
}

func (s *EventSubscriptionsSuite) merged() eventsubscriptions.Merged {
	s.Require().True(s.env.IsWorkflowCompleted())
	s.Require().NoError(s.env.GetWorkflowError())
	var m eventsubscriptions.Merged
	s.Require().NoError(s.env.GetWorkflowResult(&m))
	return m
}

func (s *EventSubscriptionsSuite) TestOnePage() {
	s.env.OnActivity(s.c42.FetchEvent, mock.Anything, evID).Return(activities.Event{ID: evID, Title: "Team sync"}, nil).Once()
	s.env.OnActivity(s.c42.FetchSubscriptionsPage, mock.Anything, page(0)).
		Return(activities.SubscriptionsPage{Offset: 0, Names: []string{"Bob", "Ella", "", "Bob"}, Count: 4}, nil).Once()
	s.env.ExecuteWorkflow(MergeEventSubscriptions, MergeEventSubscriptionsInput{EventID: evID})
	s.Equal(eventsubscriptions.Merged{ID: evID, Title: "Team sync", Names: []string{"Bob", "Ella", "", "Bob"}}, s.merged())
}

func (s *EventSubscriptionsSuite) TestEveryPageInUpstreamOrder() {
	names := func(from, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = "n" + string(rune('A'+(from+i)%26))
		}
		return out
	}
	s.env.OnActivity(s.c42.FetchEvent, mock.Anything, evID).Return(activities.Event{ID: evID, Title: "All hands"}, nil).Once()
	for _, off := range []int{0, 100, 200} {
		n := 100
		if off == 200 {
			n = 50
		}
		// Later pages answer first: order must come from offsets, not arrival.
		s.env.OnActivity(s.c42.FetchSubscriptionsPage, mock.Anything, page(off)).After(time.Duration(300-off)*time.Millisecond).
			Return(activities.SubscriptionsPage{Offset: off, Names: names(off, n), Count: 250}, nil).Once()
	}
	s.env.ExecuteWorkflow(MergeEventSubscriptions, MergeEventSubscriptionsInput{EventID: evID})
	m := s.merged()
	s.Len(m.Names, 250)
	s.Equal(names(0, 250), m.Names)
}

func (s *EventSubscriptionsSuite) TestRetries5xxBriefly() {
	calls := 0
	s.env.OnActivity(s.c42.FetchEvent, mock.Anything, evID).Return(func(context.Context, string) (activities.Event, error) {
		calls++
		if calls < 3 {
			return activities.Event{}, temporal.NewApplicationError("c42 GET /events: 503", activities.ErrUpstreamUnavailable)
		}
		return activities.Event{ID: evID, Title: "Team sync"}, nil
	}).Times(3)
	s.env.OnActivity(s.c42.FetchSubscriptionsPage, mock.Anything, page(0)).
		Return(activities.SubscriptionsPage{Names: []string{}, Count: 0}, nil).Once()
	s.env.ExecuteWorkflow(MergeEventSubscriptions, MergeEventSubscriptionsInput{EventID: evID})
	s.Equal("Team sync", s.merged().Title)
	s.Equal(3, calls)
}

func (s *EventSubscriptionsSuite) TestNotFoundAndUnauthorizedAreNotRetried() {
	for _, typ := range []string{activities.ErrUpstreamNotFound, activities.ErrUpstreamUnauthorized} {
		s.Run(typ, func() {
			env := s.NewTestWorkflowEnvironment()
			env.RegisterActivity(s.c42)
			calls := 0
			env.OnActivity(s.c42.FetchEvent, mock.Anything, evID).Return(func(context.Context, string) (activities.Event, error) {
				calls++
				return activities.Event{}, temporal.NewApplicationError("c42 says no", typ)
			})
			env.OnActivity(s.c42.FetchSubscriptionsPage, mock.Anything, mock.Anything).
				Return(activities.SubscriptionsPage{Names: []string{}}, nil).Maybe()
			env.ExecuteWorkflow(MergeEventSubscriptions, MergeEventSubscriptionsInput{EventID: evID})
			var appErr *temporal.ApplicationError
			s.Require().ErrorAs(env.GetWorkflowError(), &appErr)
			s.Equal(1, calls)
		})
	}
}

// An upstream that hangs is cut off by the activity's deadline, so the run ends well
// inside EventSubscriptionsRunTimeout and the HTTP request waiting on it stays bounded.
func (s *EventSubscriptionsSuite) TestAHangingUpstreamEndsInsideTheDeadline() {
	s.env.OnActivity(s.c42.FetchEvent, mock.Anything, evID).
		Return(activities.Event{}, temporal.NewTimeoutError(0 /* start-to-close */, nil))
	s.env.OnActivity(s.c42.FetchSubscriptionsPage, mock.Anything, mock.Anything).
		Return(activities.SubscriptionsPage{Names: []string{}}, nil).Maybe()
	start := s.env.Now()
	s.env.ExecuteWorkflow(MergeEventSubscriptions, MergeEventSubscriptionsInput{EventID: evID})
	s.Error(s.env.GetWorkflowError())
	s.LessOrEqual(s.env.Now().Sub(start), eventSubscriptionsActivityOptions.ScheduleToCloseTimeout)
	s.Less(eventSubscriptionsActivityOptions.ScheduleToCloseTimeout, EventSubscriptionsRunTimeout)
}

// An API that sends fewer per page than asked is paged by what it sends.
func (s *EventSubscriptionsSuite) TestAPageCappedBelowTheLimit() {
	s.env.OnActivity(s.c42.FetchEvent, mock.Anything, evID).Return(activities.Event{ID: evID, Title: "t"}, nil).Once()
	s.env.OnActivity(s.c42.FetchSubscriptionsPage, mock.Anything, page(0)).
		Return(activities.SubscriptionsPage{Offset: 0, Names: []string{"a", "b"}, Count: 5}, nil).Once()
	s.env.OnActivity(s.c42.FetchSubscriptionsPage, mock.Anything, page(2)).
		Return(activities.SubscriptionsPage{Offset: 2, Names: []string{"c", "d"}, Count: 5}, nil).Once()
	s.env.OnActivity(s.c42.FetchSubscriptionsPage, mock.Anything, page(4)).
		Return(activities.SubscriptionsPage{Offset: 4, Names: []string{"e"}, Count: 5}, nil).Once()
	s.env.ExecuteWorkflow(MergeEventSubscriptions, MergeEventSubscriptionsInput{EventID: evID})
	s.Equal([]string{"a", "b", "c", "d", "e"}, s.merged().Names)
}

func (s *EventSubscriptionsSuite) TestPagesThatDoNotAddUpFail() {
	s.env.OnActivity(s.c42.FetchEvent, mock.Anything, evID).Return(activities.Event{ID: evID, Title: "t"}, nil).Once()
	// Someone subscribed between the two calls: the counts disagree.
	s.env.OnActivity(s.c42.FetchSubscriptionsPage, mock.Anything, page(0)).
		Return(activities.SubscriptionsPage{Names: []string{"a"}, Count: 2}, nil).Once()
	s.env.OnActivity(s.c42.FetchSubscriptionsPage, mock.Anything, page(1)).
		Return(activities.SubscriptionsPage{Offset: 1, Names: []string{"b"}, Count: 3}, nil).Once()
	s.env.ExecuteWorkflow(MergeEventSubscriptions, MergeEventSubscriptionsInput{EventID: evID})
	var appErr *temporal.ApplicationError
	s.Require().ErrorAs(s.env.GetWorkflowError(), &appErr)
	s.Equal(activities.ErrInvalidUpstreamData, appErr.Type())
}

func (s *EventSubscriptionsSuite) TestBadIDNeverReachesAnActivity() {
	s.env.ExecuteWorkflow(MergeEventSubscriptions, MergeEventSubscriptionsInput{EventID: "../etc"})
	var appErr *temporal.ApplicationError
	s.Require().ErrorAs(s.env.GetWorkflowError(), &appErr)
	s.Equal(activities.ErrInvalidInput, appErr.Type())
}
