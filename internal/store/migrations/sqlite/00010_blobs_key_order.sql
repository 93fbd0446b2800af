-- SQLite compares blob keys byte by byte already (BINARY), so a prefix delete is a range
-- of the primary key. created_at is indexed for the sweep of staged blobs that a failed
-- run left behind.
-- +goose Up
CREATE INDEX blobs_created_at ON blobs (created_at);

-- +goose Down
DROP INDEX blobs_created_at;
