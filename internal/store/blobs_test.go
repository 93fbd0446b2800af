package store_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"relay/internal/store"
	"relay/internal/store/storetest"
)

func TestPrefixEnd(t *testing.T) {
	for _, tt := range []struct {
		prefix, end string
		ok          bool
	}{
		{"a", "b", true},
		{"incidents/run-1/", "incidents/run-10", true},
		{"az", "a{", true},
		{"a\x7f", "a\u0080", true}, // DEL's successor is U+0080, two bytes in UTF-8
		{"日本/", "日本0", true},
		{"日本", "日札", true},
		{"a\uD7FF", "a\uE000", true}, // past the surrogates
		{"a\U0010FFFF", "b", true},   // the largest character has no successor: the one before moves
		{"\U0010FFFF\U0010FFFF", "", false},
		{"", "", false},
		{"a\xfe", "a\xff", true}, // not UTF-8: by byte
		{"a\xff", "b", true},
	} {
		end, ok := store.PrefixEnd(tt.prefix)
		assert.Equal(t, tt.ok, ok, "%q", tt.prefix)
		assert.Equal(t, tt.end, end, "PrefixEnd(%q)", tt.prefix)
		if ok && utf8.ValidString(tt.prefix) {
			assert.True(t, utf8.ValidString(end), "%q", end)
		}
		if ok {
			assert.Greater(t, end, tt.prefix)
			for _, tail := range []string{"", "\x00", "z", "\U0010FFFF", "\xff\xff"} {
				assert.Less(t, tt.prefix+tail, end, "%q+%q", tt.prefix, tail)
			}
		}
	}
}

// A prefix delete is a range of the key index, on both databases: no table scan.
func TestDeleteBlobsUsesTheKeyIndex(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		for i := range 200 {
			require.NoError(t, s.PutBlob(ctx, fmt.Sprintf("incidents/run-%d/denial", i), []byte("x")))
		}
		plan, err := store.ExplainPrefixDelete(ctx, s, "incidents/run-7/")
		require.NoError(t, err)
		t.Logf("plan:\n%s", plan)
		switch s.Dialect() {
		case store.SQLite:
			assert.Contains(t, plan, "USING INDEX sqlite_autoindex_blobs_1 (key>? AND key<?)")
		case store.Postgres:
			assert.Contains(t, plan, "Index Cond: ((key >= ")
			assert.NotContains(t, plan, "Seq Scan")
		}
		n, err := s.DeleteBlobs(ctx, "incidents/run-7/")
		require.NoError(t, err)
		assert.EqualValues(t, 1, n, "run-7 only, not run-70..79")
	})
}

// Prefix deletes compare bytes, whatever the database's collation: upper and lower case,
// punctuation and accents are different keys.
func TestDeleteBlobsComparesBytes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		keys := []string{"run/a", "run/B", "run/é", "run-x", "run0", "Run/a", "rún/a", "run/\U0010FFFF"}
		for _, k := range keys {
			require.NoError(t, s.PutBlob(ctx, k, []byte(k)))
		}
		n, err := s.DeleteBlobs(ctx, "run/")
		require.NoError(t, err)
		assert.EqualValues(t, 4, n)
		for _, k := range keys {
			_, err := s.GetBlob(ctx, k)
			if strings.HasPrefix(k, "run/") {
				assert.ErrorIs(t, err, store.ErrNotFound, k)
			} else {
				assert.NoError(t, err, k)
			}
		}
	})
}

func TestDeleteBlobsOlderThan(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		require.NoError(t, s.PutBlob(ctx, "old/1", []byte("x")))
		require.NoError(t, s.PutBlob(ctx, "new/1", []byte("y")))
		require.NoError(t, store.AgeBlob(ctx, s, "old/1", 25*time.Hour))

		_, err := s.DeleteBlobsOlderThan(ctx, 0)
		assert.Error(t, err, "an age of 0 would take what runs are staging now")
		n, err := s.DeleteBlobsOlderThan(ctx, 24*time.Hour)
		require.NoError(t, err)
		assert.EqualValues(t, 1, n)
		_, err = s.GetBlob(ctx, "old/1")
		assert.ErrorIs(t, err, store.ErrNotFound)
		got, err := s.GetBlob(ctx, "new/1")
		require.NoError(t, err)
		assert.Equal(t, "y", string(got))
	})
}
