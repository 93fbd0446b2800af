package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"relay/internal/store"
	"relay/internal/store/storetest"
)

// RELAY_DB_MAX_CONNS sizes the pool (and through MaxConns the worker's concurrency);
// unset, each dialect keeps its default.
func TestPoolSize(t *testing.T) {
	urls := map[string]func(testing.TB) string{"sqlite": storetest.SQLiteURL, "postgres": storetest.PostgresURL}
	defaults := map[string]int{"sqlite": store.DefaultSQLiteConns, "postgres": store.DefaultPostgresConns}
	for name, url := range urls {
		t.Run(name, func(t *testing.T) {
			for _, tt := range []struct{ set, want int }{{0, defaults[name]}, {3, 3}, {40, 40}} {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				s, err := store.OpenWith(ctx, url(t), store.Options{MaxConns: tt.set})
				cancel()
				require.NoError(t, err)
				assert.Equal(t, tt.want, s.MaxConns(), "MaxConns %d", tt.set)
				assert.Equal(t, tt.want, store.PoolSize(s), "the pool database/sql enforces")
				require.NoError(t, s.Close())
			}
		})
	}
}
