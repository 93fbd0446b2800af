package store_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

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
			pub, err := s.PublishSnapshot(ctx, store.NewSnapshot{
				WorkflowID: fmt.Sprintf("incidents/%d", i), AsOf: asOf(i),
				Summary: []byte(`{"n":` + fmt.Sprint(i) + `}`), Body: []byte(fmt.Sprintf(`{"body":%d}`, i)),
			})
			require.NoError(t, err)
			require.True(t, pub.Published)
			ids = append(ids, pub.ID)
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
			wg.Go(func() {
				_, errs[i] = s.PublishSnapshot(ctx, store.NewSnapshot{WorkflowID: "w", AsOf: asOf(i), Summary: []byte(`{}`), Body: make([]byte, 1<<20)})
			})
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

// asOf is the i-th of a series of refresh start times.
func asOf(i int) time.Time { return time.UnixMilli(1_700_000_000_000 + int64(i)*1000) }

// A refresh that started earlier and finished later is not published over a newer one,
// whatever order the publishes come in; the same run publishing again (a retried activity)
// gets its own snapshot back.
func TestSnapshotsOlderNeverReplaceNewer(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		newer, err := s.PublishSnapshot(ctx, store.NewSnapshot{WorkflowID: "incidents/refresh", AsOf: asOf(2), Summary: []byte(`{}`), Body: []byte(`"newer"`)})
		require.NoError(t, err)
		require.True(t, newer.Published)

		for _, at := range []int{1, 2} {
			older, err := s.PublishSnapshot(ctx, store.NewSnapshot{WorkflowID: "incidents/other", AsOf: asOf(at), Summary: []byte(`{}`), Body: []byte(`"older"`)})
			require.NoError(t, err)
			assert.False(t, older.Published, "as of %d", at)
			assert.Equal(t, newer.ID, older.ID, "names the newer snapshot")
		}
		again, err := s.PublishSnapshot(ctx, store.NewSnapshot{WorkflowID: "incidents/refresh", AsOf: asOf(2), Summary: []byte(`{}`), Body: []byte(`"newer"`)})
		require.NoError(t, err)
		assert.Equal(t, store.Published{ID: newer.ID, Published: true}, again)

		latest, _, err := s.LatestSnapshotID(ctx)
		require.NoError(t, err)
		assert.Equal(t, newer.ID, latest)
		snap, err := s.Snapshot(ctx, latest)
		require.NoError(t, err)
		assert.Equal(t, `"newer"`, string(snap.Body))
		assert.Equal(t, asOf(2), snap.AsOf)
	})
}

// Publishers racing from many processes: whatever order they commit in, the newest AsOf
// is what is served, and ids rise with AsOf.
func TestSnapshotsConcurrentPublishesKeepTheNewest(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		var wg sync.WaitGroup
		pubs := make([]store.Published, 12)
		errs := make([]error, len(pubs))
		for i := range pubs {
			wg.Go(func() {
				pubs[i], errs[i] = s.PublishSnapshot(ctx, store.NewSnapshot{
					WorkflowID: fmt.Sprint(i), AsOf: asOf(i), Summary: []byte(`{}`), Body: []byte(fmt.Sprint(i)),
				})
			})
		}
		wg.Wait()
		var last int64
		for i := range pubs {
			require.NoError(t, errs[i])
			if pubs[i].Published {
				assert.Greater(t, pubs[i].ID, last, "ids rise with as_of")
				last = pubs[i].ID
			}
		}
		latest, _, err := s.LatestSnapshotID(ctx)
		require.NoError(t, err)
		snap, err := s.Snapshot(ctx, latest)
		require.NoError(t, err)
		assert.Equal(t, "11", string(snap.Body), "the newest as of is served")
	})
}

// A snapshot stored with its gzip is read without its raw body: servers read a tenth of
// the bytes and serve the gzip as it is.
func TestSnapshotsGzipIsReadInsteadOfTheBody(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		body := []byte(strings.Repeat(`{"a":1}`, 1000))
		pub, err := s.PublishSnapshot(ctx, store.NewSnapshot{
			WorkflowID: "incidents/refresh", AsOf: asOf(1), Summary: []byte(`{}`), Body: body,
			Gzip: []byte("gz"), ETag: `"e"`,
		})
		require.NoError(t, err)
		snap, err := s.Snapshot(ctx, pub.ID)
		require.NoError(t, err)
		assert.Nil(t, snap.Body)
		assert.Equal(t, "gz", string(snap.Gzip))
		assert.Equal(t, `"e"`, snap.ETag)
		assert.Equal(t, len(body), snap.Bytes)
		assert.WithinDuration(t, time.Now(), snap.CreatedAt, time.Minute, "published on the database's clock")
	})
}
