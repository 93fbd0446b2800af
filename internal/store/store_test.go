package store_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"relay/internal/store"
	"relay/internal/store/storetest"
)

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// rawDB opens the database behind a storetest URL directly, to look under the store.
func rawDB(t *testing.T, rawURL string) *sql.DB {
	t.Helper()
	var db *sql.DB
	var err error
	if path, ok := strings.CutPrefix(rawURL, "sqlite:"); ok {
		db, err = sql.Open("sqlite", "file:"+path)
	} else {
		db, err = sql.Open("pgx", rawURL)
	}
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

// latestMigration is the highest version among the migration files of dialect.
func latestMigration(t *testing.T, dialect store.Dialect) int64 {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join("migrations", string(dialect)))
	require.NoError(t, err)
	var latest int64
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		require.True(t, ok, "migration %s is not named NNNNN_what.sql", e.Name())
		v, err := strconv.ParseInt(num, 10, 64)
		require.NoError(t, err, "migration %s", e.Name())
		latest = max(latest, v)
	}
	require.NotZero(t, latest, "no migrations for %s", dialect)
	return latest
}

func TestMigrationsMatchAcrossDialects(t *testing.T) {
	names := func(d store.Dialect) []string {
		entries, err := os.ReadDir(filepath.Join("migrations", string(d)))
		require.NoError(t, err)
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		return out
	}
	assert.Equal(t, names(store.SQLite), names(store.Postgres), "every migration needs both dialects")
}

func TestMigrationsApplyAndReopenIsANoOp(t *testing.T) {
	storetest.EachURL(t, func(t *testing.T, rawURL string) {
		ctx := ctxT(t)
		s, err := store.Open(ctx, rawURL)
		require.NoError(t, err)
		dialect := s.Dialect()
		require.NoError(t, s.PutBlob(ctx, "kept", []byte("across reopen")))
		require.NoError(t, s.Close())

		db := rawDB(t, rawURL)
		applied := func() (rows int, latest int64) {
			t.Helper()
			require.NoError(t, db.QueryRowContext(ctx,
				`SELECT COUNT(*), MAX(version_id) FROM goose_db_version`).Scan(&rows, &latest))
			return rows, latest
		}
		rowsBefore, latest := applied()
		assert.Equal(t, latestMigration(t, dialect), latest, "not every migration was applied")

		for range 2 {
			s, err = store.Open(ctx, rawURL)
			require.NoError(t, err, "reopening a migrated database")
			got, err := s.GetBlob(ctx, "kept")
			require.NoError(t, err)
			assert.Equal(t, "across reopen", string(got))
			require.NoError(t, s.Close())
		}
		rowsAfter, latestAfter := applied()
		assert.Equal(t, rowsBefore, rowsAfter, "reopening applied migrations again")
		assert.Equal(t, latest, latestAfter)
	})
}

func TestConcurrentOpenOfOneDatabase(t *testing.T) {
	// Several processes (here: goroutines) may start against the same fresh database;
	// the migrations must run once and every opener must succeed.
	storetest.EachURL(t, func(t *testing.T, rawURL string) {
		ctx := ctxT(t)
		const n = 4
		errs := make([]error, n)
		stores := make([]*store.Store, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { stores[i], errs[i] = store.Open(ctx, rawURL) })
		}
		wg.Wait()
		for i := range n {
			if assert.NoError(t, errs[i], "opener %d", i) {
				assert.NoError(t, stores[i].PutBlob(ctx, fmt.Sprintf("opener/%d", i), []byte{byte(i)}))
				defer stores[i].Close()
			}
		}
		var rows int
		require.NoError(t, rawDB(t, rawURL).QueryRowContext(ctx,
			`SELECT COUNT(*) FROM goose_db_version`).Scan(&rows))
		assert.EqualValues(t, latestMigration(t, stores[0].Dialect())+1, rows, "version 0 plus each migration, once")
	})
}

func TestDialectAndPing(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		s := storetest.Open(t)
		assert.Equal(t, store.SQLite, s.Dialect())
		assert.NoError(t, s.Ping(ctxT(t)))
	})
	t.Run("postgres", func(t *testing.T) {
		s := storetest.OpenPostgres(t)
		assert.Equal(t, store.Postgres, s.Dialect())
		assert.NoError(t, s.Ping(ctxT(t)))
	})
}

