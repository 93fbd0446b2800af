package store_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"relay/internal/store"
	"relay/internal/store/storetest"
)

func accept(t *testing.T, s *store.Store, taskID, ip string) {
	t.Helper()
	_, _, err := s.AcceptEvent(ctxT(t), store.NewEvent{TaskID: taskID, IP: ip})
	require.NoError(t, err)
}

func taskIDs(evs []store.LeasedEvent) []string {
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.TaskID
	}
	slices.Sort(ids)
	return ids
}

// A lease hides an event from other dispatchers until it runs out; a settled event is
// never leased again; Dispatches counts the leases.
func TestLeaseEventsHoldsUntilTheLeaseRunsOut(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		for i := range 3 {
			accept(t, s, fmt.Sprintf("t%d", i), "8.8.8.8")
			time.Sleep(2 * time.Millisecond) // distinct received_at: oldest first
		}
		now := time.Now()
		first, err := s.LeaseEvents(ctx, now, time.Minute, 2)
		require.NoError(t, err)
		assert.Equal(t, []string{"t0", "t1"}, taskIDs(first), "the oldest first")
		assert.Equal(t, 1, first[0].Dispatches)
		second, err := s.LeaseEvents(ctx, now, time.Minute, 10)
		require.NoError(t, err)
		assert.Equal(t, []string{"t2"}, taskIDs(second), "held events are skipped")
		none, err := s.LeaseEvents(ctx, now.Add(30*time.Second), time.Minute, 10)
		require.NoError(t, err)
		assert.Empty(t, none)

		require.NoError(t, s.ExtendLeases(ctx, []string{"t0"}, now.Add(5*time.Minute)))
		_, err = s.SettleIP(ctx, "1.1.1.1", store.GeoOutcome{}, time.Time{}) // another IP: no effect
		require.NoError(t, err)
		again, err := s.LeaseEvents(ctx, now.Add(2*time.Minute), time.Minute, 10)
		require.NoError(t, err)
		assert.Equal(t, []string{"t1", "t2"}, taskIDs(again), "t0's lease was extended")
		for _, e := range again {
			assert.Equal(t, 2, e.Dispatches, e.TaskID)
		}
		n, err := s.SettleIP(ctx, "8.8.8.8", store.GeoOutcome{}, time.Time{})
		require.NoError(t, err)
		assert.Equal(t, 3, n, "every pending event of the IP, held or not")
		none, err = s.LeaseEvents(ctx, now.Add(time.Hour), time.Minute, 10)
		require.NoError(t, err)
		assert.Empty(t, none, "settled events are done")
	})
}

