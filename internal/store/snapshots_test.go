package store_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"relay/internal/store"
	"relay/internal/store/storetest"
)

func TestSnapshotsPublishReadAndPrune(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		_, _, err := s.LatestSnapshotID(ctx)
		assert.ErrorIs(t, err, store.ErrNotFound, "no snapshot before the first publish")

		var ids []int64
		for i := range 5 {
			id, err := s.PublishSnapshot(ctx, fmt.Sprintf("incidents/%d", i), []byte(`{"n":`+fmt.Sprint(i)+`}`), []byte(fmt.Sprintf(`{"body":%d}`, i)))
			require.NoError(t, err)
			ids = append(ids, id)
		}
		assert.IsIncreasing(t, ids)
		latest, at, err := s.LatestSnapshotID(ctx)
		require.NoError(t, err)
		assert.Equal(t, ids[4], latest)
		assert.False(t, at.IsZero())

		snap, err := s.Snapshot(ctx, latest)
		require.NoError(t, err)
		assert.Equal(t, "incidents/4", snap.WorkflowID)
		assert.JSONEq(t, `{"n":4}`, string(snap.Summary))
		assert.Equal(t, `{"body":4}`, string(snap.Body))
		assert.Equal(t, at, snap.CreatedAt)

		// Only the newest few are kept.
		_, err = s.Snapshot(ctx, ids[0])
		assert.ErrorIs(t, err, store.ErrNotFound)
		_, err = s.Snapshot(ctx, ids[2])
		assert.NoError(t, err)
	})
}

func TestSnapshotsPublishedConcurrentlyAllLand(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() { _, errs[i] = s.PublishSnapshot(ctx, "w", []byte(`{}`), make([]byte, 1<<20)) })
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		id, _, err := s.LatestSnapshotID(ctx)
		require.NoError(t, err)
		snap, err := s.Snapshot(ctx, id)
		require.NoError(t, err)
		assert.Len(t, snap.Body, 1<<20)
	})
}
