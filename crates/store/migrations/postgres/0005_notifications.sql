-- The transactional outbox and the notification history.

-- Messages written in the same transaction as the change they announce;
-- the relay publishes them and stamps published_at.
CREATE TABLE outbox (
    id           UUID PRIMARY KEY,
    topic        TEXT NOT NULL,
    payload      JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    published_at TIMESTAMPTZ
);
CREATE INDEX outbox_pending_idx ON outbox (created_at, id) WHERE published_at IS NULL;

-- One row per recipient per change; a broadcast is one row with no
-- recipient. Ids are derived from the message id and the recipient, so
-- every notifier computes the same id and a redelivery stores nothing new.
CREATE TABLE notifications (
    id                UUID PRIMARY KEY,
    message_id        UUID NOT NULL,
    recipient_id      UUID REFERENCES users (id) ON DELETE CASCADE,
    notification_type TEXT NOT NULL,
    payload           JSONB NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX notifications_recipient_idx ON notifications (recipient_id, id);
CREATE INDEX notifications_broadcast_idx ON notifications (id) WHERE recipient_id IS NULL;

CREATE TABLE notification_reads (
    user_id         UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    notification_id UUID NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, notification_id)
);

-- "Mark all read" moves this mark instead of writing a row per notification.
ALTER TABLE users ADD COLUMN notifications_read_until UUID;