func TestPingFailsOnceClosed(t *testing.T) {
	storetest.EachURL(t, func(t *testing.T, rawURL string) {
		s, err := store.Open(ctxT(t), rawURL)
		require.NoError(t, err)
		require.NoError(t, s.Ping(ctxT(t)))
		require.NoError(t, s.Close())
		err = s.Ping(ctxT(t))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "database does not answer")
	})
}

func TestBlobRoundTrip(t *testing.T) {
	allBytes := make([]byte, 256)
	for i := range allBytes {
		allBytes[i] = byte(i)
	}
	big := make([]byte, 3<<20)
	rng := rand.New(rand.NewChaCha8([32]byte{1, 2, 3}))
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	tests := []struct {
		name string
		key  string
		data []byte
	}{
		{"text", "incidents/2024-01-02T03:04:05Z", []byte(`{"4506":{"low":{"count":0}}}`)},
		{"empty", "empty", []byte{}},
		{"nil", "nil", nil},
		{"every byte value", "bytes/all", allBytes},
		{"NUL bytes only", "bytes/nul", []byte{0, 0, 0}},
		{"invalid UTF-8", "bytes/invalid-utf8", []byte{0xff, 0xfe, 0xc3, 0x28}},
		{"3 MiB", "big/3MiB", big},
		{"unicode key", "événement/日本/🙂", []byte("x")},
		{"key with quotes and wildcards", `it's "quoted" 100%_\`, []byte("y")},
		{"empty key", "", []byte("z")},
	}
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		for _, tt := range tests {
			require.NoError(t, s.PutBlob(ctx, tt.key, tt.data), tt.name)
		}
		for _, tt := range tests {
			got, err := s.GetBlob(ctx, tt.key)
			require.NoError(t, err, tt.name)
			assert.Len(t, got, len(tt.data), tt.name)
			assert.True(t, bytes.Equal(tt.data, got), "%s: data changed on the way", tt.name)
		}
	})
}

func TestPutBlobOverwrites(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		require.NoError(t, s.PutBlob(ctx, "k", []byte("first, the longer one")))
		require.NoError(t, s.PutBlob(ctx, "other", []byte("untouched")))
		require.NoError(t, s.PutBlob(ctx, "k", []byte("second")))
		got, err := s.GetBlob(ctx, "k")
		require.NoError(t, err)
		assert.Equal(t, "second", string(got))

		require.NoError(t, s.PutBlob(ctx, "k", nil))
		got, err = s.GetBlob(ctx, "k")
		require.NoError(t, err)
		assert.Empty(t, got)

		got, err = s.GetBlob(ctx, "other")
		require.NoError(t, err)
		assert.Equal(t, "untouched", string(got))

		// Overwriting does not add rows: one delete of everything under "k" removes one.
		n, err := s.DeleteBlobs(ctx, "k")
		require.NoError(t, err)
		assert.EqualValues(t, 1, n)
	})
}

func TestGetBlobMissing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		_, err := s.GetBlob(ctx, "nope")
		require.Error(t, err)
		assert.ErrorIs(t, err, store.ErrNotFound)
		assert.Contains(t, err.Error(), `"nope"`, "the error names the key")

		// A near miss is still a miss.
		require.NoError(t, s.PutBlob(ctx, "nope/1", []byte("x")))
		_, err = s.GetBlob(ctx, "nope")
		assert.ErrorIs(t, err, store.ErrNotFound)
		_, err = s.GetBlob(ctx, "NOPE/1")
		assert.ErrorIs(t, err, store.ErrNotFound, "keys are case-sensitive")
	})
}

func TestDeleteBlobsByPrefix(t *testing.T) {
	universe := []string{
		"a/1", "a/2", "a/b/3", "ab", "A/4", "b/a/5",
		"50%_off/1", "50%_off/2", "50abcXoff/3", "50%Xoff/4",
		"x_y/1", "xzy/2",
		"%", "_", "%%", "__",
		`back\slash/1`, `backslash/2`,
		"日本/1", "日本語/2",
	}
	steps := []struct {
		prefix  string
		deleted []string
	}{
		{"nomatch/", nil},
		{"a/1/longer", nil},
		{"a/", []string{"a/1", "a/2", "a/b/3"}},
		{"a/", nil},
		{"50%_off/", []string{"50%_off/1", "50%_off/2"}}, // LIKE would also take 50abcXoff/3 and 50%Xoff/4
		{"x_y", []string{"x_y/1"}},                       // LIKE would also take xzy/2
		{"%", []string{"%", "%%"}},                       // LIKE would take everything
		{"__", []string{"__"}},                           // LIKE would take every key of two or more characters
		{"_", []string{"_"}},
		{`back\`, []string{`back\slash/1`}},
		{"日本/", []string{"日本/1"}},
		{"A/4", []string{"A/4"}},
		{"ab", []string{"ab"}},
	}
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		for _, k := range universe {
			require.NoError(t, s.PutBlob(ctx, k, []byte("v:"+k)))
		}
		remaining := slices.Clone(universe)
		for _, step := range steps {
			n, err := s.DeleteBlobs(ctx, step.prefix)
			require.NoError(t, err, step.prefix)
			assert.EqualValues(t, len(step.deleted), n, "DeleteBlobs(%q) count", step.prefix)
			remaining = slices.DeleteFunc(remaining, func(k string) bool { return slices.Contains(step.deleted, k) })
			for _, k := range universe {
				got, err := s.GetBlob(ctx, k)
				if slices.Contains(remaining, k) {
					if assert.NoError(t, err, "after DeleteBlobs(%q), %q should remain", step.prefix, k) {
						assert.Equal(t, "v:"+k, string(got))
					}
				} else {
					assert.ErrorIs(t, err, store.ErrNotFound, "after DeleteBlobs(%q), %q should be gone", step.prefix, k)
				}
			}
		}
		assert.ElementsMatch(t, []string{"b/a/5", "50abcXoff/3", "50%Xoff/4", "xzy/2", `backslash/2`, "日本語/2"}, remaining)

		// An empty prefix would match every key: refused, nothing deleted.
		n, err := s.DeleteBlobs(ctx, "")
		assert.Error(t, err)
		assert.Zero(t, n)
		_, err = s.GetBlob(ctx, "b/a/5")
		assert.NoError(t, err)
	})
}

func TestConcurrentPutBlob(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		const n = 20
		payload := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 64<<10) }
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				if err := s.PutBlob(ctx, fmt.Sprintf("concurrent/%02d", i), payload(i)); err != nil {
					errs[i] = err
					return
				}
				if err := s.PutBlob(ctx, "concurrent-shared", payload(i)); err != nil {
					errs[i] = err
					return
				}
				if _, err := s.GetBlob(ctx, fmt.Sprintf("concurrent/%02d", i)); err != nil {
					errs[i] = err
				}
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			assert.NoError(t, err, "writer %d", i)
		}
		for i := range n {
			got, err := s.GetBlob(ctx, fmt.Sprintf("concurrent/%02d", i))
			require.NoError(t, err)
			assert.True(t, bytes.Equal(payload(i), got), "blob %d", i)
		}
		shared, err := s.GetBlob(ctx, "concurrent-shared")
		require.NoError(t, err)
		require.Len(t, shared, 64<<10)
		assert.Equal(t, payload(int(shared[0])), shared, "the shared blob is one writer's whole payload")
		deleted, err := s.DeleteBlobs(ctx, "concurrent/")
		require.NoError(t, err)
		assert.EqualValues(t, n, deleted)
	})
}

func TestCancelledContext(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		assert.Error(t, s.PutBlob(ctx, "k", []byte("v")))
		_, err := s.GetBlob(ctx, "k")
		assert.Error(t, err)
		assert.NotErrorIs(t, err, store.ErrNotFound, "a failed read is not a miss")
		_, err = s.DeleteBlobs(ctx, "k")
		assert.Error(t, err)
		assert.Error(t, s.Ping(ctx))
	})
}

func TestOpenRejectsBadURLs(t *testing.T) {
	tests := []struct {
		name, url, want string
	}{
		{"empty", "", "want postgres://… or sqlite:PATH"},
		{"mysql", "mysql://relay:secret@db.example.com:3306/relay", "want postgres://… or sqlite:PATH"},
		{"bare path", "/var/lib/relay/relay.db", "want postgres://… or sqlite:PATH"},
		{"upper-case scheme", "POSTGRES://relay:secret@db.example.com/relay", "want postgres://… or sqlite:PATH"},
		{"leading space", " postgres://relay:secret@db.example.com/relay", "want postgres://… or sqlite:PATH"},
		{"bad escape", "postgres://relay:secret@db.example.com:5432/relay%zz", "not a valid postgres:// URL"},
		{"bad host", "postgres://relay:secret@[::1/relay", "not a valid postgres:// URL"},
		{"bad port", "postgresql://relay:secret@db.example.com:port/relay", "not a valid postgres:// URL"},
		{"bad option", "postgres://relay:secret@127.0.0.1:5432/relay?sslmode=bogus", "sslmode"},
		{"sqlite without path", "sqlite:", "sqlite: needs a file path"},
		{"sqlite with only options", "sqlite:?cache=shared", "sqlite: needs a file path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			s, err := store.Open(ctx, tt.url)
			if s != nil {
				s.Close()
			}
			require.Error(t, err)
			assert.Nil(t, s)
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, err.Error(), "secret", "the error leaks the password")
			if len(tt.url) > len("sqlite:?") {
				assert.NotContains(t, err.Error(), tt.url, "the error repeats the URL")
			}
		})
	}
}

func TestOpenPostgresThatDoesNotAnswer(t *testing.T) {
	tests := []struct {
		name, url string
	}{
		{"closed port", "postgres://relay:secret@127.0.0.1:1/relay?sslmode=disable"},
		{"closed port, TLS preferred", "postgres://relay:secret@127.0.0.1:1/relay"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			start := time.Now()
			s, err := store.Open(ctx, tt.url)
			took := time.Since(start)
			if s != nil {
				s.Close()
			}
			require.Error(t, err)
			assert.Less(t, took, 5*time.Second)
			assert.Contains(t, err.Error(), "postgres database does not answer")
			assert.Contains(t, err.Error(), "127.0.0.1")
			assert.NotContains(t, err.Error(), "secret", "the error leaks the password")
		})
	}
}

func TestOpenGivesUpWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := store.Open(ctx, storetest.SQLiteURL(t))
	require.Error(t, err)
	assert.ErrorIs(t, err, context.Canceled)
}

func TestDefaultURL(t *testing.T) {
	assert.Equal(t, "sqlite:/var/lib/relay/relay.db", store.DefaultURL("/var/lib/relay"))
	assert.Equal(t, "sqlite:.relay/relay.db", store.DefaultURL("./.relay"))
	assert.Equal(t, "sqlite:relay.db", store.DefaultURL(""))

	dir := filepath.Join(t.TempDir(), "data")
	s := storetest.OpenURL(t, store.DefaultURL(dir))
	assert.Equal(t, store.SQLite, s.Dialect())
	assert.FileExists(t, filepath.Join(dir, "relay.db"))
}

func TestOpenSQLiteCreatesItsDirectory(t *testing.T) {
	tests := []struct {
		name string
		dir  string
	}{
		{"nested", filepath.Join("not", "there", "yet")},
		{"odd characters", filepath.Join("a dir", "with #hash, 50%41 & [brackets]")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, tt.dir)
			path := filepath.Join(dir, "relay.db")
			require.NoDirExists(t, dir)

			ctx := ctxT(t)
			s := storetest.OpenURL(t, "sqlite:"+path)
			require.NoError(t, s.PutBlob(ctx, "k", []byte("v")))
			if !assert.FileExists(t, path, "the database is not where the URL says") {
				_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
					t.Logf("found %q", p)
					return err
				})
			}
			assert.FileExists(t, path+"-wal", "the pragmas were not applied (no WAL)")
			entries, err := os.ReadDir(root)
			require.NoError(t, err)
			assert.Len(t, entries, 1, "stray files beside the data directory")

			// The same file under the other spellings of the URL.
			for _, u := range []string{"file:" + path, "sqlite://" + path} {
				other := storetest.OpenURL(t, u)
				got, err := other.GetBlob(ctx, "k")
				require.NoError(t, err, u)
				assert.Equal(t, "v", string(got), u)
			}
		})
	}
}

func TestOpenSQLiteReportsAnUnusablePath(t *testing.T) {
	root := t.TempDir()
	blocker := filepath.Join(root, "file")
	require.NoError(t, os.WriteFile(blocker, nil, 0o600))
	_, err := store.Open(ctxT(t), "sqlite:"+filepath.Join(blocker, "sub", "relay.db"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "create directory")
}
