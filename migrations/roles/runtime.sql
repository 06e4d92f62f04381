-- The runtime role and what it may do now, applied after every migration
-- run. Roles belong to the cluster, not to a database, so a dump restored
-- into another cluster arrives without them (and its GRANTs fail); applying
-- this again re-creates the role and its privileges. Keep it equal to the
-- GRANTs of the migrations.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'shopledger_app') THEN
        CREATE ROLE shopledger_app NOLOGIN;
    END IF;
END
$$;
REVOKE ALL ON events FROM shopledger_app;
GRANT SELECT, INSERT ON events TO shopledger_app;
GRANT USAGE ON SEQUENCE events_position_seq TO shopledger_app;
GRANT SELECT, INSERT, UPDATE ON event_offsets TO shopledger_app;
GRANT SELECT ON log_clock TO shopledger_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON shop_connections, shop_credentials, oauth_pending TO shopledger_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON reconcile_state TO shopledger_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON projection_checkpoints, shops, products, product_variants, stock_movements,
    sales, sale_items, sales_daily TO shopledger_app;
GRANT SELECT, INSERT ON event_seal TO shopledger_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON alerter_shops, alerter_listings, alerter_variants,
    alert_channels, alert_webhook_secrets, alert_deliveries, alert_delivery_attempts, alerts TO shopledger_app;
GRANT SELECT, INSERT, UPDATE ON api_tokens TO shopledger_app;
GRANT SELECT, INSERT ON seal_anchors TO shopledger_app;
