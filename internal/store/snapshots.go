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
	CreatedAt  time.Time // when it was published, on the database's clock
	AsOf       time.Time // when the run that built it started (Temporal's clock)
	WorkflowID string
	Summary    []byte // JSON
	// Body is the GET /incidents answer, encoded. Snapshot leaves it out when Gzip is there:
	// servers serve Gzip as it is and decompress it for the rare client that takes no gzip.
	Body []byte
	// Gzip is Body gzip-compressed at publication, ETag its entity tag and Bytes its size;
	// all three are empty for snapshots published before they existed (migration 00009).
	Gzip  []byte
	ETag  string
	Bytes int
}

// NewSnapshot is what PublishSnapshot stores.
type NewSnapshot struct {
	WorkflowID string
	// AsOf is when the data was asked for: the start of the run that built it, on
	// Temporal's clock. A snapshot whose AsOf is not after the newest one's is not published.
	AsOf    time.Time
	Summary []byte
	Body    []byte // raw, for servers of before migration 00009 during a rolling upgrade
	Gzip    []byte
	ETag    string
}

// Published says what PublishSnapshot did: stored snap as the newest (Published), or
// found a snapshot as new or newer already there (ID is then that one's).
type Published struct {
	ID        int64
	Published bool
}

// PublishSnapshot stores a snapshot as the newest, all at once, and prunes old ones, unless
// the newest snapshot is as new or newer (by AsOf): a refresh that started earlier and
// finished later never replaces a newer one. Publishers are serialized (a table lock on
// PostgreSQL, SQLite's one writer), so ids and AsOf rise together. Publishing the same
// run's snapshot again (an activity retried after a lost answer) answers the first id.
func (s *Store) PublishSnapshot(ctx context.Context, snap NewSnapshot) (Published, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Published{}, fmt.Errorf("publish snapshot: %w", err)
	}
	defer tx.Rollback()
	if s.dialect == Postgres {
		// Conflicts with itself only: readers go on, publishers queue.
		if _, err := tx.ExecContext(ctx, `LOCK TABLE incident_snapshots IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return Published{}, fmt.Errorf("publish snapshot: %w", err)
		}
	}
	asOf := snap.AsOf.UnixMilli()
	var newest, newestAsOf int64
	var newestWorkflow string
	err = tx.QueryRowContext(ctx, `SELECT id, as_of, workflow_id FROM incident_snapshots ORDER BY id DESC LIMIT 1`).
		Scan(&newest, &newestAsOf, &newestWorkflow)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return Published{}, fmt.Errorf("publish snapshot: newest: %w", err)
	case newestAsOf == asOf && newestWorkflow == snap.WorkflowID:
		return Published{ID: newest, Published: true}, nil // this run's, published before
	case newestAsOf >= asOf:
		return Published{ID: newest}, nil
	}
	var id int64
	err = tx.QueryRowContext(ctx,
		`INSERT INTO incident_snapshots (created_at, as_of, workflow_id, summary, body, body_gzip, body_bytes, etag)
		 VALUES (`+s.nowMillis()+`, $1, $2, $3, $4, $5, $6, $7) RETURNING id`,
		asOf, snap.WorkflowID, string(snap.Summary), nonNil(snap.Body), nullBytes(snap.Gzip), len(snap.Body), nullString(snap.ETag)).Scan(&id)
	if err != nil {
		return Published{}, fmt.Errorf("publish snapshot: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM incident_snapshots WHERE id <= $1`, id-keepSnapshots); err != nil {
		return Published{}, fmt.Errorf("prune snapshots: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Published{}, fmt.Errorf("publish snapshot: %w", err)
	}
	return Published{ID: id, Published: true}, nil
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

// Snapshot reads one snapshot: its gzip, ETag and size, or, for one published before
// those existed, its raw body.
func (s *Store) Snapshot(ctx context.Context, id int64) (Snapshot, error) {
	var snap Snapshot
	var ms, asOf int64
	var summary string
	var etag sql.NullString
	var size sql.NullInt64
	err := s.db.QueryRowContext(ctx,
		`SELECT id, created_at, as_of, workflow_id, summary,
		        CASE WHEN body_gzip IS NULL THEN body END, body_gzip, body_bytes, etag
		 FROM incident_snapshots WHERE id = $1`, id).
		Scan(&snap.ID, &ms, &asOf, &snap.WorkflowID, &summary, &snap.Body, &snap.Gzip, &size, &etag)
	if errors.Is(err, sql.ErrNoRows) {
		return Snapshot{}, fmt.Errorf("incident snapshot %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("incident snapshot %d: %w", id, err)
	}
	snap.CreatedAt, snap.AsOf, snap.Summary = time.UnixMilli(ms), time.UnixMilli(asOf), []byte(summary)
	snap.ETag, snap.Bytes = etag.String, int(size.Int64)
	if snap.Gzip == nil {
		snap.Bytes = len(snap.Body)
	}
	return snap, nil
}

// nowMillis is SQL for the database's clock in Unix milliseconds: the one clock every
// process that compares these times shares.
func (s *Store) nowMillis() string {
	if s.dialect == Postgres {
		return `CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)`
	}
	return `CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)`
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func nullBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}
