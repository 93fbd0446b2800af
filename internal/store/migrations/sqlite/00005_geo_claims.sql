-- Geo claims: the one lookup in flight for an IP. Events of the same IP wait for its answer
-- in the cache instead of spending the rate-limited budget on the same question.
-- +goose Up
CREATE TABLE geo_claims (
    ip       TEXT PRIMARY KEY,
    claimant TEXT NOT NULL,  -- the workflow looking it up: its retries keep the claim
    until    INTEGER NOT NULL -- Unix milliseconds
);

-- +goose Down
DROP TABLE geo_claims;
