-- 0002: the notification outbox.
-- A delivery with net changes writes its change notification here in the SAME transaction as its
-- data and ledger row; the publisher sends pending rows to NATS in id order and sets
-- published_at only after the server acknowledged the message (JetStream publish ack when a
-- stream captures the subject, otherwise a flush). Nothing is lost if NATS is down or the loader
-- dies: pending rows go out when it can publish again. The Nats-Msg-Id header carries
-- delivery_id so JetStream drops a replayed duplicate.

CREATE TABLE loader_outbox (
    id            bigserial    PRIMARY KEY,
    delivery_id   bigint       NOT NULL UNIQUE,
    subject       text         NOT NULL,
    payload       text         NOT NULL,   -- the exact JSON published (text keeps field order)
    created_at    timestamptz  NOT NULL DEFAULT now(),
    published_at  timestamptz,
    attempts      integer      NOT NULL DEFAULT 0,
    last_error    text
);
CREATE INDEX loader_outbox_pending_idx ON loader_outbox (id) WHERE published_at IS NULL;
