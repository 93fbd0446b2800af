-- How many slots each rate-limited key took in each second: the status page charts the
-- geolocation API's calls per second from it, whichever worker made them. Each slot is
-- counted in the transaction that reserves it; an hour is kept.
-- +goose Up
CREATE TABLE rate_slot_seconds (
    key    TEXT NOT NULL,
    second BIGINT NOT NULL, -- Unix seconds
    slots  INTEGER NOT NULL,
    PRIMARY KEY (key, second)
);

-- +goose Down
DROP TABLE rate_slot_seconds;
