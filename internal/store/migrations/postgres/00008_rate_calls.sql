-- The calls each rate-limited key made in each second, counted by the caller once it has
-- decided to call (not when it reserves a slot: a reservation may be abandoned). The
-- status page charts the geolocation API's calls per second from it, whichever worker
-- made them; an hour is kept. Replaces rate_slot_seconds, which counted reservations.
-- +goose Up
ALTER TABLE rate_slot_seconds RENAME TO rate_calls;
ALTER TABLE rate_calls RENAME COLUMN slots TO calls;
ALTER INDEX rate_slot_seconds_pkey RENAME TO rate_calls_pkey;

-- +goose Down
ALTER INDEX rate_calls_pkey RENAME TO rate_slot_seconds_pkey;
ALTER TABLE rate_calls RENAME COLUMN calls TO slots;
ALTER TABLE rate_calls RENAME TO rate_slot_seconds;
