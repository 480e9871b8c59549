-- A per-item sequence, moved by every change of its stock, so that live
-- stock (pages, shared gates) can tell a late update from a newer one.
ALTER TABLE event_items ADD COLUMN stock_version BIGINT NOT NULL DEFAULT 0;
