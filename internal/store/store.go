// Package store is relay's application database: SQLite for one machine (pure Go, the
// same driver the embedded Temporal server uses) or PostgreSQL (pgx) to scale past one,
// chosen by DATABASE_URL, with migrations embedded in the binary and applied at open.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
	"github.com/pressly/goose/v3/lock"
	"modernc.org/sqlite" // registers the "sqlite" database/sql driver; its Error carries the result code
)

// Dialect names the database behind a Store.
type Dialect string

// The dialects relay runs on.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

//go:embed migrations
var migrations embed.FS

// ErrNotFound is returned when a key has no row.
var ErrNotFound = errors.New("not found")

// Store is a migrated database handle, safe for concurrent use.
type Store struct {
	db       *sql.DB
	dialect  Dialect
	maxConns int
}

// The connection pool's default size per process: PostgreSQL's is what a server or worker
// uses at full load; on SQLite, WAL lets readers run beside the one writer, so a small
// pool is plenty.
const (
	DefaultPostgresConns = 16
	DefaultSQLiteConns   = 4
)

// Options tune Open.
type Options struct {
	// MaxConns caps the connection pool (RELAY_DB_MAX_CONNS); 0 is the dialect's default.
	// Each process holds up to this many connections of PostgreSQL's max_connections.
	MaxConns int
}

// Open connects to rawURL (postgres://…, or sqlite:/file:PATH) and applies pending migrations.
// Several processes may open the same PostgreSQL database at once: migrations take a lock.
func Open(ctx context.Context, rawURL string) (*Store, error) {
	return OpenWith(ctx, rawURL, Options{})
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	dialect, dsn, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	var db *sql.DB
	maxConns := opts.MaxConns
	switch dialect {
	case Postgres:
		if maxConns <= 0 {
			maxConns = DefaultPostgresConns
		}
		db, err = sql.Open("pgx", dsn)
		if err == nil {
			db.SetMaxOpenConns(maxConns)
			db.SetMaxIdleConns(min(4, maxConns))
			db.SetConnMaxIdleTime(5 * time.Minute)
		}
	case SQLite:
		if maxConns <= 0 {
			maxConns = DefaultSQLiteConns
		}
		db, err = sql.Open("sqlite", dsn)
		if err == nil {
			db.SetMaxOpenConns(maxConns)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", dialect, err)
	}
	s := &Store{db: db, dialect: dialect, maxConns: maxConns}
	if err := s.firstPing(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// DefaultURL is the SQLite database kept in dataDir when DATABASE_URL is empty.
func DefaultURL(dataDir string) string {
	return "sqlite:" + filepath.Join(dataDir, "relay.db")
}

// MaxConns is the size of the connection pool: at most this many statements run at once,
// and a caller beyond them waits for a connection.
func (s *Store) MaxConns() int { return s.maxConns }

// Dialect says which database this is.
func (s *Store) Dialect() Dialect { return s.dialect }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("%s database does not answer: %w", s.dialect, err)
	}
	return nil
}

// firstPing is Ping, patient with a brand-new SQLite file that other processes open at
// the same moment: a connection switching it to WAL needs an exclusive lock, and SQLite
// answers busy at once, without waiting, where waiting could deadlock. Once one of them
// has switched the file (WAL mode persists), the others' retries go through.
// A file held locked for longer (busy_timeout has then run out) is not retried.
func (s *Store) firstPing(ctx context.Context) error {
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := s.Ping(ctx)
		var e *sqlite.Error
		if err == nil || s.dialect != SQLite || attempt == 5 || time.Since(start) > time.Second ||
			!errors.As(err, &e) || e.Code()&0xff != 5 { // 5: SQLITE_BUSY
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt) * 50 * time.Millisecond):
		}
	}
}

// Close closes the connections.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) migrate(ctx context.Context) error {
	sub, err := fs.Sub(migrations, "migrations/"+string(s.dialect))
	if err != nil {
		return err
	}
	var opts []goose.ProviderOption
	gooseDialect := goose.DialectSQLite3
	if s.dialect == Postgres {
		gooseDialect = goose.DialectPostgres
		// Retry the lock every second (the minimum; the default is 5 s), for up to 5 minutes.
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
		if err != nil {
			return err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	provider, err := goose.NewProvider(gooseDialect, s.db, sub, opts...)
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	if s.dialect == SQLite {
		if err := s.createSQLiteVersionTable(ctx); err != nil {
			return fmt.Errorf("migrate %s database: %w", s.dialect, err)
		}
	}
	// PostgreSQL serializes migrating processes with an advisory lock. SQLite has no such
	// lock, so two processes opening one file (relay server and relay worker on one
	// machine) may race: the loser's migration fails in its own transaction, rolls back,
	// and on a retry finds the work done.
	for attempt := 1; ; attempt++ {
		_, err = provider.Up(ctx)
		if err == nil || s.dialect != SQLite || attempt == 5 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("migrate %s database: %w", s.dialect, err)
	}
	return nil
}

// createSQLiteVersionTable creates goose's version table as goose would, but in one
// immediate transaction: of several processes opening a new file at once, one creates it
// and the others, queued on the write lock, find it there. Left to goose, each would check,
// all would try to create it, and every loser would sit out goose's one-second retry.
func (s *Store) createSQLiteVersionTable(ctx context.Context) error {
	versions, err := database.NewStore(database.DialectSQLite3, goose.DefaultTablename)
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE (_txlock): waits for another writer
	if err != nil {
		return fmt.Errorf("create version table: %w", err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?`,
		versions.Tablename()).Scan(&n); err != nil {
		return fmt.Errorf("look for the version table: %w", err)
	}
	if n > 0 {
		return nil
	}
	if err := versions.CreateVersionTable(ctx, tx); err != nil {
		return err
	}
	if err := versions.Insert(ctx, tx, database.InsertRequest{Version: 0}); err != nil {
		return err
	}
	return tx.Commit()
}

// parseURL turns DATABASE_URL into a driver and its DSN. Errors never repeat the URL:
// it may hold a password.
func parseURL(raw string) (Dialect, string, error) {
	switch {
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		if _, err := url.Parse(raw); err != nil {
			return "", "", errors.New("DATABASE_URL: not a valid postgres:// URL")
		}
		return Postgres, raw, nil
	case strings.HasPrefix(raw, "sqlite:"), strings.HasPrefix(raw, "file:"):
		path := strings.TrimPrefix(strings.TrimPrefix(raw, "sqlite:"), "file:")
		path = strings.TrimPrefix(path, "//")
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		if path == "" {
			return "", "", errors.New("DATABASE_URL: sqlite: needs a file path")
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return "", "", fmt.Errorf("create directory for %s: %w", path, err)
		}
		// busy_timeout waits out another writer; immediate transactions take the write
		// lock up front, so two writers queue instead of failing mid-transaction.
		q := url.Values{}
		for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(NORMAL)", "foreign_keys(ON)"} {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", "immediate")
		// The DSN is an SQLite URI, where '#' would end the path and %XX be decoded:
		// escape them so that the file is the one the path names.
		uriPath := strings.NewReplacer("%", "%25", "#", "%23", "?", "%3F").Replace(path)
		return SQLite, "file:" + uriPath + "?" + q.Encode(), nil
	default:
		return "", "", errors.New("DATABASE_URL: want postgres://… or sqlite:PATH")
	}
}
