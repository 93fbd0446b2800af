package ratelimit

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"relay/internal/store"
	"relay/internal/store/storetest"
)

// maxInWindow is the most times in any window [t, t+w).
func maxInWindow(times []time.Time, w time.Duration) int {
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	most := 0
	for i := range times {
		n := 0
		for j := i; j < len(times) && times[j].Sub(times[i]) < w; j++ {
			n++
		}
		most = max(most, n)
	}
	return most
}

// Several workers, each with its own connection to one database, calling as fast as the
// limiter lets them: no one-second window ever holds more than the rate, and the rate is
// nearly used up. The calls last about 1.6 s: every window that starts in the first 0.6 s,
// the workers' opening burst included, is a full second of calls.
func TestNoWindowOverTheRateAcrossWorkers(t *testing.T) {
	storetest.EachURL(t, func(t *testing.T, url string) {
		const rate, workers, callsEach = 40.0, 3, 20
		var mu sync.Mutex
		var calls []time.Time
		var wg sync.WaitGroup
		start := time.Now()
		for range workers {
			st := storetest.OpenURL(t, url) // one process each
			l, err := New(st, "geoip", rate)
			require.NoError(t, err)
			wg.Go(func() {
				for range callsEach {
					if err := l.Wait(context.Background()); err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					calls = append(calls, time.Now())
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		took := time.Since(start)
		require.Len(t, calls, workers*callsEach)
		assert.LessOrEqual(t, maxInWindow(calls, time.Second), int(rate), "calls in the busiest second")
		perSecond := float64(len(calls)) / took.Seconds()
		t.Logf("%d calls in %v: %.1f/s, busiest second %d", len(calls), took, perSecond, maxInWindow(calls, time.Second))
		// A correctness floor, far from the noise of a loaded machine (it measured 31-36/s
		// with the whole suite running): a limiter that wasted half its budget is broken.
		// How much of it is used is measured by `relay bench geo-rate` (BENCHMARKS.md).
		assert.Greater(t, perSecond, rate*0.5, "the budget is used, not wasted")
	})
}

// The bound holds for small rates too, where a naive spacing of 1/rate plus any lateness
// lets two calls into one second.
func TestSmallRateBound(t *testing.T) {
	for _, rate := range []float64{1, 2, 5} {
		l := &Limiter{spacing: time.Duration(float64(time.Second) * 1.08 / rate), tolerance: Tolerance}
		// Worst case: every call as late as allowed, then one exactly on its slot.
		var calls []time.Time
		t0 := time.Unix(0, 0)
		for i := range 20 {
			slot := t0.Add(time.Duration(i) * l.spacing)
			late := l.tolerance
			if i%int(rate+1) == 0 {
				late = 0
			}
			calls = append(calls, slot.Add(late))
		}
		assert.LessOrEqual(t, maxInWindow(calls, time.Second), int(rate), "rate %v", rate)
	}
}

// A caller that wakes too late for its slot takes another instead of calling late.
func TestLateWakeTakesANewSlot(t *testing.T) {
	st := storetest.Open(t)
	l, err := New(st, "k", 10)
	require.NoError(t, err)
	clock := time.Unix(1000, 0)
	reserved := 0
	l.slots = slotsFunc(func(ctx context.Context, key string, now time.Time, spacing time.Duration) (time.Time, error) {
		reserved++
		slot, err := st.ReserveSlot(ctx, key, now, spacing)
		if reserved == 1 {
			clock = slot.Add(time.Second) // the first wake-up comes a second late
		} else {
			clock = slot
		}
		return slot, err
	})
	l.now = func() time.Time { return clock }
	require.NoError(t, l.Wait(context.Background()))
	assert.Equal(t, 2, reserved)
}

func TestWaitStopsWithItsContext(t *testing.T) {
	st := storetest.Open(t)
	l, err := New(st, "k", 1)
	require.NoError(t, err)
	require.NoError(t, l.Wait(context.Background())) // takes the free slot now
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, l.Wait(ctx), context.DeadlineExceeded, "the next slot is a second away")
}

func TestRateMustBePositive(t *testing.T) {
	for _, r := range []float64{0, -1} {
		_, err := New(nil, "k", r)
		assert.Error(t, err)
	}
}

type slotsFunc func(ctx context.Context, key string, now time.Time, spacing time.Duration) (time.Time, error)

func (f slotsFunc) ReserveSlot(ctx context.Context, key string, now time.Time, spacing time.Duration) (time.Time, error) {
	return f(ctx, key, now, spacing)
}

var _ Slots = (*store.Store)(nil)
