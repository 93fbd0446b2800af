package store

import (
	"context"
	"fmt"
	"time"
)

// ReserveSlot takes the next free slot of key, no earlier than now, and moves the next
// free slot on by spacing; one statement, so concurrent callers in any process each get a
// different slot.
func (s *Store) ReserveSlot(ctx context.Context, key string, now time.Time, spacing time.Duration) (time.Time, error) {
	nowUS, stepUS := now.UnixMicro(), spacing.Microseconds()
	var next int64
	err := s.db.QueryRowContext(ctx,
		`INSERT INTO rate_slots (key, next_slot) VALUES ($1, CAST($2 AS BIGINT) + CAST($3 AS BIGINT))
		 ON CONFLICT (key) DO UPDATE SET next_slot =
		     (CASE WHEN rate_slots.next_slot > CAST($2 AS BIGINT) THEN rate_slots.next_slot ELSE CAST($2 AS BIGINT) END)
		     + CAST($3 AS BIGINT)
		 RETURNING next_slot`,
		key, nowUS, stepUS).Scan(&next)
	if err != nil {
		return time.Time{}, fmt.Errorf("reserve rate slot %q: %w", key, err)
	}
	return time.UnixMicro(next - stepUS), nil
}
