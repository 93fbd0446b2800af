package store

import (
	"context"
	"strings"
)

// ExplainPrefixDelete is the database's plan for DeleteBlobs(prefix), one line per step, on
// PostgreSQL with sequential scans priced out of reach: a plan that still scans the table
// could not use an index.
func ExplainPrefixDelete(ctx context.Context, s *Store, prefix string) (string, error) {
	end, _ := PrefixEnd(prefix)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return "", err
	}
	defer tx.Rollback()
	q := `EXPLAIN QUERY PLAN DELETE FROM blobs WHERE key >= $1 AND key < $2`
	if s.dialect == Postgres {
		if _, err := tx.ExecContext(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
			return "", err
		}
		q = `EXPLAIN DELETE FROM blobs WHERE key >= $1 AND key < $2`
	}
	rows, err := tx.QueryContext(ctx, q, prefix, end)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "", err
	}
	var lines []string
	for rows.Next() {
		vals := make([]any, len(cols))
		for i := range vals {
			vals[i] = new(any)
		}
		if err := rows.Scan(vals...); err != nil {
			return "", err
		}
		var parts []string
		for _, v := range vals {
			switch x := (*v.(*any)).(type) {
			case string:
				parts = append(parts, x)
			case []byte:
				parts = append(parts, string(x))
			}
		}
		lines = append(lines, strings.Join(parts, " "))
	}
	return strings.Join(lines, "\n"), rows.Err()
}

// AgeBlob moves key's creation back by age, as if it had been stored that long ago.
func AgeBlob(ctx context.Context, s *Store, key string, age interface{ Milliseconds() int64 }) error {
	_, err := s.db.ExecContext(ctx, `UPDATE blobs SET created_at = created_at - $1 WHERE key = $2`, age.Milliseconds(), key)
	return err
}
