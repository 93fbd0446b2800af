package store_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"relay/internal/store"
	"relay/internal/store/storetest"
)

// Slots a minute apart with a horizon of three minutes: four fit (now, +1, +2, +3 min),
// the fifth is refused and says how far the next free slot is. Every bound below holds
// however slowly the statements run: Wait and Ahead are measured from the database's
// clock reading during each statement, which is at most `took` after the first one's.
func TestReserveSlotSpacesSlotsUpToTheHorizon(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		const spacing, horizon = time.Minute, 3 * time.Minute
		start := time.Now()
		var got []store.Reservation
		for range 5 {
			r, err := s.ReserveSlot(ctx, "geoip", spacing, horizon, 0)
			require.NoError(t, err)
			got = append(got, r)
		}
		took := time.Since(start)
		for i, r := range got[:4] {
			want := time.Duration(i) * spacing
			assert.True(t, r.OK, "slot %d is within the horizon", i)
			assert.LessOrEqual(t, r.Wait, want, "slot %d", i)
			assert.GreaterOrEqual(t, r.Wait, max(want-took, 0), "slot %d", i)
		}
		assert.False(t, got[4].OK, "the fifth slot is beyond the horizon")
		assert.Zero(t, got[4].Wait)
		assert.LessOrEqual(t, got[4].Ahead, 4*spacing)
		assert.GreaterOrEqual(t, got[4].Ahead, 4*spacing-took)
		assert.Greater(t, got[4].Ahead, horizon)

		// Another key has its own slots.
		r, err := s.ReserveSlot(ctx, "other", spacing, horizon, 0)
		require.NoError(t, err)
		assert.Equal(t, store.Reservation{OK: true}, withoutNow(t, r))
	})
}

// A free slot is never in the past: after a pause longer than the spacing, the next slot
// is the database's now.
func TestReserveSlotNeverInThePast(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		for range 3 {
			r, err := s.ReserveSlot(ctx, "geoip", 10*time.Millisecond, time.Second, 0)
			require.NoError(t, err)
			assert.Equal(t, store.Reservation{OK: true}, withoutNow(t, r))
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// withoutNow checks the database's clock reading (this machine's clock, here) and leaves
// it out, for comparing the rest.
func withoutNow(t *testing.T, r store.Reservation) store.Reservation {
	t.Helper()
	assert.WithinDuration(t, time.Now(), r.Now, time.Second, "the database's clock reading")
	r.Now = time.Time{}
	return r
}

// A lead asks for a slot at least that far past the database's now, and the horizon
// still counts from now.
func TestReserveSlotLead(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		r, err := s.ReserveSlot(ctx, "geoip", 10*time.Millisecond, time.Second, 300*time.Millisecond)
		require.NoError(t, err)
		assert.True(t, r.OK)
		assert.Equal(t, 300*time.Millisecond, r.Wait)
		r, err = s.ReserveSlot(ctx, "geoip", 10*time.Millisecond, time.Second, 0)
		require.NoError(t, err)
		assert.True(t, r.OK)
		assert.InDelta(t, 310*time.Millisecond, r.Wait, float64(20*time.Millisecond), "after the first, whatever its lead")
		r, err = s.ReserveSlot(ctx, "geoip", 10*time.Millisecond, 200*time.Millisecond, 100*time.Millisecond)
		require.NoError(t, err)
		assert.False(t, r.OK, "the next free slot is past the horizon from now, lead or not")
	})
}

