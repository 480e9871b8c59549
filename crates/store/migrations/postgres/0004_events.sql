-- Events (community events and flash-sale drops), their items, orders,
-- attendance, subscriptions and threaded comments.

CREATE TABLE events (
    id                      UUID PRIMARY KEY,
    title                   TEXT NOT NULL,
    description             TEXT NOT NULL DEFAULT '',
    location                TEXT NOT NULL,
    start_time              TIMESTAMPTZ NOT NULL,
    end_time                TIMESTAMPTZ NOT NULL,
    tags                    JSONB NOT NULL DEFAULT '[]',
    max_attendees           BIGINT,
    attendee_count          BIGINT NOT NULL DEFAULT 0,
    status                  TEXT NOT NULL DEFAULT 'scheduled',
    attachment_url          TEXT,
    latitude                DOUBLE PRECISION,
    longitude               DOUBLE PRECISION,
    reservation_ttl_seconds BIGINT,
    created_by              UUID NOT NULL REFERENCES users (id),
    created_at              TIMESTAMPTZ NOT NULL,
    updated_at              TIMESTAMPTZ NOT NULL,
    deleted_at              TIMESTAMPTZ,
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
    event_id UUID NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    PRIMARY KEY (tag, event_id)
);

CREATE TABLE event_items (
    id              UUID PRIMARY KEY,
    event_id        UUID NOT NULL REFERENCES events (id),
    product_id      UUID NOT NULL REFERENCES products (id),
    price_cents     BIGINT NOT NULL CHECK (price_cents >= 0),
    currency        TEXT NOT NULL,
    stock_total     BIGINT NOT NULL CHECK (stock_total >= 0),
    -- The guard of the no-oversell rule: never below zero, never above the total.
    stock_remaining BIGINT NOT NULL CHECK (stock_remaining >= 0 AND stock_remaining <= stock_total),
    per_user_limit  BIGINT,
    position        BIGINT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX event_items_event_idx ON event_items (event_id, position);

CREATE TABLE orders (
    id               UUID PRIMARY KEY,
    user_id          UUID NOT NULL REFERENCES users (id),
    event_id         UUID NOT NULL REFERENCES events (id),
    event_item_id    UUID NOT NULL REFERENCES event_items (id),
    product_id       UUID NOT NULL REFERENCES products (id),
    quantity         BIGINT NOT NULL CHECK (quantity > 0),
    unit_price_cents BIGINT NOT NULL,
    currency         TEXT NOT NULL,
    status           TEXT NOT NULL,
    expires_at       TIMESTAMPTZ NOT NULL,
    idempotency_key  TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX orders_idempotency_key ON orders (user_id, idempotency_key);
CREATE INDEX orders_user_idx ON orders (user_id, created_at, id);
CREATE INDEX orders_item_user_idx ON orders (event_item_id, user_id, status);
CREATE INDEX orders_expiry_idx ON orders (expires_at) WHERE status = 'reserved';
CREATE INDEX orders_event_idx ON orders (event_id, status);

CREATE TABLE event_attendees (
    event_id   UUID NOT NULL REFERENCES events (id),
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (event_id, user_id)
);

CREATE TABLE event_subscriptions (
    event_id   UUID NOT NULL REFERENCES events (id),
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (event_id, user_id)
);

CREATE TABLE comments (
    id         UUID PRIMARY KEY,
    event_id   UUID NOT NULL REFERENCES events (id),
    parent_id  UUID REFERENCES comments (id),
    user_id    UUID NOT NULL REFERENCES users (id),
    body       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX comments_roots_idx ON comments (event_id, created_at, id) WHERE parent_id IS NULL;
CREATE INDEX comments_parent_idx ON comments (parent_id, created_at, id);
