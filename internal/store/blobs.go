package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// PutBlob stores data under key, replacing what was there. Activities stage bulk data
// here and hand workflows the key, so history stays small. created_at is the database's
// clock, which the sweep (DeleteBlobsOlderThan) compares against.
func (s *Store) PutBlob(ctx context.Context, key string, data []byte) error {
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO blobs (key, data, created_at) VALUES ($1, $2, `+s.nowMillis()+`)
		 ON CONFLICT (key) DO UPDATE SET data = excluded.data, created_at = excluded.created_at`,
		key, nonNil(data))
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
// The keys starting with prefix are the range [prefix, PrefixEnd(prefix)) in byte order
// (the keys' collation on both databases), which the primary key's index serves: no scan.
func (s *Store) DeleteBlobs(ctx context.Context, prefix string) (int64, error) {
	if prefix == "" {
		return 0, errors.New("delete blobs: an empty prefix would delete them all")
	}
	var res sql.Result
	var err error
	if end, ok := PrefixEnd(prefix); ok {
		res, err = s.db.ExecContext(ctx, `DELETE FROM blobs WHERE key >= $1 AND key < $2`, prefix, end)
	} else { // a prefix of only the largest characters: everything from it on
		res, err = s.db.ExecContext(ctx, `DELETE FROM blobs WHERE key >= $1`, prefix)
	}
	if err != nil {
		return 0, fmt.Errorf("delete blobs %q*: %w", prefix, err)
	}
	return res.RowsAffected()
}

// DeleteBlobsOlderThan removes the blobs stored more than age ago by the database's clock
// (what a run that failed or timed out before its cleanup left behind) and returns how
// many went. The index on created_at serves it.
func (s *Store) DeleteBlobsOlderThan(ctx context.Context, age time.Duration) (int64, error) {
	if age <= 0 {
		return 0, fmt.Errorf("delete blobs older than %s: want a positive age", age)
	}
	res, err := s.db.ExecContext(ctx, `DELETE FROM blobs WHERE created_at < `+s.nowMillis()+` - $1`, age.Milliseconds())
	if err != nil {
		return 0, fmt.Errorf("delete blobs older than %s: %w", age, err)
	}
	return res.RowsAffected()
}

// PrefixEnd is the smallest string greater than every string that starts with prefix, in
// byte order (which for UTF-8 is code point order): prefix with its last character replaced
// by the next one, characters that have no next one dropped first. It is valid UTF-8 when
// prefix is; ok is false when there is no such string (prefix is only U+10FFFF or empty).
func PrefixEnd(prefix string) (end string, ok bool) {
	for prefix != "" {
		r, size := utf8.DecodeLastRuneInString(prefix)
		if r == utf8.RuneError && size == 1 { // not UTF-8: the next byte value
			b := prefix[len(prefix)-1]
			prefix = prefix[:len(prefix)-1]
			if b < 0xff {
				return prefix + string([]byte{b + 1}), true
			}
			continue
		}
		prefix = prefix[:len(prefix)-size]
		next := r + 1
		if next == 0xD800 { // surrogates are not characters
			next = 0xE000
		}
		if next > utf8.MaxRune {
			continue
		}
		return prefix + string(next), true
	}
	return "", false
}
