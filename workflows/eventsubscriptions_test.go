package workflows

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/suite"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

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

// A new run fetches in local activities (one workflow task for the whole miss); a run
// started before eventSubscriptionsLocalFetchChange keeps its activities.
func (s *EventSubscriptionsSuite) TestFetchesInLocalActivitiesSinceVersion1() {
	for _, tc := range []struct {
		version     workflow.Version
		local, task int
	}{{1, 3, 0}, {workflow.DefaultVersion, 0, 3}} {
		env := s.NewTestWorkflowEnvironment()
		env.RegisterActivity(s.c42)
		if tc.version == workflow.DefaultVersion {
			env.OnGetVersion(eventSubscriptionsLocalFetchChange, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
		}
		env.OnActivity(s.c42.FetchEvent, mock.Anything, evID).Return(activities.Event{ID: evID, Title: "Team sync"}, nil).Once()
		env.OnActivity(s.c42.FetchSubscriptionsPage, mock.Anything, page(0)).
			Return(activities.SubscriptionsPage{Offset: 0, Names: []string{"Bob"}, Count: 2}, nil).Once()
		env.OnActivity(s.c42.FetchSubscriptionsPage, mock.Anything, page(1)).
			Return(activities.SubscriptionsPage{Offset: 1, Names: []string{"Ella"}, Count: 2}, nil).Once()
		var local, task int
		env.SetOnLocalActivityStartedListener(func(*activity.Info, context.Context, []any) { local++ })
		env.SetOnActivityStartedListener(func(*activity.Info, context.Context, converter.EncodedValues) { task++ })
		env.ExecuteWorkflow(MergeEventSubscriptions, MergeEventSubscriptionsInput{EventID: evID})
		s.Require().NoError(env.GetWorkflowError())
		s.Equal(tc.local, local, "version %d: local activities", tc.version)
		s.Equal(tc.task, task, "version %d: activities", tc.version)
		env.AssertExpectations(s.T())
	}
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

// An upstream that hangs is cut off by the activities' deadlines, so the fetch ends inside
// EventSubscriptionsFetchTimeout and the HTTP request waiting on it stays bounded.
func (s *EventSubscriptionsSuite) TestAHangingUpstreamEndsInsideTheDeadline() {
	s.env.OnActivity(s.c42.FetchEvent, mock.Anything, evID).
		Return(activities.Event{}, temporal.NewTimeoutError(0 /* start-to-close */, nil))
	s.env.OnActivity(s.c42.FetchSubscriptionsPage, mock.Anything, mock.Anything).
		Return(activities.SubscriptionsPage{Names: []string{}}, nil).Maybe()
	start := s.env.Now()
	s.env.ExecuteWorkflow(MergeEventSubscriptions, MergeEventSubscriptionsInput{EventID: evID, TTL: time.Minute})
	s.Error(s.env.GetWorkflowError())
	s.LessOrEqual(s.env.Now().Sub(start), eventSubscriptionsActivityOptions.ScheduleToCloseTimeout)
	s.LessOrEqual(2*eventSubscriptionsActivityOptions.ScheduleToCloseTimeout, EventSubscriptionsFetchTimeout)
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

// updates records the answers to EventSubscriptionsUpdates sent to the run.
type updates struct {
	s        *EventSubscriptionsSuite
	answers  map[string]EventSubscriptionsAnswer
	errs     map[string]error
	rejected map[string]error
	at       map[string]time.Time // when each was answered, on the workflow's clock
}

func (s *EventSubscriptionsSuite) updates() *updates {
	return &updates{s: s, answers: map[string]EventSubscriptionsAnswer{}, errs: map[string]error{},
		rejected: map[string]error{}, at: map[string]time.Time{}}
}

// send asks the run after delay (on the workflow's clock).
func (u *updates) send(id string, delay time.Duration) {
	u.s.env.RegisterDelayedCallback(func() {
		u.s.env.UpdateWorkflow(EventSubscriptionsUpdate, id, &testsuite.TestUpdateCallback{
			OnAccept: func() {},
			OnReject: func(err error) { u.rejected[id] = err },
			OnComplete: func(v any, err error) {
				u.at[id] = u.s.env.Now()
				if err != nil {
					u.errs[id] = err
					return
				}
				u.answers[id] = v.(EventSubscriptionsAnswer)
			},
		})
	}, delay)
}

func (s *EventSubscriptionsSuite) onTeamSync(after time.Duration) {
	s.env.OnActivity(s.c42.FetchEvent, mock.Anything, evID).After(after).Return(activities.Event{ID: evID, Title: "Team sync"}, nil).Once()
	s.env.OnActivity(s.c42.FetchSubscriptionsPage, mock.Anything, page(0)).After(after).
		Return(activities.SubscriptionsPage{Offset: 0, Names: []string{"Bob", "Ella"}, Count: 2}, nil).Once()
}

// The entity: updates that arrive during the fetch wait for it (misses); later ones are
// answered from memory (hits), each with what is left of the TTL; the run ends TTL after
// its fetch, having fetched once.
func (s *EventSubscriptionsSuite) TestAnswersEveryUpdateFromOneFetchForTheTTL() {
	const ttl = 252 * time.Second
	s.onTeamSync(time.Second)
	u := s.updates()
	u.send("starter", 0)
	u.send("during-the-fetch", 500*time.Millisecond)
	u.send("later", 101*time.Second)
	u.send("last", ttl)
	start := s.env.Now()
	s.env.ExecuteWorkflow(MergeEventSubscriptions, MergeEventSubscriptionsInput{EventID: evID, TTL: ttl})

	want := merged("Team sync", "Bob", "Ella")
	s.Equal(want, s.merged(), "the run's result is the merged event")
	s.Equal(ttl+time.Second, s.env.Now().Sub(start), "alive for the TTL after its fetch")
	s.Empty(u.errs)
	s.Empty(u.rejected)
	s.Equal(EventSubscriptionsAnswer{Event: want, FreshFor: ttl, Fetched: true}, u.answers["starter"])
	s.Equal(EventSubscriptionsAnswer{Event: want, FreshFor: ttl, Fetched: true}, u.answers["during-the-fetch"])
	s.Equal(EventSubscriptionsAnswer{Event: want, FreshFor: ttl - 100*time.Second, Fetched: false}, u.answers["later"],
		"a hit from memory, fresh for what is left of the TTL")
	s.Equal(EventSubscriptionsAnswer{Event: want, FreshFor: time.Second, Fetched: false}, u.answers["last"])
}

// A failed fetch is the answer of every update waiting on it, and the run ends at once:
// nothing is kept.
func (s *EventSubscriptionsSuite) TestAFailedFetchIsAnsweredAndEndsTheRun() {
	s.env.OnActivity(s.c42.FetchEvent, mock.Anything, evID).After(time.Second).
		Return(activities.Event{}, temporal.NewNonRetryableApplicationError("c42: 404", activities.ErrUpstreamNotFound, nil)).Once()
	s.env.OnActivity(s.c42.FetchSubscriptionsPage, mock.Anything, page(0)).
		Return(activities.SubscriptionsPage{Names: []string{}}, nil).Maybe()
	u := s.updates()
	u.send("a", 0)
	u.send("b", 100*time.Millisecond)
	start := s.env.Now()
	s.env.ExecuteWorkflow(MergeEventSubscriptions, MergeEventSubscriptionsInput{EventID: evID, TTL: time.Hour})

	s.True(s.env.IsWorkflowCompleted())
	s.Error(s.env.GetWorkflowError())
	s.Less(s.env.Now().Sub(start), 2*time.Second, "a failure ends the run at once")
	for _, id := range []string{"a", "b"} {
		var appErr *temporal.ApplicationError
		s.Require().ErrorAs(u.errs[id], &appErr, id)
		s.Equal(activities.ErrUpstreamNotFound, appErr.Type(), id)
	}
}

// A run whose history should not grow (the SDK suggests continue-as-new) ends early; the
// next asker starts a new run.
func (s *EventSubscriptionsSuite) TestEndsEarlyWhenTheHistoryIsLong() {
	s.onTeamSync(0)
	u := s.updates()
	u.send("starter", 0)
	s.env.RegisterDelayedCallback(func() { s.env.SetContinueAsNewSuggested(true) }, time.Minute)
	start := s.env.Now()
	s.env.ExecuteWorkflow(MergeEventSubscriptions, MergeEventSubscriptionsInput{EventID: evID, TTL: time.Hour})
	s.NoError(s.env.GetWorkflowError())
	s.Equal(time.Minute, s.env.Now().Sub(start), "ended when the suggestion came, not at the TTL")
	s.Contains(u.answers, "starter")
}

// Likewise a run that has answered eventSubscriptionsMaxAnswers updates.
func (s *EventSubscriptionsSuite) TestEndsEarlyAfterManyAnswers() {
	s.onTeamSync(0)
	u := s.updates()
	for i := range eventSubscriptionsMaxAnswers + 5 {
		u.send(fmt.Sprint("u", i), time.Duration(i)*time.Second)
	}
	start := s.env.Now()
	s.env.ExecuteWorkflow(MergeEventSubscriptions, MergeEventSubscriptionsInput{EventID: evID, TTL: 24 * time.Hour})
	s.NoError(s.env.GetWorkflowError())
	s.Equal(time.Duration(eventSubscriptionsMaxAnswers-1)*time.Second, s.env.Now().Sub(start))
	s.Len(u.answers, eventSubscriptionsMaxAnswers)
}

// A run started without a TTL (as before runs lived on) answers the updates that waited
// on its fetch and ends.
func (s *EventSubscriptionsSuite) TestWithoutATTLTheRunEndsAfterItsFetch() {
	s.onTeamSync(time.Second)
	u := s.updates()
	u.send("starter", 0)
	start := s.env.Now()
	s.env.ExecuteWorkflow(MergeEventSubscriptions, MergeEventSubscriptionsInput{EventID: evID})
	s.Equal(merged("Team sync", "Bob", "Ella"), s.merged())
	s.Equal(time.Second, s.env.Now().Sub(start))
	s.Equal(EventSubscriptionsAnswer{Event: merged("Team sync", "Bob", "Ella"), FreshFor: 0, Fetched: true}, u.answers["starter"])
}

func merged(title string, names ...string) eventsubscriptions.Merged {
	return eventsubscriptions.Merged{ID: evID, Title: title, Names: names}
}
