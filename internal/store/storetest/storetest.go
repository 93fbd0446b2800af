// Package storetest opens throwaway stores for tests: SQLite in a temporary directory
// always, PostgreSQL in a fresh schema when RELAY_TEST_POSTGRES_URL is set.
//
//	RELAY_TEST_POSTGRES_URL='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' go test ./...
//
// In CI (the CI variable set) a missing RELAY_TEST_POSTGRES_URL fails the PostgreSQL
// tests instead of skipping them, so that they cannot silently stop running.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"relay/internal/store"
)

// PostgresURLEnv names the variable holding the PostgreSQL server the tests may use.
const PostgresURLEnv = "RELAY_TEST_POSTGRES_URL"

// Open is a migrated SQLite store in tb.TempDir, closed when the test ends.
func Open(tb testing.TB) *store.Store {
	tb.Helper()
	return OpenURL(tb, SQLiteURL(tb))
}

// OpenPostgres is a migrated store in a fresh PostgreSQL schema, dropped when the test
// ends. It skips (or, in CI, fails) when RELAY_TEST_POSTGRES_URL is unset.
func OpenPostgres(tb testing.TB) *store.Store {
	tb.Helper()
	return OpenURL(tb, PostgresURL(tb))
}

// OpenURL opens rawURL and closes the store when the test ends.
func OpenURL(tb testing.TB, rawURL string) *store.Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, rawURL)
	if err != nil {
		tb.Fatalf("storetest: open store: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("storetest: close store: %v", err)
		}
	})
	return s
}

// SQLiteURL is the URL of a new, empty SQLite database in tb.TempDir.
func SQLiteURL(tb testing.TB) string {
	tb.Helper()
	return "sqlite:" + filepath.Join(tb.TempDir(), "relay.db")
}

// PostgresURL creates a fresh schema on the server RELAY_TEST_POSTGRES_URL names and
// returns a URL whose connections use it (search_path), so that tests neither see
// nor disturb one another. The schema is dropped when the test ends.
func PostgresURL(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv(PostgresURLEnv)
	if base == "" {
		if os.Getenv("CI") != "" {
			tb.Fatalf("%s must be set in CI", PostgresURLEnv)
		}
		tb.Skipf("PostgreSQL tests are off: set %s (see README)", PostgresURLEnv)
	}
	u, err := url.Parse(base)
	if err != nil {
		// Not the error itself: it would repeat the URL, password and all.
		tb.Fatalf("%s is not a valid URL", PostgresURLEnv)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		tb.Fatalf("storetest: %s: %v", PostgresURLEnv, err)
	}
	if err := admin.PingContext(ctx); err != nil {
		admin.Close()
		tb.Fatalf("storetest: PostgreSQL at %s does not answer: %v", PostgresURLEnv, err)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	schema := "relay_test_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		tb.Fatalf("storetest: create schema %s: %v", schema, err)
	}
	// Registered before the caller's Cleanups, so it runs after them: stores are closed
	// by the time the schema goes.
	tb.Cleanup(func() {
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Errorf("storetest: drop schema %s: %v", schema, err)
		}
	})

	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Each runs fn as the subtests "sqlite" and "postgres", each with a fresh store.
func Each(t *testing.T, fn func(t *testing.T, s *store.Store)) {
	t.Helper()
	EachURL(t, func(t *testing.T, rawURL string) {
		fn(t, OpenURL(t, rawURL))
	})
}

// EachURL runs fn as the subtests "sqlite" and "postgres", each with the URL of a fresh,
// empty database, for tests that open (or reopen) the store themselves.
func EachURL(t *testing.T, fn func(t *testing.T, rawURL string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		fn(t, SQLiteURL(t))
	})
	t.Run("postgres", func(t *testing.T) {
		fn(t, PostgresURL(t))
	})
}
