-- Submitted events (POST /event/submit/). A row is the durable acceptance: the 202 is sent
-- once it is committed, and the dispatcher starts its workflow (dispatched_at) after.
-- +goose Up
CREATE TABLE events (
    task_id         TEXT PRIMARY KEY,
    name            TEXT,
    status_code     BIGINT,
    ip              TEXT NOT NULL,
    received_at     BIGINT NOT NULL, -- Unix milliseconds
    state           TEXT NOT NULL DEFAULT 'pending',
    location        TEXT,             -- JSON, once located
    country         TEXT,             -- ISO code, for filtering
    city            TEXT,
    idempotency_key TEXT UNIQUE,      -- client IP + key
    dispatched_at   BIGINT
);
CREATE INDEX events_newest ON events (received_at DESC, task_id DESC);
CREATE INDEX events_undispatched ON events (received_at) WHERE dispatched_at IS NULL;

-- Locations by IP, so that a repeated IP costs no call while its entry is fresh.
CREATE TABLE geo_cache (
    ip         TEXT PRIMARY KEY,
    location   TEXT,             -- JSON; NULL: the IP cannot be placed
    expires_at BIGINT NOT NULL  -- Unix milliseconds
);

-- +goose Down
DROP TABLE geo_cache;
DROP TABLE events;
