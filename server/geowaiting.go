package server

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"

	"relay/internal/store"
	"relay/workflows"
)

// pendingReader says what waits to be located (the store).
type pendingReader interface {
	PendingEvents(ctx context.Context) (store.Pending, error)
}

// describer reads one run's state, pending activities included (Temporal).
type describer interface {
	DescribeWorkflowExecution(ctx context.Context, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error)
}

// geoWaiting is what the page says of events not located yet: how many, how old the
// oldest is, and what its IP's lookup is doing, so that an operator sees why events wait
// (a revoked key, an API that changed) without opening Temporal.
type geoWaiting struct {
	Err         string
	Events      int
	OldestAge   time.Duration
	Lookup      string // the oldest event's lookup: its workflow id
	LookupURL   string
	LookupState string // running, completed, ... or "not started"
	Attempt     int32  // of its call to the API, when one is under way
	LastFailure string // of that call's last attempt
}

func (p *statusPage) geoWaitingPart(now time.Time) statusPart {
	fail := func(v *statusView, msg string) { v.Waiting = geoWaiting{Err: msg} }
	return statusPart{
		name: "geo waiting",
		run: func(ctx context.Context) func(*statusView) {
			if p.src.pending == nil {
				return func(v *statusView) { fail(v, "no store to read events from") }
			}
			pending, err := p.src.pending.PendingEvents(ctx)
			if err != nil {
				msg := p.panelError("reading pending events from the store", err)
				return func(v *statusView) { fail(v, msg) }
			}
			w := geoWaiting{Events: pending.Events}
			if pending.Events > 0 {
				w.OldestAge = now.Sub(pending.Oldest)
				w.Lookup = workflows.GeolocateWorkflowID(p.idKey, pending.OldestIP)
				p.describeLookup(ctx, &w)
			}
			return func(v *statusView) { v.Waiting = w }
		},
		fail: fail,
	}
}

// describeLookup fills in what the oldest pending event's lookup is doing.
func (p *statusPage) describeLookup(ctx context.Context, w *geoWaiting) {
	if p.src.lookups == nil {
		return
	}
	desc, err := p.src.lookups.DescribeWorkflowExecution(ctx, w.Lookup, "")
	if err != nil {
		var notFound *serviceerror.NotFound
		w.LookupState = "not started"
		if !errors.As(err, &notFound) {
			w.LookupState = p.panelError("asking Temporal", err)
		}
		return
	}
	info := desc.GetWorkflowExecutionInfo()
	w.LookupState = statusWord(info.GetStatus())
	w.LookupURL = p.runURL(w.Lookup, info.GetExecution().GetRunId())
	for _, a := range desc.GetPendingActivities() {
		w.Attempt = a.GetAttempt()
		if f := a.GetLastFailure(); f != nil {
			w.LastFailure = p.src.memos.failureMessage(f)
		}
	}
}

// registerPendingGauges exports what waits to be located, read from the store at each
// scrape: a backlog that grows, or an oldest event that ages, is what alerts watch.
func registerPendingGauges(reg prometheus.Registerer, pending pendingReader) {
	read := func(f func(store.Pending) float64) func() float64 {
		return func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			p, err := pending.PendingEvents(ctx)
			if err != nil {
				return -1 // the store did not answer; the panel and /readyz say why
			}
			return f(p)
		}
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "relay_geolocate_pending_events", Help: "Accepted events not located yet (-1: the store did not answer).",
		}, read(func(p store.Pending) float64 { return float64(p.Events) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "relay_geolocate_oldest_pending_seconds", Help: "Age of the oldest event not located yet (0: none waits; -1: the store did not answer).",
		}, read(func(p store.Pending) float64 {
			if p.Events == 0 {
				return 0
			}
			return time.Since(p.Oldest).Seconds()
		})),
	)
}
