package store

import (
	"context"
	"fmt"
	"time"
)

// slotSecondsKept is how much history of slots per second is kept (see SlotsPerSecond).
const slotSecondsKept = time.Hour

// ReserveSlot takes the next free slot of key, no earlier than now, and moves the next
// free slot on by spacing, atomically, so concurrent callers in any process each get a
// different slot. It also counts the slot in its second (SlotsPerSecond). The caller may
// call at once, so this is one round trip: one statement on PostgreSQL, and on SQLite, in
// process, one short transaction.
func (s *Store) ReserveSlot(ctx context.Context, key string, now time.Time, spacing time.Duration) (time.Time, error) {
	nowUS, stepUS := now.UnixMicro(), spacing.Microseconds()
	keep := int64(slotSecondsKept / time.Second)
	var next int64
	var err error
	if s.dialect == Postgres {
		err = s.db.QueryRowContext(ctx, `
			WITH slot AS (
			    INSERT INTO rate_slots (key, next_slot) VALUES ($1, $2::bigint + $3::bigint)
			    ON CONFLICT (key) DO UPDATE SET next_slot = GREATEST(rate_slots.next_slot, $2::bigint) + $3::bigint
			    RETURNING next_slot
			), counted AS (
			    INSERT INTO rate_slot_seconds (key, second, slots)
			    SELECT $1, (next_slot - $3::bigint) / 1000000, 1 FROM slot
			    ON CONFLICT (key, second) DO UPDATE SET slots = rate_slot_seconds.slots + 1
			    RETURNING second, slots
			), pruned AS ( -- at a second's first slot, forget the seconds past the history kept
			    DELETE FROM rate_slot_seconds
			    WHERE key = $1 AND second < (SELECT second - $4::bigint FROM counted WHERE slots = 1)
			)
			SELECT next_slot FROM slot`,
			key, nowUS, stepUS, keep).Scan(&next)
	} else {
		next, err = s.reserveSlotSQLite(ctx, key, nowUS, stepUS, keep)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("reserve rate slot %q: %w", key, err)
	}
	return time.UnixMicro(next - stepUS), nil
}

func (s *Store) reserveSlotSQLite(ctx context.Context, key string, nowUS, stepUS, keep int64) (int64, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	var next int64
	err = tx.QueryRowContext(ctx,
		`INSERT INTO rate_slots (key, next_slot) VALUES ($1, CAST($2 AS BIGINT) + CAST($3 AS BIGINT))
		 ON CONFLICT (key) DO UPDATE SET next_slot =
		     (CASE WHEN rate_slots.next_slot > CAST($2 AS BIGINT) THEN rate_slots.next_slot ELSE CAST($2 AS BIGINT) END)
		     + CAST($3 AS BIGINT)
		 RETURNING next_slot`,
		key, nowUS, stepUS).Scan(&next)
	if err != nil {
		return 0, err
	}
	second := time.UnixMicro(next - stepUS).Unix()
	var inSecond int64
	err = tx.QueryRowContext(ctx,
		`INSERT INTO rate_slot_seconds (key, second, slots) VALUES ($1, $2, 1)
		 ON CONFLICT (key, second) DO UPDATE SET slots = rate_slot_seconds.slots + 1
		 RETURNING slots`,
		key, second).Scan(&inSecond)
	if err != nil {
		return 0, err
	}
	if inSecond == 1 { // at a second's first slot, forget the seconds past the history kept
		if _, err := tx.ExecContext(ctx, `DELETE FROM rate_slot_seconds WHERE key = $1 AND second < $2`,
			key, second-keep); err != nil {
			return 0, err
		}
	}
	return next, tx.Commit()
}

// SlotCount is how many slots of a key fall in one second.
type SlotCount struct {
	Second time.Time // the second's start
	Slots  int
}

// SlotsPerSecond counts the slots of key in each second overlapping [from, to) that has
// any, oldest first. Every call to a rate-limited upstream, retries included, takes one slot first, so
// this is the upstream's calls per second across every worker sharing the database (a
// slot its caller abandoned for waking too late counts too). Seconds older than an hour
// before the newest slot are gone.
func (s *Store) SlotsPerSecond(ctx context.Context, key string, from, to time.Time) ([]SlotCount, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT second, slots FROM rate_slot_seconds WHERE key = $1 AND second >= $2 AND second < $3 ORDER BY second`,
		key, from.Unix(), secondsCeil(to))
	if err != nil {
		return nil, fmt.Errorf("count rate slots %q: %w", key, err)
	}
	defer rows.Close()
	var out []SlotCount
	for rows.Next() {
		var second, slots int64
		if err := rows.Scan(&second, &slots); err != nil {
			return nil, fmt.Errorf("count rate slots %q: %w", key, err)
		}
		out = append(out, SlotCount{Second: time.Unix(second, 0), Slots: int(slots)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count rate slots %q: %w", key, err)
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
