-- +goose Up
-- The shops an organisation owns, by the one tenancy rule: those it
-- connected, and those of the Etsy seller it stands for that no other
-- organisation connected. The API resolves a bearer token and the shops
-- it may see in one query with it (tokens ResolvePrincipal), and the
-- pages read it through accounts ShopIDs, so the rule is written once.
-- PL/pgSQL keeps the query's plan for the session; a SQL function's body
-- would be planned again on every call. It runs with the caller's rights.
-- organisation_shops.shop_id is unique and the second branch takes only
-- shops missing from it, so the branches never share a shop.
-- +goose StatementBegin
CREATE FUNCTION organisation_shop_ids(org bigint) RETURNS bigint[]
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN ARRAY(
        SELECT shop_id FROM organisation_shops WHERE org_id = org
        UNION ALL
        SELECT sh.shop_id FROM shops sh JOIN organisations o ON o.etsy_user_id = sh.user_id
        WHERE o.id = org AND NOT EXISTS (SELECT 1 FROM organisation_shops x WHERE x.shop_id = sh.shop_id)
        ORDER BY 1);
END;
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION organisation_shop_ids(bigint);
