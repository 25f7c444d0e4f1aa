-- 0007: full-load re-runs and late change files are recorded.
--
-- A change file whose commit time is earlier than the stream's last delivered change file
-- arrived late: with LATE_FILE_POLICY=apply-guarded its rows were applied only where the table's
-- row was not written by a later change file; `late` marks such deliveries.
--
-- A DMS full-load re-run (a LOAD object delivered before whose ETag changed, or a new full load
-- after change files were delivered) is a row of loader_reloads: detected (the stream stopped,
-- RELOAD_POLICY=stop), approved by an operator (`retry`), dismissed (`skip`: the table kept as it
-- is), or applied (the table replaced by the full load in one transaction, `delivery_id`).

ALTER TABLE loader_deliveries ADD COLUMN late boolean NOT NULL DEFAULT false;

CREATE TABLE loader_reloads (
    id                    bigserial    PRIMARY KEY,
    table_name            text         NOT NULL,
    object_key            text         NOT NULL,  -- the full-load file that showed the re-run
    etag                  text,                   -- its new ETag
    previous_etag         text,                   -- the ETag delivered before (NULL: a new series)
    previous_delivery_id  bigint,
    detected_at           timestamptz  NOT NULL DEFAULT clock_timestamp(),
    status                text         NOT NULL DEFAULT 'DETECTED'
                                       CHECK (status IN ('DETECTED', 'APPROVED', 'DISMISSED', 'APPLIED')),
    delivery_id           bigint,                 -- the delivery that applied it
    files                 integer,                -- full-load files it read
    rows                  bigint,
    creates               bigint,
    amends                bigint,
    removes               bigint,
    unchanged             bigint,
    finished_at           timestamptz
);
CREATE INDEX loader_reloads_object_key_idx ON loader_reloads (object_key, id);
