-- 0004: what operators did to the ledger.
--
-- `retry` and `skip` (the CLI commands and the HTTP API) act on a stream stopped at a failed file:
-- `retry` removes the file's ERROR row so the stream attempts it again, `skip` turns it into
-- SKIPPED so the stream goes on without it. Each action is a row here, written in the same
-- transaction as the change it made, never deleted: who (user@host), when, why, through what.

CREATE TABLE loader_actions (
    id           bigserial    PRIMARY KEY,
    action       text         NOT NULL CHECK (action IN ('RETRY', 'SKIP')),
    object_key   text         NOT NULL,
    table_name   text         NOT NULL,
    delivery_id  bigint       NOT NULL,  -- the failed delivery acted on
    etag         text,
    reason       text         NOT NULL,
    actor        text         NOT NULL,  -- who asked: user@host, or the API's caller
    via          text         NOT NULL CHECK (via IN ('cli', 'api')),
    at           timestamptz  NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX loader_actions_object_key_idx ON loader_actions (object_key, id);

-- The last 50 deliveries of the status page and `deliveries --limit N`, newest first.
CREATE INDEX loader_deliveries_finished_at_idx ON loader_deliveries (finished_at);
