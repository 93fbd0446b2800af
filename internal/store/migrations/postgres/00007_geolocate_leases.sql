-- Geolocation by IP (issue 13): the dispatcher leases pending events instead of marking
-- them dispatched once, so that an event whose lookup ended without an outcome is driven
-- again when its lease runs out; one workflow per IP settles every pending event of its
-- IP, so claims are gone; the cache keeps country and city beside the JSON, so that a hit
-- locates a whole batch of events in one statement.
-- +goose Up
ALTER TABLE events ADD COLUMN lease_until BIGINT; -- Unix milliseconds: a dispatcher acts on the row until then
ALTER TABLE events ADD COLUMN dispatches INTEGER NOT NULL DEFAULT 0;
UPDATE events SET dispatches = 1 WHERE dispatched_at IS NOT NULL;
DROP INDEX events_undispatched;
ALTER TABLE events DROP COLUMN dispatched_at;
CREATE INDEX events_pending ON events (received_at) WHERE state = 'pending';
CREATE INDEX events_pending_ip ON events (ip) WHERE state = 'pending';

ALTER TABLE geo_cache ADD COLUMN country TEXT;
ALTER TABLE geo_cache ADD COLUMN city TEXT;
UPDATE geo_cache SET country = upper(location::json -> 'country' ->> 'iso_code'), city = location::json ->> 'city'
WHERE location IS NOT NULL;
CREATE INDEX geo_cache_expires ON geo_cache (expires_at);

DROP TABLE geo_claims;

-- +goose Down
CREATE TABLE geo_claims (
    ip       TEXT PRIMARY KEY,
    claimant TEXT NOT NULL,
    until    BIGINT NOT NULL
);
DROP INDEX geo_cache_expires;
ALTER TABLE geo_cache DROP COLUMN city;
ALTER TABLE geo_cache DROP COLUMN country;
DROP INDEX events_pending_ip;
DROP INDEX events_pending;
ALTER TABLE events ADD COLUMN dispatched_at BIGINT;
UPDATE events SET dispatched_at = received_at WHERE dispatches > 0;
CREATE INDEX events_undispatched ON events (received_at) WHERE dispatched_at IS NULL;
ALTER TABLE events DROP COLUMN dispatches;
ALTER TABLE events DROP COLUMN lease_until;