// Concurrent reservations from several connections each get a different slot, and no more
// of them than fit in the horizon.
func TestReserveSlotUnderConcurrency(t *testing.T) {
	storetest.EachURL(t, func(t *testing.T, url string) {
		ctx := ctxT(t)
		// Slots a minute apart: a slot's Wait, rounded to minutes, is its place in the line
		// as long as the test takes less than half a minute.
		const processes, each, spacing, horizon = 3, 20, time.Minute, 30 * time.Minute
		stores := make([]*store.Store, processes)
		for i := range stores {
			stores[i] = storetest.OpenURL(t, url)
		}
		var mu sync.Mutex
		var places []int
		refused := 0
		var wg sync.WaitGroup
		for _, s := range stores {
			wg.Go(func() {
				for range each {
					r, err := s.ReserveSlot(ctx, "geoip", spacing, horizon, 0)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					if r.OK {
						places = append(places, int(r.Wait.Round(spacing)/spacing))
					} else {
						refused++
						// Exactly the horizon when PostgreSQL's snapshot predates the
						// reservation that filled it.
						assert.GreaterOrEqual(t, r.Ahead, horizon)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		want := make([]int, horizon/spacing+1) // now, +1 min, ..., +30 min
		for i := range want {
			want[i] = i
		}
		assert.ElementsMatch(t, want, places, "each slot once, none beyond the horizon")
		assert.Equal(t, processes*each-len(want), refused)
	})
}

func TestCountCallCountsInTheDatabasesSecond(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		before := time.Now()
		for range 7 {
			require.NoError(t, s.CountCall(ctx, "geoip"))
		}
		require.NoError(t, s.CountCall(ctx, "other")) // another key is counted apart
		after := time.Now()

		got, err := s.CallsPerSecond(ctx, "geoip", before.Add(-time.Minute), after.Add(time.Minute))
		require.NoError(t, err)
		total := 0
		for _, c := range got {
			total += c.Calls
			assert.False(t, c.Second.Before(before.Truncate(time.Second)), "counted at the database's now")
			assert.False(t, c.Second.After(after), "counted at the database's now")
		}
		assert.Equal(t, 7, total)

		got, err = s.CallsPerSecond(ctx, "other", before.Add(-time.Minute), after.Add(time.Minute))
		require.NoError(t, err)
		require.Len(t, got, 1)
		assert.Equal(t, 1, got[0].Calls)

		got, err = s.CallsPerSecond(ctx, "none", before.Add(-time.Minute), after.Add(time.Minute))
		require.NoError(t, err)
		assert.Empty(t, got)
	})
}

// CallsPerSecond takes each second its window overlaps; the first call of a second
// forgets the seconds more than an hour older.
func TestCallsPerSecondWindowAndPruning(t *testing.T) {
	storetest.EachURL(t, func(t *testing.T, url string) {
		ctx := ctxT(t)
		s := storetest.OpenURL(t, url)
		db := rawDB(t, url)
		now := time.Now().Truncate(time.Second)
		old := now.Add(-time.Hour - time.Minute)
		for _, c := range []store.CallCount{
			{Second: old, Calls: 2},
			{Second: now.Add(-10 * time.Minute), Calls: 4},
			{Second: now.Add(-10*time.Minute + time.Second), Calls: 3},
			{Second: now.Add(-10*time.Minute + 2*time.Second), Calls: 3},
		} {
			_, err := db.ExecContext(ctx, `INSERT INTO rate_calls (key, second, calls) VALUES ($1, $2, $3)`,
				"geoip", c.Second.Unix(), c.Calls)
			require.NoError(t, err)
		}
		t0 := now.Add(-10 * time.Minute)
		got, err := s.CallsPerSecond(ctx, "geoip", t0.Add(1500*time.Millisecond), t0.Add(2100*time.Millisecond))
		require.NoError(t, err)
		assert.Equal(t, []store.CallCount{{Second: t0.Add(time.Second), Calls: 3}, {Second: t0.Add(2 * time.Second), Calls: 3}}, got)
		got, err = s.CallsPerSecond(ctx, "geoip", t0.Add(-time.Minute), t0)
		require.NoError(t, err)
		assert.Empty(t, got, "[from, to) ends before t0's second")

		got, err = s.CallsPerSecond(ctx, "geoip", old, old.Add(time.Second))
		require.NoError(t, err)
		assert.Equal(t, []store.CallCount{{Second: old, Calls: 2}}, got, "kept until a new second's first call")

		// The database's current second has no row yet: its first call prunes.
		require.NoError(t, s.CountCall(ctx, "geoip"))
		got, err = s.CallsPerSecond(ctx, "geoip", old.Add(-time.Hour), time.Now().Add(time.Minute))
		require.NoError(t, err)
		require.Len(t, got, 4, "the second older than an hour is gone")
		assert.Equal(t, t0, got[0].Second)
		assert.Equal(t, 1, got[3].Calls)
	})
}

// Concurrent counts from several connections each count once.
func TestCountCallUnderConcurrency(t *testing.T) {
	storetest.EachURL(t, func(t *testing.T, url string) {
		ctx := ctxT(t)
		const processes, each = 3, 20
		start := time.Now()
		stores := make([]*store.Store, processes)
		for i := range stores {
			stores[i] = storetest.OpenURL(t, url)
		}
		var wg sync.WaitGroup
		for _, s := range stores {
			wg.Go(func() {
				for range each {
					if err := s.CountCall(ctx, "geoip"); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		got, err := stores[0].CallsPerSecond(ctx, "geoip", start.Add(-time.Minute), time.Now().Add(time.Minute))
		require.NoError(t, err)
		total := 0
		for _, c := range got {
			total += c.Calls
		}
		assert.Equal(t, processes*each, total)
	})
}
