-- Substring search on product names and descriptions: trigram indexes
-- (pg_trgm, a trusted extension) that serve `lower(x) LIKE '%term%'`.
-- The lock keeps concurrent first migrations from racing to create it.
SELECT pg_advisory_xact_lock(7412001);
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
CREATE INDEX products_name_trgm_idx ON products USING gin (lower(name) public.gin_trgm_ops)
    WHERE deleted_at IS NULL;
CREATE INDEX products_description_trgm_idx ON products USING gin (lower(description) public.gin_trgm_ops)
    WHERE deleted_at IS NULL;
