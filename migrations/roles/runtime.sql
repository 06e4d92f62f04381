-- The runtime roles and what each may do, applied by `ledger migrate` after
-- every migration run. Roles belong to the cluster, not to a database, so a
-- dump restored into another cluster arrives without them (and its GRANTs
-- fail); applying this again re-creates the roles and their privileges.
--
-- The schema belongs to whoever runs `ledger migrate` (the migrator). Each
-- service logs in as a role of its own that owns nothing, so none can
-- disable the log's triggers, and holds only the privileges its code uses:
--
--   shopledger_app        (no login) read and append the log, keep consumer
--                         offsets; every service is a member
--   shopledger_ingest     webhooks, the fetcher, shop connections and
--                         credentials, reconciliation
--   shopledger_projector  read models, the seal and its signed heads, the
--                         alerter and alert delivery
--   shopledger_query      reads read models, the seal and alerts for
--                         sellers and auditors, API tokens, appends
--                         threshold facts through shopledger_app
--
-- pg_read_all_stats lets a service name the transaction holding the log's
-- horizon back (pg_stat_activity hides other roles' transaction ids).
-- Set passwords with ALTER ROLE ... PASSWORD where the server asks for one.
DO $$
DECLARE
    r text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'shopledger_app') THEN
        CREATE ROLE shopledger_app NOLOGIN;
    END IF;
    FOREACH r IN ARRAY ARRAY['shopledger_ingest', 'shopledger_projector', 'shopledger_query'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS', r);
        END IF;
        EXECUTE format('GRANT shopledger_app TO %I', r);
        EXECUTE format('GRANT pg_read_all_stats TO %I', r);
    END LOOP;
END
$$;

REVOKE ALL ON events FROM shopledger_app;
GRANT SELECT, INSERT ON events TO shopledger_app;
GRANT USAGE ON SEQUENCE events_position_seq TO shopledger_app;
GRANT SELECT, INSERT, UPDATE ON event_offsets TO shopledger_app;
GRANT SELECT ON log_clock TO shopledger_app;
-- Readers of the seal: the projector seals, query and the CLI check.
GRANT SELECT ON event_seal, event_seal_typed_from, seal_anchors TO shopledger_app;

-- Older releases granted these to shopledger_app; they now go to the one
-- service that uses them.
REVOKE ALL ON shop_connections, shop_credentials, oauth_pending, reconcile_state,
    ingest_parked_evidence, shop_token_refresh_leases,
    projection_checkpoints, shops, products, product_variants, stock_movements, sales, sale_items, sales_daily,
    alerter_shops, alerter_listings, alerter_variants, alert_channels, alert_webhook_secrets,
    alert_deliveries, alert_delivery_attempts, alerts, api_tokens FROM shopledger_app;
REVOKE INSERT ON event_seal, seal_anchors FROM shopledger_app;

GRANT SELECT, INSERT, UPDATE, DELETE ON shop_connections, shop_credentials, oauth_pending, reconcile_state,
    ingest_parked_evidence, shop_token_refresh_leases TO shopledger_ingest;

GRANT SELECT, INSERT, UPDATE, DELETE ON projection_checkpoints, shops, products, product_variants,
    stock_movements, sales, sale_items, sales_daily,
    alerter_shops, alerter_listings, alerter_variants, alert_deliveries, alert_delivery_attempts, alerts
    TO shopledger_projector;
GRANT SELECT ON alert_channels TO shopledger_projector;
-- The dispatcher makes a shop's signing secret on its first webhook delivery.
GRANT SELECT, INSERT ON alert_webhook_secrets TO shopledger_projector;
GRANT INSERT ON event_seal, seal_anchors TO shopledger_projector;

GRANT SELECT ON shops, products, product_variants, stock_movements, sales, sale_items, sales_daily,
    alerts, alert_deliveries, alert_delivery_attempts TO shopledger_query;
GRANT SELECT, UPDATE ON api_tokens TO shopledger_query;
-- The alert channels page: owners add and remove channels, rotate a
-- shop's webhook signing secret and queue test alerts into the outbox.
GRANT SELECT, INSERT, DELETE ON alert_channels TO shopledger_query;
GRANT SELECT, INSERT, UPDATE ON alert_webhook_secrets TO shopledger_query;
GRANT INSERT ON alert_deliveries TO shopledger_query;
-- An owner disconnects a shop from its page: its tokens are deleted (no
-- column of them is readable) and its connection marked disconnected.
GRANT SELECT, UPDATE ON shop_connections TO shopledger_query;
GRANT SELECT (shop_id), DELETE ON shop_credentials TO shopledger_query;
-- "Sync now" on the shop's page; ingest's scheduler reads the requests.
GRANT SELECT, INSERT, UPDATE ON shop_sync_requests TO shopledger_query;
GRANT SELECT ON shop_sync_requests TO shopledger_ingest;
GRANT SELECT ON goose_db_version TO shopledger_app;

-- Accounts: query serves sign-up, login, sessions, members, invitations,
-- self-service API tokens and the security audit trail (append-only: no
-- UPDATE or DELETE on it for anyone, and a trigger besides).
GRANT SELECT, INSERT, UPDATE, DELETE ON users, memberships, invitations, email_tokens, sessions, throttles
    TO shopledger_query;
GRANT SELECT, INSERT, UPDATE ON organisations TO shopledger_query;
GRANT SELECT, INSERT ON organisation_shops, account_mail, security_audit TO shopledger_query;
GRANT INSERT ON api_tokens TO shopledger_query;
-- Ingest records which organisation connected a shop and audits it.
GRANT SELECT, INSERT ON organisation_shops, security_audit TO shopledger_ingest;
GRANT SELECT ON organisations TO shopledger_ingest;
-- Connecting a shop from the app: query records the intent, ingest takes it.
GRANT SELECT, INSERT, DELETE ON connect_intents TO shopledger_query;
GRANT SELECT, DELETE ON connect_intents TO shopledger_ingest;
-- Every ingest instance draws on its app key's Etsy budget in the database.
GRANT SELECT, INSERT, UPDATE, DELETE ON etsy_rate_keys, etsy_rate_slots, etsy_rate_days TO shopledger_ingest;
-- Stock edits: query queues a seller's command with its event and shows
-- its state; ingest's pusher claims, pushes and marks.
GRANT SELECT, INSERT ON stock_edit_outbox TO shopledger_query;
GRANT SELECT, UPDATE ON stock_edit_outbox TO shopledger_ingest;
GRANT SELECT, INSERT, UPDATE, DELETE ON stock_edit_leases TO shopledger_ingest;
