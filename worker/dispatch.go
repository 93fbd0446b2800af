package worker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"relay/internal/store"
	"relay/workflows"
)

// EventStore is what the dispatcher needs of the store.
type EventStore interface {
	LeaseEvents(ctx context.Context, now time.Time, ttl time.Duration, limit int) ([]store.LeasedEvent, error)
	ExtendLeases(ctx context.Context, taskIDs []string, until time.Time) error
	LocateFromCache(ctx context.Context, taskIDs []string, now time.Time) ([]string, error)
	SettleIP(ctx context.Context, ip string, o store.GeoOutcome, cacheUntil time.Time) (int, error)
	PruneGeoCache(ctx context.Context, before time.Time) (int64, error)
}

// Lease times of the dispatcher.
const (
	// leaseTTL is how long a dispatched event is left to its IP's lookup before the
	// dispatcher looks again: then, if no lookup of the IP runs, it drives the event again
	// (a run that closed without settling it, a signal that never arrived).
	leaseTTL = time.Minute
	// firstRetry and maxRetry bound how soon an event whose dispatch failed (Temporal
	// unreachable) is tried again: 5 s after the first failure, doubling up to 30 s, so
	// that an outage costs a few tries per IP, and its end is seen within 30 s.
	firstRetry = 5 * time.Second
	maxRetry   = 30 * time.Second
	// callTimeout bounds each call to Temporal.
	callTimeout = 10 * time.Second
	// maxIdle bounds the wait between rounds after failures (the store or Temporal down).
	maxIdle = 10 * time.Second
	// pruneEvery is how often expired cache entries are deleted.
	pruneEvery = 10 * time.Minute
)

// Dispatcher turns accepted events into lookups. The API answers 202 once the event's row
// is committed (the outbox); the dispatcher then leases a batch of pending rows, so that no
// other worker's dispatcher takes them, and:
//   - locates every event whose IP is in the cache, in one statement, without Temporal;
//   - settles events from IPs nobody can place (private, reserved) as unlocatable;
//   - signal-with-starts the Geolocate workflow of each other IP once per batch.
//
// An event still pending when its lease runs out is driven again, unless its IP's lookup
// is still running: nothing accepted waits on a workflow that is gone.
type Dispatcher struct {
	events EventStore
	client client.Client
	logger *slog.Logger
	idKey  []byte // names IP lookups (workflows.GeolocateWorkflowID)
	wake   chan struct{}
	every  time.Duration
	batch  int
	// parallel bounds the signal-with-starts in flight at once.
	parallel int
	now      func() time.Time
	metrics  *DispatchMetrics
}

// NewDispatcher builds a dispatcher that looks for new events every `every` and on Notify.
func NewDispatcher(events EventStore, c client.Client, logger *slog.Logger, every time.Duration, m *DispatchMetrics, idKey []byte) *Dispatcher {
	return &Dispatcher{events: events, client: c, logger: logger, wake: make(chan struct{}, 1),
		every: every, batch: 500, parallel: 32, now: time.Now, metrics: m, idKey: idKey}
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
	lastPrune := time.Time{}
	failures := 0
	for {
		for {
			n, err := d.DispatchOnce(ctx)
			if err != nil {
				if failures++; ctx.Err() == nil && (failures == 1 || failures%10 == 0) {
					d.logger.Warn("dispatching events failed; will retry", "error", err, "failures", failures)
				}
				break
			}
			if failures > 0 {
				d.logger.Info("dispatching events again", "after_failures", failures)
				failures = 0
			}
			if n < d.batch {
				break // caught up (a full batch means more are waiting)
			}
		}
		if now := d.now(); now.Sub(lastPrune) >= pruneEvery {
			if _, err := d.events.PruneGeoCache(ctx, now); err == nil {
				lastPrune = now
			}
		}
		idle := d.every
		if failures > 0 { // back off while the store or Temporal is down
			idle = min(d.every<<min(failures, 10), maxIdle)
		}
		t := time.NewTimer(idle)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-d.wake:
			t.Stop()
		}
	}
}

