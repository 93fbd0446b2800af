package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// PutBlob stores data under key, replacing what was there. Activities stage bulk data
// here and hand workflows the key, so history stays small.
func (s *Store) PutBlob(ctx context.Context, key string, data []byte) error {
	if data == nil {
		data = []byte{}
	}
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO blobs (key, data, created_at) VALUES ($1, $2, $3)
		 ON CONFLICT (key) DO UPDATE SET data = excluded.data, created_at = excluded.created_at`,
		key, data, time.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("put blob %q: %w", key, err)
	}
	return nil
}

// GetBlob returns the data under key, or ErrNotFound.
func (s *Store) GetBlob(ctx context.Context, key string) ([]byte, error) {
	var data []byte
	err := s.db.QueryRowContext(ctx, `SELECT data FROM blobs WHERE key = $1`, key).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("blob %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get blob %q: %w", key, err)
	}
	return data, nil
}

// DeleteBlobs removes the blobs whose keys start with prefix and returns how many went.
func (s *Store) DeleteBlobs(ctx context.Context, prefix string) (int64, error) {
	if prefix == "" {
		return 0, errors.New("delete blobs: an empty prefix would delete them all")
	}
	res, err := s.db.ExecContext(ctx,
		`DELETE FROM blobs WHERE substr(key, 1, length(CAST($1 AS TEXT))) = CAST($1 AS TEXT)`, prefix)
	if err != nil {
		return 0, fmt.Errorf("delete blobs %q*: %w", prefix, err)
	}
	return res.RowsAffected()
}
