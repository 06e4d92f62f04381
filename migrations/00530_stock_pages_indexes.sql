-- +goose Up
-- Indexes for the seller's dashboard (projections/stock_pages.go).
--
-- Days of cover sum each variant's sales over the last 30 days, across
-- all the organisation's shops: the sale movements alone, with what the
-- sum needs in the index, so that the read is an index-only scan of the
-- window and never visits the heap for restocks and corrections.
CREATE INDEX stock_movements_shop_sale_time_idx ON stock_movements (shop_id, occurred_at)
    INCLUDE (listing_id, variant_key, delta) WHERE reason = 'sale';
-- Deleted listings, which the days of cover leave out: few, so the list
-- is read whole and looked up in memory rather than probed per variant.
CREATE INDEX products_deleted_idx ON products (listing_id) WHERE deleted;

-- +goose Down
DROP INDEX products_deleted_idx;
DROP INDEX stock_movements_shop_sale_time_idx;