// DispatchOnce handles one batch of pending events whose lease ran out; it returns how
// many it leased.
func (d *Dispatcher) DispatchOnce(ctx context.Context) (int, error) {
	now := d.now()
	leased, err := d.events.LeaseEvents(ctx, now, leaseTTL, d.batch)
	if err != nil || len(leased) == 0 {
		return 0, err
	}
	ids := make([]string, len(leased))
	for i, e := range leased {
		ids[i] = e.TaskID
	}
	fromCache, err := d.events.LocateFromCache(ctx, ids, now)
	if err != nil {
		return len(leased), err // the leases run out, and the events are tried again
	}
	d.metrics.add(outcomeCache, len(fromCache))
	settled := make(map[string]bool, len(fromCache))
	for _, id := range fromCache {
		settled[id] = true
	}
	byIP := map[string][]store.LeasedEvent{}
	var ips []string
	for _, e := range leased {
		if settled[e.TaskID] {
			continue
		}
		if byIP[e.IP] == nil {
			ips = append(ips, e.IP)
		}
		byIP[e.IP] = append(byIP[e.IP], e)
	}

	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, d.parallel)
	var wg sync.WaitGroup
	for _, ip := range ips {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := d.dispatchIP(ctx, ip, byIP[ip]); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return len(leased), firstErr
}

// dispatchIP drives the events of one IP: settled at once when nobody can place the IP,
// else by the IP's Geolocate workflow.
func (d *Dispatcher) dispatchIP(ctx context.Context, ip string, events []store.LeasedEvent) error {
	ids := make([]string, len(events))
	again := true // every event was dispatched before: its lookup may still run
	for i, e := range events {
		ids[i] = e.TaskID
		again = again && e.Dispatches > 1
	}
	if !workflows.Placeable(ip) {
		n, err := d.events.SettleIP(ctx, ip, store.GeoOutcome{}, time.Time{})
		d.metrics.add(outcomeUnplaceable, n)
		return err
	}
	if again && d.lookupRunning(ctx, ip) {
		d.metrics.add(outcomeStillRunning, len(ids))
		return d.events.ExtendLeases(ctx, ids, d.now().Add(leaseTTL))
	}
	callCtx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	_, err := d.client.SignalWithStartWorkflow(callCtx, workflows.GeolocateWorkflowID(d.idKey, ip), workflows.GeolocateSignal, nil,
		workflows.GeolocateStartOptions(d.idKey, ip), workflows.GeolocateWorkflowType, workflows.GeolocateInput{IP: ip})
	if err != nil {
		d.metrics.add(outcomeFailed, len(ids))
		tries := 0
		for _, e := range events {
			tries = max(tries, e.Dispatches)
		}
		retry := min(firstRetry<<min(tries-1, 8), maxRetry)
		if extendErr := d.events.ExtendLeases(ctx, ids, d.now().Add(retry)); extendErr != nil && ctx.Err() == nil {
			d.logger.Warn("could not shorten the leases of events whose dispatch failed", "error", extendErr)
		}
		return err
	}
	d.metrics.signal()
	if again {
		d.metrics.add(outcomeRedriven, len(ids))
	} else {
		d.metrics.add(outcomeSignalled, len(ids))
	}
	return nil
}

// lookupRunning says whether the IP's Geolocate workflow is running; when Temporal cannot
// tell, it says no, and the caller signals (a signal to a running lookup costs nothing
// but the signal).
func (d *Dispatcher) lookupRunning(ctx context.Context, ip string) bool {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	desc, err := d.client.DescribeWorkflowExecution(ctx, workflows.GeolocateWorkflowID(d.idKey, ip), "")
	var notFound *serviceerror.NotFound
	if err != nil {
		if !errors.As(err, &notFound) {
			d.logger.Warn("could not tell whether a lookup runs", "ip", ip, "error", err)
		}
		return false
	}
	return desc.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
}
