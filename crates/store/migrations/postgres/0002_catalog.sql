-- Catalog: products (soft-deleted), their tags, reviews, wishlists, uploads.

CREATE TABLE products (
    id             UUID PRIMARY KEY,
    name           TEXT NOT NULL,
    -- lower-cased name, written by the application: the name sort order
    -- (bytewise, as SQLite compares it, so both databases agree).
    name_key       TEXT COLLATE "C" NOT NULL,
    description    TEXT NOT NULL DEFAULT '',
    category       TEXT NOT NULL,
    tags           JSONB NOT NULL DEFAULT '[]',
    price_cents    BIGINT NOT NULL CHECK (price_cents >= 0),
    currency       TEXT NOT NULL,
    image_url      TEXT,
    -- Kept exact in the review's transaction; average_rating is their
    -- quotient, stored so it can be indexed for sorting.
    rating_sum     BIGINT NOT NULL DEFAULT 0,
    review_count   BIGINT NOT NULL DEFAULT 0,
    average_rating DOUBLE PRECISION NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    deleted_at     TIMESTAMPTZ
);
-- One index per sort order, keyed (sort key, id) to match the keyset, and
-- partial so deleted products cost nothing.
CREATE INDEX products_created_idx ON products (created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX products_price_idx ON products (price_cents, id) WHERE deleted_at IS NULL;
CREATE INDEX products_rating_idx ON products (average_rating, id) WHERE deleted_at IS NULL;
CREATE INDEX products_name_idx ON products (name_key, id) WHERE deleted_at IS NULL;
-- The same orders within a category, the most common filter.
CREATE INDEX products_category_created_idx ON products (category, created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX products_category_price_idx ON products (category, price_cents, id) WHERE deleted_at IS NULL;
CREATE INDEX products_category_rating_idx ON products (category, average_rating, id) WHERE deleted_at IS NULL;
CREATE INDEX products_category_name_idx ON products (category, name_key, id) WHERE deleted_at IS NULL;

CREATE TABLE product_tags (
    tag        TEXT NOT NULL,
    product_id UUID NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    PRIMARY KEY (tag, product_id)
);

CREATE TABLE reviews (
    id         UUID PRIMARY KEY,
    product_id UUID NOT NULL REFERENCES products (id),
    user_id    UUID NOT NULL REFERENCES users (id),
    rating     BIGINT NOT NULL CHECK (rating BETWEEN 1 AND 5),
    comment    TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX reviews_product_user_key ON reviews (product_id, user_id);
CREATE INDEX reviews_product_created_idx ON reviews (product_id, created_at, id);

CREATE TABLE wishlist_items (
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    product_id UUID NOT NULL REFERENCES products (id),
    added_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, product_id)
);
CREATE INDEX wishlist_items_added_idx ON wishlist_items (user_id, added_at, product_id);

CREATE TABLE uploads (
    key          TEXT PRIMARY KEY NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes   BIGINT NOT NULL,
    user_id      UUID NOT NULL REFERENCES users (id),
    created_at TIMESTAMPTZ NOT NULL
);
