-- 0006: each notification has its own message id.
--
-- The `Nats-Msg-Id` header (JetStream's de-duplication key) used to be the delivery id, which
-- starts again at 1 when the schema is recreated (a reload from scratch): JetStream then dropped
-- the reload's notifications as duplicates of the first load's. A UUID per outbox row is unique
-- across reloads and databases; a replay of the same row keeps it, so JetStream still drops a
-- replayed duplicate.

ALTER TABLE loader_outbox ADD COLUMN msg_id uuid NOT NULL DEFAULT gen_random_uuid();
ALTER TABLE loader_outbox ADD CONSTRAINT loader_outbox_msg_id_key UNIQUE (msg_id);
