-- Auctions: scored bids, one standing bid per user, settlement into
-- orders. Orders of auction winners belong to an auction, not an item.

CREATE TABLE auctions (
    id                UUID PRIMARY KEY,
    product_id        UUID NOT NULL REFERENCES products (id),
    event_id          UUID REFERENCES events (id),
    upset_price_cents BIGINT NOT NULL CHECK (upset_price_cents >= 0),
    currency          TEXT NOT NULL,
    inventory         BIGINT NOT NULL CHECK (inventory >= 1),
    alpha             DOUBLE PRECISION NOT NULL,
    beta              DOUBLE PRECISION NOT NULL,
    gamma             DOUBLE PRECISION NOT NULL CHECK (gamma > 0),
    start_time        TIMESTAMPTZ NOT NULL,
    end_time          TIMESTAMPTZ NOT NULL,
    extend_seconds    BIGINT,
    status            TEXT NOT NULL DEFAULT 'scheduled',
    final_price_cents BIGINT,
    created_by        UUID NOT NULL REFERENCES users (id),
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX auctions_start_idx ON auctions (start_time, id);
CREATE INDEX auctions_event_idx ON auctions (event_id) WHERE event_id IS NOT NULL;
CREATE INDEX auctions_due_start_idx ON auctions (start_time) WHERE status = 'scheduled';
CREATE INDEX auctions_due_end_idx ON auctions (end_time) WHERE status IN ('scheduled', 'live');

CREATE TABLE bids (
    auction_id UUID NOT NULL REFERENCES auctions (id),
    user_id    UUID NOT NULL REFERENCES users (id),
    bid_cents  BIGINT NOT NULL,
    weight     DOUBLE PRECISION NOT NULL,
    score      DOUBLE PRECISION NOT NULL,
    placed_at  TIMESTAMPTZ NOT NULL,
    final_rank BIGINT,
    won        BOOLEAN,
    order_id   UUID,
    PRIMARY KEY (auction_id, user_id)
);

ALTER TABLE orders
    ALTER COLUMN event_id DROP NOT NULL,
    ALTER COLUMN event_item_id DROP NOT NULL,
    ADD COLUMN auction_id UUID REFERENCES auctions (id),
    ADD CONSTRAINT orders_item_or_auction CHECK (event_item_id IS NOT NULL OR auction_id IS NOT NULL);
CREATE INDEX orders_auction_idx ON orders (auction_id) WHERE auction_id IS NOT NULL;
