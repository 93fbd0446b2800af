-- Blob keys compare byte by byte (collation "C"), whatever the database's default: a prefix
-- delete is then a range of the primary key (key >= prefix AND key < successor), which
-- the index serves; under a language collation that range would not be the prefix's keys.
-- created_at is indexed for the sweep of staged blobs that a failed run left behind.
-- +goose Up
ALTER TABLE blobs ALTER COLUMN key TYPE TEXT COLLATE "C";
CREATE INDEX blobs_created_at ON blobs (created_at);

-- +goose Down
DROP INDEX blobs_created_at;
ALTER TABLE blobs ALTER COLUMN key TYPE TEXT COLLATE "default";
