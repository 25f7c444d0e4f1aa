-- 0001: the replicated tables and the delivery ledger.
-- Applied by the loader at start-up (src/target/migrations.rs) inside one transaction, under an
-- advisory lock, with search_path set to TARGET_SCHEMA (default paper_engine): names here are
-- unqualified on purpose.
--
-- Replicated tables mirror the source tables column for column, in source-file order, and add two
-- lineage columns. A table is replicated if and only if it has a _delivery_id column.
-- No foreign keys: DMS does not guarantee the order of changes across tables.

CREATE TABLE strategies (
    strategy_id   integer        NOT NULL PRIMARY KEY,
    code          varchar(32)    NOT NULL,
    name          varchar(128)   NOT NULL,
    owner         varchar(64)    NOT NULL,
    broker        varchar(32)    NOT NULL,
    status        varchar(16)    NOT NULL,
    max_notional  numeric(20,2),
    created_at    timestamp      NOT NULL,
    updated_at    timestamp      NOT NULL,
    event_id      bigint         NOT NULL,
    _delivery_id  bigint         NOT NULL,
    _loaded_at    timestamptz    NOT NULL
);

CREATE TABLE orders (
    order_id         bigint         NOT NULL PRIMARY KEY,
    strategy_id      integer        NOT NULL,
    client_order_id  varchar(36)    NOT NULL,
    isin             char(12)       NOT NULL,
    side             varchar(4)     NOT NULL,
    order_type       varchar(16)    NOT NULL,
    time_in_force    varchar(3)     NOT NULL,
    quantity         numeric(18,4)  NOT NULL,
    limit_price      numeric(18,6),
    stop_price       numeric(18,6),
    currency         char(3)        NOT NULL,
    status           varchar(16)    NOT NULL,
    created_at       timestamp      NOT NULL,
    updated_at       timestamp      NOT NULL,
    event_id         bigint         NOT NULL,
    _delivery_id     bigint         NOT NULL,
    _loaded_at       timestamptz    NOT NULL
);
CREATE INDEX orders_strategy_id_idx ON orders (strategy_id);

CREATE TABLE executions (
    execution_id    bigint         NOT NULL PRIMARY KEY,
    order_id        bigint         NOT NULL,
    broker_exec_id  varchar(40)    NOT NULL,
    exec_type       varchar(16)    NOT NULL,
    last_qty        numeric(18,4)  NOT NULL,
    last_price      numeric(18,6),
    cum_qty         numeric(18,4)  NOT NULL,
    leaves_qty      numeric(18,4)  NOT NULL,
    venue           varchar(16),
    text            varchar(256),
    transact_time   timestamp      NOT NULL,
    event_id        bigint         NOT NULL,
    _delivery_id    bigint         NOT NULL,
    _loaded_at      timestamptz    NOT NULL
);
CREATE INDEX executions_order_id_idx ON executions (order_id);

-- The ledger: one row per DMS object, the loader's only cursor. A file is pending if and only if
-- it has no SUCCESS row. The SUCCESS row is written in the same transaction as the data.
CREATE TABLE loader_deliveries (
    id              bigserial    PRIMARY KEY,
    object_key      text         NOT NULL UNIQUE,
    etag            text,
    size            bigint       NOT NULL,
    table_name      text         NOT NULL,
    kind            text         NOT NULL CHECK (kind IN ('LOAD', 'CDC')),
    status          text         NOT NULL CHECK (status IN ('SUCCESS', 'ERROR')),
    rows            bigint       NOT NULL DEFAULT 0,
    creates         bigint       NOT NULL DEFAULT 0,
    amends          bigint       NOT NULL DEFAULT 0,
    removes         bigint       NOT NULL DEFAULT 0,
    unchanged       bigint       NOT NULL DEFAULT 0,
    max_event_id    bigint,
    started_at      timestamptz  NOT NULL,
    finished_at     timestamptz  NOT NULL,
    error           text,
    host            text         NOT NULL,
    loader_version  text         NOT NULL
);
CREATE INDEX loader_deliveries_table_status_idx ON loader_deliveries (table_name, status);
