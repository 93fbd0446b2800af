package worker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"relay/internal/store"
	"relay/workflows"
)

// EventStore is what the dispatcher needs of the store.
type EventStore interface {
	UndispatchedEvents(ctx context.Context, limit int) ([]store.Event, error)
	MarkDispatched(ctx context.Context, taskIDs []string) error
}

// Dispatcher starts the GeolocateEvent workflow of every accepted event. The API answers
// 202 once the event's row is committed (the outbox); the dispatcher then starts its
// workflow, even if the process crashed in between, because it works from the rows.
// Several dispatchers (one per worker) may race for a row: the workflow id makes the
// second start a no-op.
type Dispatcher struct {
	events  EventStore
	client  client.Client
	logger  *slog.Logger
	wake    chan struct{}
	every   time.Duration
	batch   int
	workers int
}

// NewDispatcher builds a dispatcher that looks for new events every `every` and on Notify.
func NewDispatcher(events EventStore, c client.Client, logger *slog.Logger, every time.Duration) *Dispatcher {
	return &Dispatcher{events: events, client: c, logger: logger, wake: make(chan struct{}, 1),
		every: every, batch: 500, workers: 32}
}

// Notify wakes the dispatcher at once (an event was just accepted in this process).
func (d *Dispatcher) Notify() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run dispatches until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) {
	t := time.NewTicker(d.every)
	defer t.Stop()
	for {
		for {
			n, err := d.DispatchOnce(ctx)
			if err != nil && ctx.Err() == nil {
				d.logger.Warn("dispatching events failed; will retry", "error", err)
			}
			if err != nil || n < d.batch {
				break // caught up (a full batch means more are waiting)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.wake:
		}
	}
}

// DispatchOnce starts the workflows of up to one batch of undispatched events and marks
// those it started; it returns how many it found.
func (d *Dispatcher) DispatchOnce(ctx context.Context) (int, error) {
	events, err := d.events.UndispatchedEvents(ctx, d.batch)
	if err != nil || len(events) == 0 {
		return 0, err
	}
	started := make([]string, 0, len(events))
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, d.workers)
	var wg sync.WaitGroup
	for _, ev := range events {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			err := d.start(ctx, ev)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				started = append(started, ev.TaskID)
			} else if firstErr == nil {
				firstErr = err
			}
		})
	}
	wg.Wait()
	if err := d.events.MarkDispatched(ctx, started); err != nil {
		return len(events), err
	}
	return len(events), firstErr
}

func (d *Dispatcher) start(ctx context.Context, ev store.Event) error {
	_, err := d.client.ExecuteWorkflow(ctx, workflows.GeolocateStartOptions(ev.TaskID), workflows.GeolocateEventWorkflowType, workflows.GeolocateEventInput{TaskID: ev.TaskID, IP: ev.IP})
	var already *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &already) {
		return nil // another dispatcher, or this one before a crash, started it
	}
	return err
}
