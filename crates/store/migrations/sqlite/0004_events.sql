-- Events (community events and flash-sale drops), their items, orders,
-- attendance, subscriptions and threaded comments.

CREATE TABLE events (
    id                      BLOB PRIMARY KEY NOT NULL,
    title                   TEXT NOT NULL,
    description             TEXT NOT NULL DEFAULT '',
    location                TEXT NOT NULL,
    start_time              TEXT NOT NULL,
    end_time                TEXT NOT NULL,
    tags                    TEXT NOT NULL DEFAULT '[]',
    max_attendees           INTEGER,
    attendee_count          INTEGER NOT NULL DEFAULT 0,
    status                  TEXT NOT NULL DEFAULT 'scheduled',
    attachment_url          TEXT,
    latitude                REAL,
    longitude               REAL,
    reservation_ttl_seconds INTEGER,
    created_by              BLOB NOT NULL REFERENCES users (id),
    created_at              TEXT NOT NULL,
    updated_at              TEXT NOT NULL,
    deleted_at              TEXT,
    CHECK (max_attendees IS NULL OR attendee_count <= max_attendees)
);
CREATE INDEX events_start_idx ON events (start_time, id) WHERE deleted_at IS NULL;
CREATE INDEX events_status_start_idx ON events (status, start_time, id) WHERE deleted_at IS NULL;
-- The scheduler's two questions: what starts next, what ends next.
CREATE INDEX events_due_start_idx ON events (start_time) WHERE status = 'scheduled' AND deleted_at IS NULL;
CREATE INDEX events_due_end_idx ON events (end_time) WHERE status IN ('scheduled', 'live', 'sold_out') AND deleted_at IS NULL;
CREATE INDEX events_location_idx ON events (latitude, longitude) WHERE deleted_at IS NULL AND latitude IS NOT NULL;

CREATE TABLE event_tags (
    tag      TEXT NOT NULL,
    event_id BLOB NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    PRIMARY KEY (tag, event_id)
);

CREATE TABLE event_items (
    id              BLOB PRIMARY KEY NOT NULL,
    event_id        BLOB NOT NULL REFERENCES events (id),
    product_id      BLOB NOT NULL REFERENCES products (id),
    price_cents     INTEGER NOT NULL CHECK (price_cents >= 0),
    currency        TEXT NOT NULL,
    stock_total     INTEGER NOT NULL CHECK (stock_total >= 0),
    -- The guard of the no-oversell rule: never below zero, never above the total.
    stock_remaining INTEGER NOT NULL CHECK (stock_remaining >= 0 AND stock_remaining <= stock_total),
    per_user_limit  INTEGER,
    position        INTEGER NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX event_items_event_idx ON event_items (event_id, position);

CREATE TABLE orders (
    id               BLOB PRIMARY KEY NOT NULL,
    user_id          BLOB NOT NULL REFERENCES users (id),
    event_id         BLOB NOT NULL REFERENCES events (id),
    event_item_id    BLOB NOT NULL REFERENCES event_items (id),
    product_id       BLOB NOT NULL REFERENCES products (id),
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_cents INTEGER NOT NULL,
    currency         TEXT NOT NULL,
    status           TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    idempotency_key  TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE UNIQUE INDEX orders_idempotency_key ON orders (user_id, idempotency_key);
CREATE INDEX orders_user_idx ON orders (user_id, created_at, id);
CREATE INDEX orders_item_user_idx ON orders (event_item_id, user_id, status);
CREATE INDEX orders_expiry_idx ON orders (expires_at) WHERE status = 'reserved';
CREATE INDEX orders_event_idx ON orders (event_id, status);

CREATE TABLE event_attendees (
    event_id   BLOB NOT NULL REFERENCES events (id),
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (event_id, user_id)
);

CREATE TABLE event_subscriptions (
    event_id   BLOB NOT NULL REFERENCES events (id),
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (event_id, user_id)
);

CREATE TABLE comments (
    id         BLOB PRIMARY KEY NOT NULL,
    event_id   BLOB NOT NULL REFERENCES events (id),
    parent_id  BLOB REFERENCES comments (id),
    user_id    BLOB NOT NULL REFERENCES users (id),
    body       TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX comments_roots_idx ON comments (event_id, created_at, id) WHERE parent_id IS NULL;
CREATE INDEX comments_parent_idx ON comments (parent_id, created_at, id);
