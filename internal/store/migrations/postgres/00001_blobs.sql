-- Blobs hold bulk data that workflows refer to by key instead of carrying it in history.
-- +goose Up
CREATE TABLE blobs (
    key        TEXT PRIMARY KEY,
    data       BYTEA NOT NULL,
    created_at BIGINT NOT NULL -- Unix milliseconds
);

-- +goose Down
DROP TABLE blobs;