// Dispatchers in several processes leasing at once never get the same event.
func TestLeaseEventsIsExclusiveAcrossProcesses(t *testing.T) {
	storetest.EachURL(t, func(t *testing.T, url string) {
		const events, dispatchers = 300, 4
		first := storetest.OpenURL(t, url)
		for i := range events {
			accept(t, first, fmt.Sprintf("t%03d", i), fmt.Sprintf("8.8.%d.%d", i/200, i%200))
		}
		var mu sync.Mutex
		seen := map[string]int{}
		var wg sync.WaitGroup
		for range dispatchers {
			st := storetest.OpenURL(t, url)
			wg.Go(func() {
				for {
					evs, err := st.LeaseEvents(ctxT(t), time.Now(), time.Hour, 7)
					if err != nil {
						t.Error(err)
						return
					}
					if len(evs) == 0 {
						return
					}
					mu.Lock()
					for _, e := range evs {
						seen[e.TaskID]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		require.Len(t, seen, events)
		for id, n := range seen {
			require.Equal(t, 1, n, "event %s leased %d times", id, n)
		}
	})
}

// A batch is located from fresh cache entries in one statement (an unplaceable entry makes
// its events unlocatable); events of IPs not cached, or cached too long ago, stay pending.
func TestLocateFromCache(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		now := time.Now()
		loc := []byte(`{"city":"Willenhall","country":{"iso_code":"GB","name":"United Kingdom"}}`)
		_, err := s.SettleIP(ctx, "8.8.8.8", store.GeoOutcome{Location: loc, Country: "GB", City: "Willenhall"}, now.Add(time.Minute))
		require.NoError(t, err)
		_, err = s.SettleIP(ctx, "9.9.9.9", store.GeoOutcome{}, now.Add(time.Minute))
		require.NoError(t, err)
		_, err = s.SettleIP(ctx, "7.7.7.7", store.GeoOutcome{Location: loc, Country: "GB"}, now.Add(-time.Second))
		require.NoError(t, err)
		for id, ip := range map[string]string{"a": "8.8.8.8", "b": "8.8.8.8", "c": "9.9.9.9", "d": "7.7.7.7", "e": "6.6.6.6", "f": "8.8.8.8"} {
			accept(t, s, id, ip)
		}
		settled, err := s.LocateFromCache(ctx, []string{"a", "b", "c", "d", "e"}, now)
		require.NoError(t, err)
		slices.Sort(settled)
		assert.Equal(t, []string{"a", "b", "c"}, settled)
		state := func(id string) store.Event {
			ev, err := s.Event(ctx, id)
			require.NoError(t, err)
			return ev
		}
		assert.Equal(t, store.EventLocated, state("a").State)
		assert.JSONEq(t, string(loc), string(state("a").Location))
		assert.Equal(t, store.EventUnlocatable, state("c").State)
		assert.Equal(t, store.EventPending, state("d").State, "expired entry")
		assert.Equal(t, store.EventPending, state("e").State, "not cached")
		assert.Equal(t, store.EventPending, state("f").State, "not in the batch")
		byCity, _, err := s.Events(ctx, store.EventFilter{Country: "gb", City: "WILLENHALL", Limit: 10})
		require.NoError(t, err)
		assert.Len(t, byCity, 2, "the cache's country and city file the events")

		again, err := s.LocateFromCache(ctx, []string{"a"}, now)
		require.NoError(t, err)
		assert.Empty(t, again, "a settled event is not settled twice")
		p, err := s.PendingEvents(ctx)
		require.NoError(t, err)
		assert.Equal(t, 3, p.Events, "d, e and f")
		assert.WithinDuration(t, now, p.Oldest, time.Minute)
		assert.Contains(t, []string{"7.7.7.7", "6.6.6.6", "8.8.8.8"}, p.OldestIP)
	})
}

// Expired cache entries are pruned; fresh ones stay.
func TestPruneGeoCache(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		now := time.Now()
		for ip, until := range map[string]time.Time{"1.1.1.1": now.Add(-time.Hour), "2.2.2.2": now.Add(-time.Second), "3.3.3.3": now.Add(time.Hour)} {
			_, err := s.SettleIP(ctx, ip, store.GeoOutcome{}, until)
			require.NoError(t, err)
		}
		n, err := s.PruneGeoCache(ctx, now)
		require.NoError(t, err)
		assert.Equal(t, int64(2), n)
		_, found, err := s.CachedLocation(ctx, "3.3.3.3", now)
		require.NoError(t, err)
		assert.True(t, found)
		p, err := s.PendingEvents(ctx)
		require.NoError(t, err)
		assert.Equal(t, store.Pending{}, p)
	})
}

// CacheLocation keeps an answer without touching events: they wait for the settle, or a
// dispatcher finds the entry.
func TestCacheLocationSettlesNothing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		now := time.Now()
		accept(t, s, "a", "8.8.8.8")
		loc := []byte(`{"city":null,"country":{"iso_code":"US"}}`)
		require.NoError(t, s.CacheLocation(ctx, "8.8.8.8", store.GeoOutcome{Location: loc, Country: "us"}, now.Add(time.Minute)))
		got, found, err := s.CachedLocation(ctx, "8.8.8.8", now)
		require.NoError(t, err)
		assert.True(t, found)
		assert.JSONEq(t, string(loc), string(got))
		ev, err := s.Event(ctx, "a")
		require.NoError(t, err)
		assert.Equal(t, store.EventPending, ev.State)
		settled, err := s.LocateFromCache(ctx, []string{"a"}, now)
		require.NoError(t, err)
		assert.Equal(t, []string{"a"}, settled)
		byCountry, _, err := s.Events(ctx, store.EventFilter{Country: "US", Limit: 5})
		require.NoError(t, err)
		assert.Len(t, byCountry, 1, "filed by the upper-cased country")
	})
}
