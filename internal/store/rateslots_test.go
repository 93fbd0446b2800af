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

func TestSlotsPerSecondCountsEachReservedSlotInItsSecond(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		t0 := time.Unix(1_800_000_000, 0)
		// 300 ms apart from t0: slots at .0 .3 .6 .9 | 1.2 1.5 1.8 | 2.1 2.4 2.7
		for range 10 {
			_, err := s.ReserveSlot(ctx, "geoip", t0, 300*time.Millisecond)
			require.NoError(t, err)
		}
		// Another key is counted apart.
		_, err := s.ReserveSlot(ctx, "other", t0, time.Second)
		require.NoError(t, err)

		got, err := s.SlotsPerSecond(ctx, "geoip", t0, t0.Add(time.Hour))
		require.NoError(t, err)
		assert.Equal(t, []store.SlotCount{
			{Second: t0, Slots: 4},
			{Second: t0.Add(time.Second), Slots: 3},
			{Second: t0.Add(2 * time.Second), Slots: 3},
		}, got)

		// A window takes each second it overlaps.
		got, err = s.SlotsPerSecond(ctx, "geoip", t0.Add(1500*time.Millisecond), t0.Add(2100*time.Millisecond))
		require.NoError(t, err)
		assert.Equal(t, []store.SlotCount{{Second: t0.Add(time.Second), Slots: 3}, {Second: t0.Add(2 * time.Second), Slots: 3}}, got)
		got, err = s.SlotsPerSecond(ctx, "geoip", t0.Add(-time.Minute), t0)
		require.NoError(t, err)
		assert.Empty(t, got, "[from, to) ends before t0's second")

		got, err = s.SlotsPerSecond(ctx, "none", t0, t0.Add(time.Hour))
		require.NoError(t, err)
		assert.Empty(t, got)
	})
}

func TestSlotsPerSecondKeepsAnHour(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		t0 := time.Unix(1_800_000_000, 0)
		for _, at := range []time.Time{t0, t0.Add(10 * time.Minute), t0.Add(70 * time.Minute)} {
			_, err := s.ReserveSlot(ctx, "geoip", at, time.Millisecond)
			require.NoError(t, err)
		}
		got, err := s.SlotsPerSecond(ctx, "geoip", t0.Add(-time.Hour), t0.Add(2*time.Hour))
		require.NoError(t, err)
		assert.Equal(t, []store.SlotCount{
			{Second: t0.Add(10 * time.Minute), Slots: 1},
			{Second: t0.Add(70 * time.Minute), Slots: 1},
		}, got, "the second older than an hour before the newest slot is gone")
	})
}

// Concurrent reservations from several connections each count once.
func TestSlotsPerSecondUnderConcurrentReservations(t *testing.T) {
	storetest.EachURL(t, func(t *testing.T, url string) {
		ctx := ctxT(t)
		const processes, each = 3, 20
		now := time.Now()
		var wg sync.WaitGroup
		stores := make([]*store.Store, processes)
		for i := range stores {
			stores[i] = storetest.OpenURL(t, url)
		}
		for _, s := range stores {
			wg.Go(func() {
				for range each {
					if _, err := s.ReserveSlot(ctx, "geoip", now, 10*time.Millisecond); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		got, err := stores[0].SlotsPerSecond(ctx, "geoip", now, now.Add(time.Minute))
		require.NoError(t, err)
		total := 0
		for _, c := range got {
			total += c.Slots
			assert.LessOrEqual(t, c.Slots, 100, "at 10 ms apart a second holds at most 100 slots")
		}
		assert.Equal(t, processes*each, total)
	})
}
