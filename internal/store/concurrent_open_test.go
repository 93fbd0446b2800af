package store_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"relay/internal/store"
)

// Several processes (relay server and relay worker) may open one SQLite file at once:
// each must migrate or find it migrated, never fail on the other's half-done work.
func TestConcurrentOpensOfOneSQLiteFileAllMigrate(t *testing.T) {
	for round := 0; round < 5; round++ {
		url := "sqlite:" + filepath.Join(t.TempDir(), "relay.db")
		var wg sync.WaitGroup
		errs := make([]error, 6)
		for i := range errs {
			wg.Go(func() {
				s, err := store.Open(context.Background(), url)
				if err == nil {
					err = s.PutBlob(context.Background(), "k", []byte("v"))
					s.Close()
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for i, err := range errs {
			require.NoError(t, err, "round %d, opener %d", round, i)
		}
	}
}
