-- Auctions: scored bids, one standing bid per user, settlement into
-- orders. Orders of auction winners belong to an auction, not an item.

CREATE TABLE auctions (
    id                BLOB PRIMARY KEY NOT NULL,
    product_id        BLOB NOT NULL REFERENCES products (id),
    event_id          BLOB REFERENCES events (id),
    upset_price_cents INTEGER NOT NULL CHECK (upset_price_cents >= 0),
    currency          TEXT NOT NULL,
    inventory         INTEGER NOT NULL CHECK (inventory >= 1),
    alpha             REAL NOT NULL,
    beta              REAL NOT NULL,
    gamma             REAL NOT NULL CHECK (gamma > 0),
    start_time        TEXT NOT NULL,
    end_time          TEXT NOT NULL,
    extend_seconds    INTEGER,
    status            TEXT NOT NULL DEFAULT 'scheduled',
    final_price_cents INTEGER,
    created_by        BLOB NOT NULL REFERENCES users (id),
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
CREATE INDEX auctions_start_idx ON auctions (start_time, id);
CREATE INDEX auctions_event_idx ON auctions (event_id) WHERE event_id IS NOT NULL;
-- The scheduler's questions: what opens next, what ends next.
CREATE INDEX auctions_due_start_idx ON auctions (start_time) WHERE status = 'scheduled';
CREATE INDEX auctions_due_end_idx ON auctions (end_time) WHERE status IN ('scheduled', 'live');

CREATE TABLE bids (
    auction_id BLOB NOT NULL REFERENCES auctions (id),
    user_id    BLOB NOT NULL REFERENCES users (id),
    bid_cents  INTEGER NOT NULL,
    -- The bidder's weight when the bid was placed, and the score it gave.
    weight     REAL NOT NULL,
    score      REAL NOT NULL,
    placed_at  TEXT NOT NULL,
    -- Set once the auction settled.
    final_rank INTEGER,
    won        BOOLEAN,
    order_id   BLOB,
    PRIMARY KEY (auction_id, user_id)
);

-- SQLite cannot drop NOT NULL: the orders table is rebuilt with event and
-- item optional and the auction an order came from.
CREATE TABLE orders_v2 (
    id               BLOB PRIMARY KEY NOT NULL,
    user_id          BLOB NOT NULL REFERENCES users (id),
    event_id         BLOB REFERENCES events (id),
    event_item_id    BLOB REFERENCES event_items (id),
    auction_id       BLOB REFERENCES auctions (id),
    product_id       BLOB NOT NULL REFERENCES products (id),
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_cents INTEGER NOT NULL,
    currency         TEXT NOT NULL,
    status           TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    idempotency_key  TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    CHECK (event_item_id IS NOT NULL OR auction_id IS NOT NULL)
);
INSERT INTO orders_v2 (id, user_id, event_id, event_item_id, product_id, quantity, unit_price_cents, currency,
                       status, expires_at, idempotency_key, created_at, updated_at)
SELECT id, user_id, event_id, event_item_id, product_id, quantity, unit_price_cents, currency,
       status, expires_at, idempotency_key, created_at, updated_at FROM orders;
DROP TABLE orders;
ALTER TABLE orders_v2 RENAME TO orders;
CREATE UNIQUE INDEX orders_idempotency_key ON orders (user_id, idempotency_key);
CREATE INDEX orders_user_idx ON orders (user_id, created_at, id);
CREATE INDEX orders_item_user_idx ON orders (event_item_id, user_id, status);
CREATE INDEX orders_expiry_idx ON orders (expires_at) WHERE status = 'reserved';
CREATE INDEX orders_event_idx ON orders (event_id, status);
CREATE INDEX orders_auction_idx ON orders (auction_id) WHERE auction_id IS NOT NULL;
