package workflows

import (
	"fmt"
	"regexp"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"relay/activities"
	"relay/internal/eventsubscriptions"
)

// eventSubscriptionsRetryPolicy: someone is waiting on the answer, so 5xx and timeouts are
// retried briefly; 401 and 404 (and answers that do not decode) are final at once.
var eventSubscriptionsRetryPolicy = &temporal.RetryPolicy{
	InitialInterval:        100 * time.Millisecond,
	BackoffCoefficient:     2,
	MaximumInterval:        time.Second,
	MaximumAttempts:        4,
	NonRetryableErrorTypes: activities.NonRetryableUpstreamErrors,
}

// eventSubscriptionsActivityOptions bound each call and all its retries, well inside
// EventSubscriptionsRunTimeout.
var eventSubscriptionsActivityOptions = workflow.ActivityOptions{
	StartToCloseTimeout:    3 * time.Second,
	ScheduleToCloseTimeout: 6 * time.Second,
	RetryPolicy:            eventSubscriptionsRetryPolicy,
}

// EventSubscriptionsRunTimeout is the whole MergeEventSubscriptions run's deadline (the
// workflow run timeout its starter sets), which keeps the HTTP request that waits on it
// bounded.
const EventSubscriptionsRunTimeout = 10 * time.Second

// validEventID is what an event id may look like: it becomes part of a workflow id and a URL.
var validEventID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// ValidEventID reports whether id can name a calendar event.
func ValidEventID(id string) bool { return validEventID.MatchString(id) }

// EventSubscriptionsWorkflowID names an event's run: concurrent requests join one.
func EventSubscriptionsWorkflowID(eventID string) string { return "event-subscriptions/" + eventID }

// MergeEventSubscriptionsInput names the event.
type MergeEventSubscriptionsInput struct {
	EventID string `json:"event_id"`
}

// MergeEventSubscriptions fetches an event and the first page of its subscriptions at
// once, then every further page at once, and joins the title with the subscribers' first
// names in upstream order.
func MergeEventSubscriptions(ctx workflow.Context, in MergeEventSubscriptionsInput) (eventsubscriptions.Merged, error) {
	if !ValidEventID(in.EventID) {
		return eventsubscriptions.Merged{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("event_id %q: want 1 to 128 of A-Z, a-z, 0-9, _ and -", in.EventID), activities.ErrInvalidInput, nil)
	}
	ctx = workflow.WithActivityOptions(ctx, eventSubscriptionsActivityOptions)
	var c42 *activities.C42

	eventF := workflow.ExecuteActivity(ctx, c42.FetchEvent, in.EventID)
	firstF := workflow.ExecuteActivity(ctx, c42.FetchSubscriptionsPage,
		activities.PageRequest{EventID: in.EventID, Offset: 0, Limit: eventsubscriptions.PageSize})
	var event activities.Event
	if err := eventF.Get(ctx, &event); err != nil {
		return eventsubscriptions.Merged{}, fmt.Errorf("fetch event %s: %w", in.EventID, err)
	}
	var first activities.SubscriptionsPage
	if err := firstF.Get(ctx, &first); err != nil {
		return eventsubscriptions.Merged{}, fmt.Errorf("fetch subscriptions of %s: %w", in.EventID, err)
	}

	pages := []eventsubscriptions.Page{{Offset: 0, Names: first.Names, Count: first.Count}}
	// Step by what the API actually sent: it may cap the page below the limit asked for.
	step := len(first.Names)
	if step == 0 && first.Count > 0 {
		return eventsubscriptions.Merged{}, temporal.NewApplicationError(
			fmt.Sprintf("event %s: the first page is empty, yet the API counts %d subscriptions", in.EventID, first.Count),
			activities.ErrInvalidUpstreamData)
	}
	var rest []workflow.Future
	for _, off := range eventsubscriptions.RestOffsets(first.Count, step) {
		rest = append(rest, workflow.ExecuteActivity(ctx, c42.FetchSubscriptionsPage,
			activities.PageRequest{EventID: in.EventID, Offset: off, Limit: eventsubscriptions.PageSize}))
	}
	for _, f := range rest {
		var p activities.SubscriptionsPage
		if err := f.Get(ctx, &p); err != nil {
			return eventsubscriptions.Merged{}, fmt.Errorf("fetch subscriptions of %s: %w", in.EventID, err)
		}
		pages = append(pages, eventsubscriptions.Page{Offset: p.Offset, Names: p.Names, Count: p.Count})
	}
	merged, err := eventsubscriptions.Merge(in.EventID, event.Title, pages)
	if err != nil {
		return eventsubscriptions.Merged{}, temporal.NewApplicationError(err.Error(), activities.ErrInvalidUpstreamData)
	}
	return merged, nil
}
