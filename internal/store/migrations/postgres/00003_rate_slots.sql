-- Rate slots space the calls to a rate-limited upstream across every process sharing the
-- database: each call takes the next free slot, atomically.
-- +goose Up
CREATE TABLE rate_slots (
    key       TEXT PRIMARY KEY,
    next_slot BIGINT NOT NULL -- Unix microseconds
);

-- +goose Down
DROP TABLE rate_slots;
