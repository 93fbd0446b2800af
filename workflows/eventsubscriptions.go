package workflows

import (
	"fmt"
	"regexp"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"relay/activities"
	"relay/internal/eventsubscriptions"
)

// eventSubscriptionsRetryPolicy: someone is waiting on the answer, so 5xx, 429 and
// timeouts are retried briefly; 401 and 404 (and answers that do not decode) are final at
// once. The backoffs alone (0.1+0.2+0.4+0.8 s) outlast the calendar API's one-second rate
// window, which its 429 does not say the end of: local activities retry without a
// dispatch between attempts, and four attempts could all fall in one window.
var eventSubscriptionsRetryPolicy = &temporal.RetryPolicy{
	InitialInterval:        100 * time.Millisecond,
	BackoffCoefficient:     2,
	MaximumInterval:        time.Second,
	MaximumAttempts:        5,
	NonRetryableErrorTypes: activities.NonRetryableUpstreamErrors,
}

// eventSubscriptionsActivityOptions bound each call and all its retries. The fetch has two
// steps (the event with the first page, then every further page), so it ends within
// EventSubscriptionsFetchTimeout.
var eventSubscriptionsActivityOptions = workflow.ActivityOptions{
	StartToCloseTimeout:    3 * time.Second,
	ScheduleToCloseTimeout: 5 * time.Second,
	RetryPolicy:            eventSubscriptionsRetryPolicy,
}

// eventSubscriptionsLocalOptions are eventSubscriptionsActivityOptions for the fetch as
// local activities (version 1 of eventSubscriptionsLocalFetchChange): the same bounds and
// retries, run by the worker that holds the workflow task, so that a miss is one workflow
// task with no task-queue round trip per call.
var eventSubscriptionsLocalOptions = workflow.LocalActivityOptions{
	StartToCloseTimeout:    eventSubscriptionsActivityOptions.StartToCloseTimeout,
	ScheduleToCloseTimeout: eventSubscriptionsActivityOptions.ScheduleToCloseTimeout,
	RetryPolicy:            eventSubscriptionsRetryPolicy,
}

// eventSubscriptionsLocalFetchChange is the workflow.GetVersion change id of version 1 of
// the fetch: local activities in place of activities. Runs started before it (DefaultVersion)
// replay and finish with activities; a run lives at most its TTL, so the old path can go
// once no run of the old code can be open.
const eventSubscriptionsLocalFetchChange = "merge-local-fetch"

// EventSubscriptionsFetchTimeout bounds a MergeEventSubscriptions run's fetch, its two
// steps' activity deadlines: what an HTTP request that waits on a miss may wait.
const EventSubscriptionsFetchTimeout = 2 * 5 * time.Second

// EventSubscriptionsRunTimeout is EventSubscriptionsFetchTimeout under the name it had when
// a run was only its fetch (server/httpserver.go sizes the write timeout by it).
const EventSubscriptionsRunTimeout = EventSubscriptionsFetchTimeout

// eventSubscriptionsMaxAnswers ends a run early that has answered this many updates, as
// the SDK's continue-as-new suggestion does: each answer adds two events (and the event's
// names) to the history, and the server refuses more than 2,000 updates a run. The next
// asker starts a new run, which fetches again.
const eventSubscriptionsMaxAnswers = 500

// validEventID is what an event id may look like: it becomes part of a workflow id and a URL.
var validEventID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// ValidEventID reports whether id can name a calendar event.
func ValidEventID(id string) bool { return validEventID.MatchString(id) }

// EventSubscriptionsWorkflowID names an event's run: every server's requests for the event
// reach the one running.
func EventSubscriptionsWorkflowID(eventID string) string { return "event-subscriptions/" + eventID }

// EventSubscriptionsUpdate asks an event's run for the merged event (no arguments; the
// answer is an EventSubscriptionsAnswer). Servers send it with Update-with-Start.
const EventSubscriptionsUpdate = "merged"

// ErrMergeClosing is the type of the rejection an update gets from a run that has decided
// to end (its answer expired, its fetch failed, its history is long enough): the asker
// asks again, and a new run starts once this one has closed.
const ErrMergeClosing = "MergeClosing"

// MergeEventSubscriptionsInput names the event and how long its run answers from memory.
type MergeEventSubscriptionsInput struct {
	EventID string `json:"event_id"`
	// TTL is how long, after its fetch, the run answers updates from memory (the starting
	// server's C42_CACHE_TTL), on the workflow's clock. Zero: the run answers the updates
	// that waited on its fetch and ends.
	TTL time.Duration `json:"ttl,omitempty"`
}

// EventSubscriptionsAnswer is the answer to an EventSubscriptionsUpdate.
type EventSubscriptionsAnswer struct {
	Event eventsubscriptions.Merged `json:"event"`
	// FreshFor is how long the answer stays fresh from when the run gave it, measured on
	// the workflow's clock. A duration, never a time: servers' clocks disagree, and each
	// adds it to its own now.
	FreshFor time.Duration `json:"fresh_for"`
	// Fetched says the update waited on the run's fetch (it started the run, or joined
	// the fetch in flight): a miss. False: the run answered from memory, a hit.
	Fetched bool `json:"fetched"`
}

// MergeEventSubscriptions is an event's entity for a TTL: it fetches the event and the
// first page of its subscriptions at once, then every further page at once, joins the
// title with the subscribers' first names in upstream order, and answers every
// EventSubscriptionsUpdate with that until TTL after the fetch. A failed fetch is every
// waiting update's answer and ends the run at once: failures are never kept. The result
// is the merged event.
func MergeEventSubscriptions(ctx workflow.Context, in MergeEventSubscriptionsInput) (merged eventsubscriptions.Merged, err error) {
	m := &mergeImpl{in: in}
	defer func() {
		recordEnding(ctx, ending{job: JobMerge, outcome: OutcomeMerged, count: len(merged.Names),
			result: map[string]any{"subscribers": len(merged.Names), "answered": m.answered},
			more:   []temporal.SearchAttributeUpdate{EventIDAttribute.ValueSet(in.EventID)}}, err)
	}()
	if err := m.setup(ctx); err != nil {
		return eventsubscriptions.Merged{}, err
	}
	return m.run(ctx)
}

