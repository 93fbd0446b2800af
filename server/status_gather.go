package server

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"go.temporal.io/api/serviceerror"

	"relay/activities"
)

// statusPart fills one panel: run asks its source and returns what to write; fail writes
// the panel's error instead (the default until run answers).
type statusPart struct {
	name string
	run  func(ctx context.Context) func(*statusView)
	fail func(v *statusView, msg string)
}

// gather asks every source at once and waits for each at most p.timeout. The snapshot
// and the cache are in this process's memory and answer at once.
func (p *statusPage) gather(ctx context.Context) *statusView {
	start := p.now()
	v := &statusView{At: start, Refresh: int(statusRefresh.Seconds()), Jobs: make([]jobPanel, len(statusJobs))}
	if p.src.snapshots != nil {
		if info, ok := p.src.snapshots.Info(); ok {
			v.Snapshot = snapshotView(info, start)
		}
	}
	v.Cache = cachePanel{Err: "no cache in this process"}
	if p.src.cache != nil {
		v.Cache = cacheView(p.src.cache.Stats())
	}

	parts := []statusPart{p.geoPart(start), p.geoWaitingPart(start), p.outagesPart(), p.readyPart(), p.alertsPart(start)}
	for i, job := range statusJobs {
		parts = append(parts, p.jobPart(i, job))
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	noAnswer := "no answer within " + p.timeout.String()
	for _, part := range parts {
		part.fail(v, noAnswer)
	}
	results := make(chan func(*statusView), len(parts)) // buffered: a late part never blocks
	for _, part := range parts {
		go func() {
			defer func() {
				if r := recover(); r != nil {
					p.logger.Error("status page: a source panicked", "part", part.name, "panic", r)
					results <- func(v *statusView) { part.fail(v, "failed (details in the log)") }
				}
			}()
			results <- part.run(ctx)
		}()
	}
	// A little past the deadline, so that a source that honours it reports its own error.
	wait := time.NewTimer(p.timeout + 200*time.Millisecond)
	defer wait.Stop()
collect:
	for range parts {
		select {
		case fill := <-results:
			fill(v)
		case <-wait.C:
			break collect
		}
	}
	v.Took = p.now().Sub(start)
	return v
}

// panelError is what a panel says when its source failed: short and free of internal
// detail (hosts, credentials), which goes to the log.
func (p *statusPage) panelError(what string, err error) string {
	p.logger.Warn("status page: "+what+" failed", "error", err)
	var unavailable *serviceerror.Unavailable
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return what + ": no answer within " + p.timeout.String()
	case errors.As(err, &unavailable):
		return what + ": Temporal is unavailable"
	default:
		return what + " failed (details in the log)"
	}
}

func (p *statusPage) readyPart() statusPart {
	return statusPart{
		name: "readiness",
		run: func(ctx context.Context) func(*statusView) {
			r := checkReadiness(ctx, p.logger, p.src.checks)
			panel := readyPanel{Ready: len(r.down) == 0}
			for name, state := range r.checks {
				panel.Checks = append(panel.Checks, checkState{name, state})
			}
			slices.SortFunc(panel.Checks, func(a, b checkState) int { return strings.Compare(a.Name, b.Name) })
			return func(v *statusView) { v.Ready = panel }
		},
		fail: func(v *statusView, msg string) {
			v.Ready = readyPanel{Checks: []checkState{{"status page", msg}}}
		},
	}
}

func (p *statusPage) geoPart(now time.Time) statusPart {
	return statusPart{
		name: "geo calls",
		run: func(ctx context.Context) func(*statusView) {
			if p.src.slots == nil {
				return func(v *statusView) { v.Geo = geoPanel{Err: "no store to read calls from"} }
			}
			counts, err := p.src.slots.CallsPerSecond(ctx, activities.GeoRateKey, now.Add(-geoWindow), now)
			if err != nil {
				msg := p.panelError("reading calls from the store", err)
				return func(v *statusView) { v.Geo = geoPanel{Err: msg} }
			}
			panel := geoStats(counts, now, p.geoRate)
			return func(v *statusView) { v.Geo = panel }
		},
		fail: func(v *statusView, msg string) { v.Geo = geoPanel{Err: msg} },
	}
}

func (p *statusPage) jobPart(i int, job statusJob) statusPart {
	return statusPart{
		name: "job " + job.WorkflowType,
		run: func(ctx context.Context) func(*statusView) {
			panel := p.job(ctx, job)
			return func(v *statusView) { v.Jobs[i] = panel }
		},
		fail: func(v *statusView, msg string) { v.Jobs[i] = jobPanel{statusJob: job, Err: msg} },
	}
}

func (p *statusPage) outagesPart() statusPart {
	return statusPart{
		name: "outage syncs",
		run: func(ctx context.Context) func(*statusView) {
			panel := p.outages(ctx)
			return func(v *statusView) { v.Outages = panel }
		},
		fail: func(v *statusView, msg string) { v.Outages = outagesPanel{Err: msg} },
	}
}
