package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"relay/internal/store"
	"relay/internal/store/storetest"
)

func ptr[T any](v T) *T { return &v }

func TestEventsAcceptIdempotentlyAndLocate(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		ev, existed, err := s.AcceptEvent(ctx, store.NewEvent{TaskID: "t1", Name: ptr("boot"), StatusCode: ptr(int64(200)), IP: "8.8.8.8", IdempotencyKey: "k1"})
		require.NoError(t, err)
		assert.False(t, existed)
		assert.Equal(t, store.EventPending, ev.State)

		// The same key from the same client: the first event, nothing new.
		again, existed, err := s.AcceptEvent(ctx, store.NewEvent{TaskID: "t2", Name: ptr("other"), IP: "8.8.8.8", IdempotencyKey: "k1"})
		require.NoError(t, err)
		assert.True(t, existed)
		assert.Equal(t, "t1", again.TaskID)
		assert.Equal(t, "boot", *again.Name)
		_, err = s.Event(ctx, "t2")
		assert.ErrorIs(t, err, store.ErrNotFound)

		// The same key from another client is another event; no key, no dedupe.
		_, existed, err = s.AcceptEvent(ctx, store.NewEvent{TaskID: "t3", IP: "1.1.1.1", IdempotencyKey: "k1"})
		require.NoError(t, err)
		assert.False(t, existed)
		for _, id := range []string{"t4", "t5"} {
			_, existed, err = s.AcceptEvent(ctx, store.NewEvent{TaskID: id, IP: "1.1.1.1"})
			require.NoError(t, err)
			assert.False(t, existed)
		}

		loc := []byte(`{"city":"Willenhall","country":{"iso_code":"GB","name":"United Kingdom"}}`)
		n, err := s.SettleIP(ctx, "8.8.8.8", store.GeoOutcome{Location: loc, Country: "gb", City: "Willenhall"}, time.Time{})
		require.NoError(t, err)
		assert.Equal(t, 1, n)
		got, err := s.Event(ctx, "t1")
		require.NoError(t, err)
		assert.Equal(t, store.EventLocated, got.State)
		assert.JSONEq(t, string(loc), string(got.Location))

		located, _, err := s.Events(ctx, store.EventFilter{Country: "GB", City: "willenhall", Limit: 10})
		require.NoError(t, err)
		require.Len(t, located, 1)
		assert.Equal(t, "t1", located[0].TaskID)
		pending, _, err := s.Events(ctx, store.EventFilter{State: store.EventPending, Limit: 10})
		require.NoError(t, err)
		assert.Len(t, pending, 3)
	})
}

func TestEventsPageNewestFirst(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		for i := range 7 {
			_, _, err := s.AcceptEvent(ctx, store.NewEvent{TaskID: fmt.Sprintf("t%d", i), IP: "8.8.8.8"})
			require.NoError(t, err)
			time.Sleep(2 * time.Millisecond) // distinct received_at, mostly
		}
		var seen []string
		cursor := ""
		for page := 0; ; page++ {
			evs, next, err := s.Events(ctx, store.EventFilter{Limit: 3, Cursor: cursor})
			require.NoError(t, err)
			for _, e := range evs {
				seen = append(seen, e.TaskID)
			}
			if next == "" {
				break
			}
			require.Less(t, page, 5)
			cursor = next
		}
		assert.Equal(t, []string{"t6", "t5", "t4", "t3", "t2", "t1", "t0"}, seen)
		_, _, err := s.Events(ctx, store.EventFilter{Limit: 3, Cursor: "not-a-cursor!"})
		assert.ErrorIs(t, err, store.ErrBadCursor)
	})
}