// mergeImpl is a MergeEventSubscriptions run's state, shared by its main loop and its
// update handlers.
type mergeImpl struct {
	in     MergeEventSubscriptionsInput
	logger log.Logger

	done       bool // the fetch has ended, with merged or err
	merged     eventsubscriptions.Merged
	err        error
	freshUntil time.Time // workflow time
	closing    bool      // the run has decided to end: new updates are rejected
	answered   int
}

func (m *mergeImpl) setup(ctx workflow.Context) error {
	m.logger = log.With(workflow.GetLogger(ctx), "event_id", m.in.EventID)
	return workflow.SetUpdateHandlerWithOptions(ctx, EventSubscriptionsUpdate, m.answer,
		workflow.UpdateHandlerOptions{Validator: m.validate})
}

// validate rejects an update the run would not answer with a fresh event: it has decided
// to end, or what it fetched has expired (the timer that ends it may not have fired yet).
func (m *mergeImpl) validate(ctx workflow.Context) error {
	if m.closing || (m.done && !workflow.Now(ctx).Before(m.freshUntil)) {
		return temporal.NewApplicationError("this run of "+EventSubscriptionsWorkflowID(m.in.EventID)+" is ending; ask again", ErrMergeClosing)
	}
	return nil
}

// answer waits for the fetch, then answers with its result and how long it stays fresh.
func (m *mergeImpl) answer(ctx workflow.Context) (EventSubscriptionsAnswer, error) {
	waited := !m.done
	if err := workflow.Await(ctx, func() bool { return m.done }); err != nil {
		return EventSubscriptionsAnswer{}, err
	}
	if m.err != nil {
		return EventSubscriptionsAnswer{}, m.err
	}
	m.answered++
	return EventSubscriptionsAnswer{Event: m.merged, FreshFor: max(m.freshUntil.Sub(workflow.Now(ctx)), 0), Fetched: waited}, nil
}

func (m *mergeImpl) run(ctx workflow.Context) (eventsubscriptions.Merged, error) {
	m.merged, m.err = m.fetch(ctx)
	m.freshUntil = workflow.Now(ctx).Add(m.in.TTL)
	m.done = true
	if m.err == nil && m.in.TTL > 0 {
		m.keep(ctx)
	}
	m.closing = true
	say(ctx, "ending: %d answers given", m.answered)
	// Every accepted update gets its answer before the run closes.
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return eventsubscriptions.Merged{}, err
	}
	m.logger.Info("merge run ends", "answered", m.answered, "failed", m.err != nil)
	return m.merged, m.err
}

// keep answers from memory until the TTL has passed, or earlier when the history should
// not grow further. An update that comes after the TTL but before the timer has fired
// (timers may fire late) is rejected by the validator and, in the same workflow task, ends
// the run here, so that the asker's next try starts a new one.
func (m *mergeImpl) keep(ctx workflow.Context) {
	say(ctx, "answering from memory until %s (the fetch's time plus %s)", m.freshUntil.UTC().Format(time.RFC3339), m.in.TTL)
	full := func() bool {
		return m.answered >= eventSubscriptionsMaxAnswers || workflow.GetInfo(ctx).GetContinueAsNewSuggested()
	}
	ended, err := workflow.AwaitWithTimeout(ctx, m.in.TTL, func() bool {
		return full() || !workflow.Now(ctx).Before(m.freshUntil)
	})
	if err != nil || (ended && full()) {
		m.logger.Info("merge run ends before its TTL", "answered", m.answered, "error", err)
	}
}

// fetch fetches the event and the first page of its subscriptions at once, then every
// further page at once, and joins the title with the subscribers' first names in upstream
// order.
func (m *mergeImpl) fetch(ctx workflow.Context) (eventsubscriptions.Merged, error) {
	in := m.in
	if !ValidEventID(in.EventID) {
		return eventsubscriptions.Merged{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("event_id %q: want 1 to 128 of A-Z, a-z, 0-9, _ and -", in.EventID), activities.ErrInvalidInput, nil)
	}
	// Since version 1 the calls are local activities: the whole miss is one workflow task,
	// and the update that started the run is accepted when that task completes, answer
	// included (server/eventsubscriptions.go waits for it accordingly).
	execute := workflow.ExecuteActivity
	if workflow.GetVersion(ctx, eventSubscriptionsLocalFetchChange, workflow.DefaultVersion, 1) >= 1 {
		ctx = workflow.WithLocalActivityOptions(ctx, eventSubscriptionsLocalOptions)
		execute = workflow.ExecuteLocalActivity
	} else {
		ctx = workflow.WithActivityOptions(ctx, eventSubscriptionsActivityOptions)
	}
	var c42 *activities.C42

	say(ctx, "fetching the event and the first page of its subscribers")
	eventF := execute(ctx, c42.FetchEvent, in.EventID)
	firstF := execute(ctx, c42.FetchSubscriptionsPage,
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
	if offs := eventsubscriptions.RestOffsets(first.Count, step); len(offs) > 0 {
		say(ctx, "fetching pages 2 to %d of %d of the event's %d subscribers, at once", len(offs)+1, len(offs)+1, first.Count)
	}
	for _, off := range eventsubscriptions.RestOffsets(first.Count, step) {
		rest = append(rest, execute(ctx, c42.FetchSubscriptionsPage,
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
