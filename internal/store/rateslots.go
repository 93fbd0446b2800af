package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// callSecondsKept is how much history of calls per second is kept (see CallsPerSecond).
const callSecondsKept = time.Hour

// Reservation is ReserveSlot's answer, in durations from the database's clock reading
// taken during the reservation: slots live on the database's clock, never on a caller's.
type Reservation struct {
	// OK says a slot was reserved.
	OK bool
	// Wait is, when OK, how long after the database read its clock the slot is (>= 0).
	Wait time.Duration
	// Ahead is, when not OK, how far the next free slot was ahead of the database's clock:
	// more than the horizon asked for, or exactly the horizon when it could not be read
	// (on PostgreSQL, a concurrent reservation the statement's snapshot does not show).
	Ahead time.Duration
	// Now is the database's clock reading (package ratelimit learns from it how far the
	// caller's clock is from the database's).
	Now time.Time
}

// ReserveSlot takes the next free slot of key, no earlier than the database's now, and
// moves the next free slot on by spacing, atomically, so concurrent callers in any process
// each get a different slot. It reserves nothing if the next free slot is more than
// horizon ahead of the database's now: no reservation is ever further ahead than that, so
// reservations abandoned by their callers cannot push the slots away from real time.
//
// The database's clock is read once, inside the statement; Wait and Ahead are measured
// from that reading. The caller cannot know when, between sending the statement and
// reading the answer, the reading was taken (package ratelimit bounds it by both).
//
// A slot is never earlier than lead past the database's now: a caller whose statements
// are slow asks for a slot it can still reach when the answer arrives.
//
// It is one round trip: one statement on PostgreSQL (its clock_timestamp()), and on SQLite,
// which lives on one host and so has one clock, one short transaction reading Go's clock
// once it holds the write lock.
func (s *Store) ReserveSlot(ctx context.Context, key string, spacing, horizon, lead time.Duration) (Reservation, error) {
	stepUS, horizonUS, leadUS := spacing.Microseconds(), horizon.Microseconds(), lead.Microseconds()
	var nowUS int64
	var next, seen sql.NullInt64
	var err error
	if s.dialect == Postgres {
		// ON CONFLICT's EXCLUDED.next_slot is now + spacing, so now is EXCLUDED.next_slot -
		// spacing. A refused update returns no row; the next free slot is then read from the
		// statement's snapshot, which may predate a concurrent reservation (see below).
		err = s.db.QueryRowContext(ctx, `
			WITH now AS (
			    SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS us
			), slot AS (
			    INSERT INTO rate_slots (key, next_slot) SELECT $1, us + $4::bigint + $2::bigint FROM now
			    ON CONFLICT (key) DO UPDATE
			        SET next_slot = GREATEST(rate_slots.next_slot, EXCLUDED.next_slot - $2::bigint) + $2::bigint
			        WHERE rate_slots.next_slot <= EXCLUDED.next_slot - $2::bigint - $4::bigint + $3::bigint
			    RETURNING next_slot
			)
			SELECT now.us, slot.next_slot, (SELECT next_slot FROM rate_slots WHERE key = $1)
			FROM now LEFT JOIN slot ON true`,
			key, stepUS, horizonUS, leadUS).Scan(&nowUS, &next, &seen)
	} else {
		nowUS, next, seen, err = s.reserveSlotSQLite(ctx, key, stepUS, horizonUS, leadUS)
	}
	if err != nil {
		return Reservation{}, fmt.Errorf("reserve rate slot %q: %w", key, err)
	}
	now := time.UnixMicro(nowUS)
	if next.Valid {
		return Reservation{OK: true, Wait: time.Duration(next.Int64-stepUS-nowUS) * time.Microsecond, Now: now}, nil
	}
	// Refused: the next free slot was more than horizon ahead when the row was locked. A
	// value read earlier (PostgreSQL's snapshot) can only be smaller, or missing when the
	// key's row was created meanwhile: horizon is then the best lower bound known.
	ahead := horizonUS
	if seen.Valid {
		ahead = max(ahead, seen.Int64-nowUS)
	}
	return Reservation{Ahead: time.Duration(ahead) * time.Microsecond, Now: now}, nil
}

