package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// LeasedEvent is a pending event that one dispatcher holds for a while.
type LeasedEvent struct {
	TaskID string
	IP     string
	// Dispatches counts the leases the event has had, this one included: above 1, an
	// earlier dispatch may still be under way.
	Dispatches int
}

// LeaseEvents takes up to limit pending events whose lease has run out, oldest first, and
// holds them until now+ttl. (The SQL says 'pending' literally so that the partial index
// events_pending serves it.) Two dispatchers never hold one event at once: PostgreSQL skips
// the rows another dispatcher is taking, SQLite has a single writer.
func (s *Store) LeaseEvents(ctx context.Context, now time.Time, ttl time.Duration, limit int) ([]LeasedEvent, error) {
	skipLocked := ""
	if s.dialect == Postgres {
		skipLocked = " FOR UPDATE SKIP LOCKED"
	}
	rows, err := s.db.QueryContext(ctx,
		`UPDATE events SET lease_until = $1, dispatches = dispatches + 1
		 WHERE task_id IN (
		     SELECT task_id FROM events
		     WHERE state = 'pending' AND (lease_until IS NULL OR lease_until <= $2)
		     ORDER BY received_at LIMIT $3`+skipLocked+`)
		 RETURNING task_id, ip, dispatches`,
		now.Add(ttl).UnixMilli(), now.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("lease events: %w", err)
	}
	defer rows.Close()
	var out []LeasedEvent
	for rows.Next() {
		var e LeasedEvent
		if err := rows.Scan(&e.TaskID, &e.IP, &e.Dispatches); err != nil {
			return nil, fmt.Errorf("lease events: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lease events: %w", err)
	}
	return out, nil
}

// ExtendLeases holds the events until `until`: a dispatch that failed is tried again then,
// and a lookup still under way is left to finish.
func (s *Store) ExtendLeases(ctx context.Context, taskIDs []string, until time.Time) error {
	if len(taskIDs) == 0 {
		return nil
	}
	in, args := inList(2, taskIDs)
	_, err := s.db.ExecContext(ctx, `UPDATE events SET lease_until = $1 WHERE task_id IN (`+in+`)`,
		append([]any{until.UnixMilli()}, args...)...)
	if err != nil {
		return fmt.Errorf("extend event leases: %w", err)
	}
	return nil
}

// LocateFromCache settles those of the pending events whose IP has a fresh cache entry at
// now, in one statement, and returns their task ids.
func (s *Store) LocateFromCache(ctx context.Context, taskIDs []string, now time.Time) ([]string, error) {
	if len(taskIDs) == 0 {
		return nil, nil
	}
	in, args := inList(5, taskIDs)
	rows, err := s.db.QueryContext(ctx,
		`UPDATE events SET
		     state = CASE WHEN c.location IS NULL THEN $1 ELSE $2 END,
		     location = c.location, country = c.country, city = c.city, lease_until = NULL
		 FROM geo_cache c
		 WHERE c.ip = events.ip AND c.expires_at > $3 AND events.state = $4 AND events.task_id IN (`+in+`)
		 RETURNING events.task_id`,
		append([]any{EventUnlocatable, EventLocated, now.UnixMilli(), EventPending}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("locate events from the cache: %w", err)
	}
	defer rows.Close()
	var settled []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("locate events from the cache: %w", err)
		}
		settled = append(settled, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("locate events from the cache: %w", err)
	}
	return settled, nil
}

// GeoOutcome is what is known of an IP: its location (JSON), ISO country code and city,
// or a nil Location when it cannot be placed.
type GeoOutcome struct {
	Location []byte
	Country  string
	City     string
}

// SettleIP records o on every pending event from ip and, unless cacheUntil is zero, keeps
// it for ip until then, in one transaction: an event is either settled here or, accepted
// later, finds the cache entry. It returns how many events it settled.
func (s *Store) SettleIP(ctx context.Context, ip string, o GeoOutcome, cacheUntil time.Time) (int, error) {
	state := EventLocated
	if o.Location == nil {
		state = EventUnlocatable
	}
	loc, country, city := o.columns()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("settle events of %s: %w", ip, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if !cacheUntil.IsZero() {
		if err := cacheLocation(ctx, tx, ip, loc, country, city, cacheUntil); err != nil {
			return 0, err
		}
	}
	res, err := tx.ExecContext(ctx,
		`UPDATE events SET state = $1, location = $2, country = $3, city = $4, lease_until = NULL
		 WHERE ip = $5 AND state = 'pending'`,
		state, loc, country, city, ip)
	if err != nil {
		return 0, fmt.Errorf("settle events of %s: %w", ip, err)
	}
	n, _ := res.RowsAffected()
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("settle events of %s: %w", ip, err)
	}
	return int(n), nil
}

// CacheLocation keeps o for ip until `until`, without settling any event.
func (s *Store) CacheLocation(ctx context.Context, ip string, o GeoOutcome, until time.Time) error {
	loc, country, city := o.columns()
	return cacheLocation(ctx, s.db, ip, loc, country, city, until)
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func cacheLocation(ctx context.Context, db execer, ip string, loc, country, city any, until time.Time) error {
	_, err := db.ExecContext(ctx,
		`INSERT INTO geo_cache (ip, location, country, city, expires_at) VALUES ($1, $2, $3, $4, $5)
		 ON CONFLICT (ip) DO UPDATE SET location = excluded.location, country = excluded.country,
		     city = excluded.city, expires_at = excluded.expires_at`,
		ip, loc, country, city, until.UnixMilli())
	if err != nil {
		return fmt.Errorf("cache location of %s: %w", ip, err)
	}
	return nil
}

// columns are o as the events and geo_cache tables hold it (NULLs for an IP that cannot
// be placed).
func (o GeoOutcome) columns() (loc, country, city any) {
	if o.Location == nil {
		return nil, nil, nil
	}
	loc, country, city = string(o.Location), strings.ToUpper(o.Country), o.City
	if o.City == "" {
		city = nil
	}
	return loc, country, city
}

// CachedLocation returns the location cached for ip if still fresh at now; found with a
// nil location means the IP is known to be unplaceable.
func (s *Store) CachedLocation(ctx context.Context, ip string, now time.Time) (location []byte, found bool, err error) {
	var loc sql.NullString
	err = s.db.QueryRowContext(ctx,
		`SELECT location FROM geo_cache WHERE ip = $1 AND expires_at > $2`, ip, now.UnixMilli()).Scan(&loc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("geo cache %s: %w", ip, err)
	}
	if !loc.Valid {
		return nil, true, nil
	}
	return []byte(loc.String), true, nil
}

// PruneGeoCache deletes the cache entries that expired before `before`.
func (s *Store) PruneGeoCache(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM geo_cache WHERE expires_at < $1`, before.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("prune the geo cache: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// Pending is what waits to be located: how many events, and the oldest one's arrival
// and IP (zero when none waits).
type Pending struct {
	Events   int
	Oldest   time.Time
	OldestIP string
}

// PendingEvents says what waits to be located.
func (s *Store) PendingEvents(ctx context.Context) (Pending, error) {
	var p Pending
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE state = 'pending'`).Scan(&p.Events); err != nil {
		return Pending{}, fmt.Errorf("count pending events: %w", err)
	}
	if p.Events == 0 {
		return p, nil
	}
	var ms int64
	err := s.db.QueryRowContext(ctx,
		`SELECT received_at, ip FROM events WHERE state = 'pending' ORDER BY received_at LIMIT 1`).Scan(&ms, &p.OldestIP)
	if errors.Is(err, sql.ErrNoRows) { // located in between
		return Pending{}, nil
	}
	if err != nil {
		return Pending{}, fmt.Errorf("oldest pending event: %w", err)
	}
	p.Oldest = time.UnixMilli(ms)
	return p, nil
}

// inList is "$first, $first+1, ..." for values, and values as arguments.
func inList(first int, values []string) (string, []any) {
	marks := make([]string, len(values))
	args := make([]any, len(values))
	for i, v := range values {
		marks[i] = "$" + strconv.Itoa(first+i)
		args[i] = v
	}
	return strings.Join(marks, ","), args
}

// UndispatchedEvents counts the pending events no dispatcher has leased yet.
func (s *Store) UndispatchedEvents(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE state = 'pending' AND dispatches = 0`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count undispatched events: %w", err)
	}
	return n, nil
}
