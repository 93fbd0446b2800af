package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// keepSnapshots is how many incident snapshots stay: the newest, and a few before it for
// a server that is still loading one when the next lands.
const keepSnapshots = 3

// Snapshot is one published incident snapshot.
type Snapshot struct {
	ID         int64
	CreatedAt  time.Time
	WorkflowID string
	Summary    []byte // JSON
	Body       []byte // the GET /incidents answer, encoded
}

// PublishSnapshot stores a snapshot as the newest, all at once, and prunes old ones.
func (s *Store) PublishSnapshot(ctx context.Context, workflowID string, summary, body []byte) (int64, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("publish snapshot: %w", err)
	}
	defer tx.Rollback()
	var id int64
	err = tx.QueryRowContext(ctx,
		`INSERT INTO incident_snapshots (created_at, workflow_id, summary, body) VALUES ($1, $2, $3, $4) RETURNING id`,
		time.Now().UnixMilli(), workflowID, string(summary), body).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("publish snapshot: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM incident_snapshots WHERE id <= $1`, id-keepSnapshots); err != nil {
		return 0, fmt.Errorf("prune snapshots: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("publish snapshot: %w", err)
	}
	return id, nil
}

// LatestSnapshotID returns the newest snapshot's id and time, or ErrNotFound. It reads no
// body, so servers can ask often.
func (s *Store) LatestSnapshotID(ctx context.Context) (int64, time.Time, error) {
	var id, ms int64
	err := s.db.QueryRowContext(ctx, `SELECT id, created_at FROM incident_snapshots ORDER BY id DESC LIMIT 1`).Scan(&id, &ms)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, time.Time{}, fmt.Errorf("incident snapshot: %w", ErrNotFound)
	}
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("latest incident snapshot: %w", err)
	}
	return id, time.UnixMilli(ms), nil
}

// Snapshot reads one snapshot whole.
func (s *Store) Snapshot(ctx context.Context, id int64) (Snapshot, error) {
	var snap Snapshot
	var ms int64
	var summary string
	err := s.db.QueryRowContext(ctx,
		`SELECT id, created_at, workflow_id, summary, body FROM incident_snapshots WHERE id = $1`, id).
		Scan(&snap.ID, &ms, &snap.WorkflowID, &summary, &snap.Body)
	if errors.Is(err, sql.ErrNoRows) {
		return Snapshot{}, fmt.Errorf("incident snapshot %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("incident snapshot %d: %w", id, err)
	}
	snap.CreatedAt, snap.Summary = time.UnixMilli(ms), []byte(summary)
	return snap, nil
}
