-- +goose Up
-- A shop's default low-stock line is NULL until the seller sets one, so
-- that every reader applies the configured default
-- (SHOPLEDGER_DEFAULT_LOW_STOCK_THRESHOLD) where nothing is set, instead of
-- a number the projector wrote into the row. Rows written before hold 5
-- for "unset"; the last shop-wide threshold fact of each shop in the log
-- says what the row should hold (NULL when there is none or it was
-- cleared), exactly what the shops projection now folds.
ALTER TABLE shops
    ALTER COLUMN default_low_stock_threshold DROP NOT NULL,
    ALTER COLUMN default_low_stock_threshold DROP DEFAULT;

UPDATE shops s
SET default_low_stock_threshold = last.threshold
FROM (
    SELECT sh.shop_id, f.threshold
    FROM shops sh
    LEFT JOIN LATERAL (
        SELECT CASE
                   WHEN e.type = 'stock.threshold_cleared' THEN NULL
                   WHEN e.type = 'stock.threshold_set' THEN (e.data->>'threshold')::bigint
                   ELSE (e.data->>'default_low_stock_threshold')::bigint
               END AS threshold
        FROM events e
        WHERE e.stream_id = 'shop-' || sh.shop_id
          AND ((e.type IN ('stock.threshold_set', 'stock.threshold_cleared') AND e.data->>'scope' = 'shop')
               OR (e.type = 'shop.settings_changed' AND e.data ? 'default_low_stock_threshold'))
        ORDER BY e.transaction_id DESC, e.position DESC
        LIMIT 1
    ) f ON true
) last
WHERE last.shop_id = s.shop_id
  AND s.default_low_stock_threshold IS DISTINCT FROM last.threshold;

-- +goose Down
UPDATE shops SET default_low_stock_threshold = 5 WHERE default_low_stock_threshold IS NULL;
ALTER TABLE shops
    ALTER COLUMN default_low_stock_threshold SET DEFAULT 5,
    ALTER COLUMN default_low_stock_threshold SET NOT NULL;
