// Package ratelimit keeps the calls to an upstream under its limit across every worker at
// once, retries included: each call first takes a slot from the shared store.
//
// Slots are instants on the database's clock, one clock for every worker, spaced 8% wider
// than 1/rate: the store reserves each at the later of the next free slot and its own now,
// and moves the next free slot on by the spacing, atomically, so that every slot is at
// least a spacing after the one before, whoever took it. A caller sees only durations, on
// its own monotonic clock: it notes t0 before the statement and t1 when the answer
// arrives; the database read its clock at some instant n between the two and answers
// Wait = slot - n. The caller sleeps until t1 + Wait >= n + Wait = slot, so it never calls
// before its slot; and it calls only if now - t0 - Wait <= Tolerance (20 ms), so, as
// t0 <= n, never later than n + Wait + Tolerance = slot + Tolerance; otherwise it takes a
// new slot. A call at time c thus has its slot in [c-Tolerance, c], and the calls in any
// window [t, t+1s) have slots in [t-Tolerance, t+1s): at most
// ceil((1s+Tolerance)/spacing) = ceil(1.02 × rate / 1.08) ≤ rate of them, for any rate.
// The 60 ms left of the 80 ms margin absorb the time from the check to the request
// reaching the upstream (40 ms was once too little: twelve worker processes and the
// Temporal server on 2 cores put 6 calls in one second). Throughput is rate/1.08 (4.63/s of 5). No worker's wall clock
// takes part: a worker whose clock is seconds off calls at the same instants as one whose
// clock is right (only the clocks' rates matter, and they agree to parts per million).
// A slow statement (a busy machine, a distant database) would cost its slot by that rule
// alone, since its answer cannot say how late the slot already is; under load, no call
// would ever be made. So the limiter also learns its clock's offset from the database's
// the way NTP does (offsets): the round trip that bounds it best is kept, and a slot's
// instant on this process's clock is then known within that round trip's half, however
// slow the statement that reserved it. And it asks for each slot at least the last round
// trip ahead (the lead), so that the slot is still to come when a slow answer arrives.
// The rule is unchanged: never before the slot (the latest it can be), never later than
// Tolerance after the earliest it can be. A process's callers also reserve one at a time,
// not slowing one another's statements.
//
// A slot is reserved only if it is at most Horizon ahead of the database's now. Otherwise
// nothing is reserved, the caller learns how far the next free slot is, sleeps until it
// comes within the horizon plus a random part of the horizon (many refused callers come
// back spread out, not at once), and asks again. So no reservation is ever more than
// Horizon ahead: slots abandoned by callers that gave up (a context ended, an activity
// timed out) waste at most Horizon's worth of calls, and the next free slot cannot run
// away from real time.
//
// The store counts calls, not reservations (CountCall, charted by the status page), once a
// caller has decided to call. The count runs beside the call, so that a slow or failing
// database neither delays the call past its bound nor stops it (see CountErrors).
//
// The server-side task-queue limit alone cannot promise this: its token bucket starts
// full, is split over partitions, and does not see retries the way the upstream does.
package ratelimit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"relay/internal/store"
)

// Slots is where slots are reserved and calls counted (the store).
type Slots interface {
	ReserveSlot(ctx context.Context, key string, spacing, horizon, lead time.Duration) (store.Reservation, error)
	CountCall(ctx context.Context, key string) error
}

// Tolerance is how late after its slot a caller may still call.
const Tolerance = 20 * time.Millisecond

// Horizon is how far ahead of the database's now a slot may be reserved. Above a second,
// so that a worker's waiting calls keep a few slots queued and the slots are used back to
// back (23 of them at 5 calls/s); well under the StartToClose of the activity that waits
// (the geolocation API's Locate: minutes), so that a caller holding the furthest slot
// still reaches it, and callers that give up waste at most these 5 s of calls.
const Horizon = 5 * time.Second

// countTimeout bounds counting a call in the store, which runs beside the call.
const countTimeout = 10 * time.Second

// Limiter spaces calls to one upstream.
type Limiter struct {
	slots     Slots
	key       string
	spacing   time.Duration
	tolerance time.Duration
	horizon   time.Duration
	// clock measures durations only (its monotonic reading, if any): never compared with
	// the database's clock.
	clock interface{ Now() time.Time }
	// reserving lets one of this process's callers reserve at a time (see reserve).
	reserving chan struct{}

	counting    sync.WaitGroup // calls being counted in the store
	countErrors atomic.Int64

	offsets offsets      // how far this process's clock is from the database's
	lead    atomic.Int64 // the last statement's round trip, a time.Duration
}

// offsets learns how far this process's clock is from the database's, from the
// statements' round trips, the way NTP does: the database read its clock at some instant
// between sending (t0) and answering (t1), so its reading minus the midpoint is the offset,
// give or take half the round trip. The round trip that bounds it best is kept (growing
// by a generous drift allowance as it ages, and forgotten after offsetMaxAge), so that a
// slow statement, on a busy machine or to a distant database, does not cost its slot: the
// slot's instant on this process's clock is known from an earlier, faster round trip.
type offsets struct {
	mu   sync.Mutex
	best offsetSample
}

type offsetSample struct {
	offset time.Duration // database clock minus this process's clock
	spread time.Duration // half the round trip: the offset is right within ± spread
	at     time.Time     // when it was measured, on this process's clock
}

