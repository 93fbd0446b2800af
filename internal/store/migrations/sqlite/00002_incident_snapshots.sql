-- Incident snapshots: the grouped answer of GET /incidents, pre-encoded, one row per
-- refresh. A row appears whole or not at all; servers serve the highest id.
-- +goose Up
CREATE TABLE incident_snapshots (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at  INTEGER NOT NULL, -- Unix milliseconds
    workflow_id TEXT NOT NULL,
    summary     TEXT NOT NULL,    -- JSON
    body        BLOB NOT NULL
);

-- +goose Down
DROP TABLE incident_snapshots;