func (s *Store) reserveSlotSQLite(ctx context.Context, key string, stepUS, horizonUS, leadUS int64) (nowUS int64, next, seen sql.NullInt64, err error) {
	tx, err := s.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: holds the write lock from here
	if err != nil {
		return 0, next, seen, err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	nowUS = time.Now().UnixMicro()
	err = tx.QueryRowContext(ctx,
		`INSERT INTO rate_slots (key, next_slot) VALUES ($1, $2 + $3)
		 ON CONFLICT (key) DO UPDATE SET next_slot = max(rate_slots.next_slot, $2) + $3
		     WHERE rate_slots.next_slot <= $2 + $4
		 RETURNING next_slot`,
		key, nowUS+leadUS, stepUS, horizonUS-leadUS).Scan(&next)
	if errors.Is(err, sql.ErrNoRows) { // refused: the next free slot is beyond the horizon
		err = tx.QueryRowContext(ctx, `SELECT next_slot FROM rate_slots WHERE key = $1`, key).Scan(&seen)
	}
	if err != nil {
		return 0, next, seen, err
	}
	return nowUS, next, seen, tx.Commit()
}

// CountCall counts one call of key in the database's current second, for CallsPerSecond.
// A caller counts a call once it has decided to make it, not when it reserves its slot: a
// reservation may be abandoned. The first call of a second also forgets the seconds
// older than the history kept (an hour).
func (s *Store) CountCall(ctx context.Context, key string) error {
	keep := int64(callSecondsKept / time.Second)
	var err error
	if s.dialect == Postgres {
		_, err = s.db.ExecContext(ctx, `
			WITH counted AS (
			    INSERT INTO rate_calls (key, second, calls)
			    VALUES ($1, floor(extract(epoch FROM clock_timestamp()))::bigint, 1)
			    ON CONFLICT (key, second) DO UPDATE SET calls = rate_calls.calls + 1
			    RETURNING second, calls
			)
			DELETE FROM rate_calls
			WHERE key = $1 AND second < (SELECT second - $2::bigint FROM counted WHERE calls = 1)`,
			key, keep)
	} else {
		err = s.countCallSQLite(ctx, key, keep)
	}
	if err != nil {
		return fmt.Errorf("count rate-limited call %q: %w", key, err)
	}
	return nil
}

func (s *Store) countCallSQLite(ctx context.Context, key string, keep int64) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	second := time.Now().Unix()
	var calls int64
	err = tx.QueryRowContext(ctx,
		`INSERT INTO rate_calls (key, second, calls) VALUES ($1, $2, 1)
		 ON CONFLICT (key, second) DO UPDATE SET calls = rate_calls.calls + 1
		 RETURNING calls`,
		key, second).Scan(&calls)
	if err != nil {
		return err
	}
	if calls == 1 { // at a second's first call, forget the seconds past the history kept
		if _, err := tx.ExecContext(ctx, `DELETE FROM rate_calls WHERE key = $1 AND second < $2`,
			key, second-keep); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// CallCount is how many calls of a key fall in one second.
type CallCount struct {
	Second time.Time // the second's start
	Calls  int
}

// CallsPerSecond counts the calls of key in each second overlapping [from, to) that has
// any, oldest first. Every call to a rate-limited upstream, retries included, is counted
// (CountCall) once its caller has decided to make it, so this is the upstream's calls per
// second across every worker sharing the database. Seconds are the database's clock's;
// those older than an hour before the newest call are gone.
func (s *Store) CallsPerSecond(ctx context.Context, key string, from, to time.Time) ([]CallCount, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT second, calls FROM rate_calls WHERE key = $1 AND second >= $2 AND second < $3 ORDER BY second`,
		key, from.Unix(), secondsCeil(to))
	if err != nil {
		return nil, fmt.Errorf("count rate-limited calls %q: %w", key, err)
	}
	defer rows.Close()
	var out []CallCount
	for rows.Next() {
		var second, calls int64
		if err := rows.Scan(&second, &calls); err != nil {
			return nil, fmt.Errorf("count rate-limited calls %q: %w", key, err)
		}
		out = append(out, CallCount{Second: time.Unix(second, 0), Calls: int(calls)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count rate-limited calls %q: %w", key, err)
	}
	return out, nil
}

// secondsCeil is t in Unix seconds, rounded up: the seconds before it are those that
// start before t.
func secondsCeil(t time.Time) int64 {
	if t.Equal(time.Unix(t.Unix(), 0)) {
		return t.Unix()
	}
	return t.Unix() + 1
}
