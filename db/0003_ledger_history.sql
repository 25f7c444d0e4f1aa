-- 0003: the ledger keeps its history, and knows a third status.
--
-- loader_deliveries keeps one row per DMS object (its current state); a status of SKIPPED means an
-- operator decided the stream goes on without this object (it counts as done, nothing of it was
-- applied). A failed attempt used to live only in the object's ERROR row, which a later success
-- replaced: every failed attempt is now also a row of loader_failures, never deleted, so "what
-- failed last week, and how often" has an answer after the file was fixed.

ALTER TABLE loader_deliveries DROP CONSTRAINT IF EXISTS loader_deliveries_status_check;
ALTER TABLE loader_deliveries
    ADD CONSTRAINT loader_deliveries_status_check CHECK (status IN ('SUCCESS', 'ERROR', 'SKIPPED'));

CREATE TABLE loader_failures (
    id              bigserial    PRIMARY KEY,
    delivery_id     bigint       NOT NULL,
    object_key      text         NOT NULL,
    etag            text,
    size            bigint       NOT NULL,
    table_name      text         NOT NULL,
    kind            text         NOT NULL CHECK (kind IN ('LOAD', 'CDC')),
    started_at      timestamptz  NOT NULL,
    failed_at       timestamptz  NOT NULL DEFAULT clock_timestamp(),
    error           text         NOT NULL,
    host            text         NOT NULL,
    loader_version  text         NOT NULL
);
CREATE INDEX loader_failures_object_key_idx ON loader_failures (object_key, id);
CREATE INDEX loader_failures_table_failed_at_idx ON loader_failures (table_name, failed_at);

-- The failures recorded before this migration start the history.
INSERT INTO loader_failures (delivery_id, object_key, etag, size, table_name, kind, started_at,
                             failed_at, error, host, loader_version)
SELECT id, object_key, etag, size, table_name, kind, started_at, finished_at,
       coalesce(error, ''), host, loader_version
  FROM loader_deliveries
 WHERE status = 'ERROR';

-- Unresolved errors (the stream heads that stop a stream) are found without reading the ledger.
CREATE INDEX loader_deliveries_unresolved_idx ON loader_deliveries (table_name) WHERE status = 'ERROR';

-- Each table's last successful delivery (seeds last_success_timestamp_seconds at start-up).
CREATE INDEX loader_deliveries_last_success_idx ON loader_deliveries (table_name, finished_at)
    WHERE status = 'SUCCESS';
