-- Incident snapshots built once: the worker stores the answer gzip-compressed with its ETag
-- and raw size, so that servers read ~1/10 of the bytes and never compress (body stays for
-- servers of before this migration during a rolling upgrade). as_of is when the run that
-- built the snapshot started, on Temporal's clock: a snapshot is published only when it is
-- newer than the one served. Rows from before have their publication time as as_of.
-- +goose Up
ALTER TABLE incident_snapshots ADD COLUMN as_of BIGINT NOT NULL DEFAULT 0; -- Unix milliseconds
UPDATE incident_snapshots SET as_of = created_at;
ALTER TABLE incident_snapshots ADD COLUMN body_gzip BYTEA;
ALTER TABLE incident_snapshots ADD COLUMN body_bytes BIGINT;
ALTER TABLE incident_snapshots ADD COLUMN etag TEXT;

-- +goose Down
ALTER TABLE incident_snapshots DROP COLUMN etag;
ALTER TABLE incident_snapshots DROP COLUMN body_bytes;
ALTER TABLE incident_snapshots DROP COLUMN body_gzip;
ALTER TABLE incident_snapshots DROP COLUMN as_of;