const (
	offsetMaxAge = time.Minute
	offsetDrift  = 1000 // clocks may drift apart by 1 part in this per unit of time (1 ms/s)
)

func (o *offsets) observe(t0, t1, dbNow time.Time) {
	half := t1.Sub(t0) / 2
	s := offsetSample{offset: dbNow.Sub(t0.Add(half)), spread: half, at: t1}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.best.at.IsZero() || s.spread <= o.best.aged(t1) {
		o.best = s
	}
}

// aged is the sample's spread at now: wider as the clocks may have drifted since.
func (s offsetSample) aged(now time.Time) time.Duration {
	age := now.Sub(s.at)
	if age > offsetMaxAge || age < 0 {
		return time.Duration(1<<63 - 1)
	}
	return s.spread + age/offsetDrift
}

// local is dbInstant on this process's clock, right within ± spread, if a sample is fresh.
func (o *offsets) local(dbInstant, now time.Time) (at time.Time, spread time.Duration, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.best.at.IsZero() {
		return time.Time{}, 0, false
	}
	spread = o.best.aged(now)
	if spread == time.Duration(1<<63-1) {
		return time.Time{}, 0, false
	}
	// now plus how far dbInstant is past now's reading on the database's clock.
	return now.Add(dbInstant.Sub(now.Add(o.best.offset))), spread, true
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// New limits key to perSecond calls in any one-second window.
func New(slots Slots, key string, perSecond float64) (*Limiter, error) {
	if !(perSecond > 0) {
		return nil, fmt.Errorf("rate limit %q: want calls per second > 0, got %v", key, perSecond)
	}
	spacing := time.Duration(float64(time.Second) * 1.08 / perSecond)
	return &Limiter{slots: slots, key: key, spacing: spacing, tolerance: Tolerance, horizon: Horizon,
		clock: realClock{}, reserving: make(chan struct{}, 1)}, nil
}

// Wait blocks until the caller holds a slot and it is time to call, and then counts the
// call in the store.
func (l *Limiter) Wait(ctx context.Context) error {
	for {
		r, t0, t1, err := l.reserve(ctx)
		if err != nil {
			return err
		}
		if !r.OK {
			if err := sleep(ctx, l.retryAfter(r.Ahead)); err != nil {
				return err
			}
			continue
		}
		// The slot on this process's clock: earliest and latest it can be.
		earliest, latest := t1.Add(r.Wait-t1.Sub(t0)), t1.Add(r.Wait)
		if !r.Now.IsZero() {
			l.offsets.observe(t0, t1, r.Now)
			if at, spread, ok := l.offsets.local(r.Now.Add(r.Wait), t1); ok && 2*spread < latest.Sub(earliest) {
				earliest, latest = at.Add(-spread), at.Add(spread)
			}
		}
		if err := sleep(ctx, latest.Sub(l.clock.Now())); err != nil {
			return err // the slot is abandoned: the horizon bounds what that costs
		}
		if l.clock.Now().Sub(earliest) <= l.tolerance {
			l.count(ctx)
			return nil
		}
		// Too late for the slot (a slow statement, a pause, a busy machine): calling now
		// could crowd the next slots.
	}
}

// reserve asks the store for a slot, noting the time before the statement (t0) and when
// its answer arrived (t1). This process's callers reserve one at a time: the statement
// takes a millisecond or so, and the lateness check counts its whole duration (a
// statement slower than Tolerance costs its slot), so a burst of callers each waiting on
// a new connection, or on one another's lock on the row, would cost slots for nothing.
// The wait for the turn comes before t0 and costs nothing.
func (l *Limiter) reserve(ctx context.Context) (r store.Reservation, t0, t1 time.Time, err error) {
	select {
	case l.reserving <- struct{}{}:
	case <-ctx.Done():
		return r, t0, t1, ctx.Err()
	}
	defer func() { <-l.reserving }()
	t0 = l.clock.Now()
	r, err = l.slots.ReserveSlot(ctx, l.key, l.spacing, l.horizon, time.Duration(l.lead.Load()))
	t1 = l.clock.Now()
	// The next slot is asked at least this round trip ahead, so that it can still be
	// reached when a statement as slow as this one answers (a slot at the database's now
	// would be past by then). Capped well under the horizon.
	l.lead.Store(int64(min(t1.Sub(t0), l.horizon/4)))
	return r, t0, t1, err
}

// retryAfter is how long a caller refused a slot sleeps: until the next free slot, ahead
// of the database's now, comes within the horizon, plus a random part of the horizon.
func (l *Limiter) retryAfter(ahead time.Duration) time.Duration {
	d := max(ahead-l.horizon, 0)
	if l.horizon > 0 {
		d += rand.N(l.horizon)
	}
	return d
}

// count counts a call in the store, beside the call: its error is only counted.
func (l *Limiter) count(ctx context.Context) {
	l.counting.Add(1)
	go func() {
		defer l.counting.Done()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), countTimeout)
		defer cancel()
		if err := l.slots.CountCall(ctx, l.key); err != nil {
			l.countErrors.Add(1)
		}
	}()
}

// CountErrors is how many calls this limiter let through could not be counted in the
// store (the status page's calls per second miss them). Such a call was not held back.
func (l *Limiter) CountErrors() int64 { return l.countErrors.Load() }

// sleep waits for d, or returns the context's error if it ends first.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
