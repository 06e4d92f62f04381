-- +goose Up
-- Seller accounts: people (users), the organisations they belong to and
-- with which role, the shops each organisation owns, browser sessions,
-- single-use e-mailed links, login throttling and the security audit
-- trail. None of it is an Etsy fact, so none of it is in the event log;
-- secrets (passwords, session ids, link tokens) are stored only as hashes.

-- E-mail addresses are compared case-insensitively: email holds the
-- address as typed, email_key its lower-cased form, unique.
CREATE TABLE users (
    id                   uuid        NOT NULL PRIMARY KEY,
    email                text        NOT NULL CHECK (email <> ''),
    email_key            text        NOT NULL UNIQUE CHECK (email_key = lower(email)),
    -- PHC string: $argon2id$v=19$m=…,t=…,p=…$salt$hash, so parameters can
    -- change without invalidating older hashes.
    password_hash        text        NOT NULL,
    display_name         text        NOT NULL DEFAULT '',
    -- IANA time zone name (Europe/Paris); the pages and daily series use it.
    timezone             text        NOT NULL DEFAULT 'UTC',
    verified_at          timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    password_changed_at  timestamptz NOT NULL DEFAULT now()
);

-- An organisation owns shops; members act on them by role. etsy_user_id
-- names the Etsy seller whose shops and API tokens an organisation took
-- over from the tenancy before organisations (one organisation per Etsy
-- user id), and the organisation a shop connected by an operator joins.
CREATE TABLE organisations (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text        NOT NULL CHECK (name <> ''),
    etsy_user_id  bigint      UNIQUE CHECK (etsy_user_id > 0),
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE memberships (
    org_id      bigint      NOT NULL REFERENCES organisations (id),
    user_id     uuid        NOT NULL REFERENCES users (id),
    role        text        NOT NULL CHECK (role IN ('owner', 'staff', 'auditor')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id);

-- Which organisation owns a shop: the one tenancy rule every reader uses.
CREATE TABLE organisation_shops (
    shop_id     bigint      NOT NULL PRIMARY KEY CHECK (shop_id > 0),
    org_id      bigint      NOT NULL REFERENCES organisations (id),
    added_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX organisation_shops_org_idx ON organisation_shops (org_id, shop_id);

-- Invitations: only the SHA-256 of the e-mailed token is stored; taking
-- one sets accepted_at, so it works once.
CREATE TABLE invitations (
    id           uuid        NOT NULL PRIMARY KEY,
    org_id       bigint      NOT NULL REFERENCES organisations (id),
    email        text        NOT NULL,
    role         text        NOT NULL CHECK (role IN ('owner', 'staff', 'auditor')),
    token_hash   bytea       NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    invited_by   uuid        REFERENCES users (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    accepted_at  timestamptz,
    accepted_by  uuid        REFERENCES users (id),
    revoked_at   timestamptz
);
CREATE INDEX invitations_org_idx ON invitations (org_id, created_at);

-- Single-use links sent by e-mail: verify an address, reset a password,
-- confirm a new address. Hash only; used_at makes them single-use.
CREATE TABLE email_tokens (
    token_hash  bytea       NOT NULL PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     text        NOT NULL CHECK (purpose IN ('verify', 'reset', 'change_email')),
    -- The address a change_email link confirms.
    new_email   text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX email_tokens_user_idx ON email_tokens (user_id, purpose);

-- Browser sessions. The cookie holds 256 random bits; the table only
-- their SHA-256. org_id is the organisation the session acts for.
CREATE TABLE sessions (
    id_hash       bytea       NOT NULL PRIMARY KEY CHECK (length(id_hash) = 32),
    user_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id        bigint      REFERENCES organisations (id),
    created_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    -- Absolute end, whatever the activity.
    expires_at    timestamptz NOT NULL,
    address       text        NOT NULL DEFAULT '',
    user_agent    text        NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

-- Throttle counters: failed logins per account and per client address,
-- e-mails sent per address and per account. key is 'login-account:<email>',
-- 'login-address:<ip>', 'mail:<email>'…; one row per key, reset when its
-- window ends.
CREATE TABLE throttles (
    key           text        NOT NULL PRIMARY KEY,
    count         integer     NOT NULL,
    window_start  timestamptz NOT NULL,
    locked_until  timestamptz
);

-- E-mails the accounts send (verification, reset, invitations). The body
-- is never stored: it holds single-use links. status is 'pending' while no
-- mail server is configured or it has not answered yet.
CREATE TABLE account_mail (
    id          uuid        NOT NULL PRIMARY KEY,
    recipient   text        NOT NULL,
    kind        text        NOT NULL,
    subject     text        NOT NULL,
    status      text        NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    detail      text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);
CREATE INDEX account_mail_created_idx ON account_mail (created_at);

-- The security audit trail: append-only, like the event log, enforced by
-- a trigger. actor_id is the user (NULL for an anonymous attempt), actor
-- the e-mail or token as typed, so failed logins of unknown addresses are
-- recorded too.
CREATE TABLE security_audit (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    org_id      bigint      REFERENCES organisations (id),
    actor_id    uuid        REFERENCES users (id),
    actor       text        NOT NULL DEFAULT '',
    action      text        NOT NULL,
    target      text        NOT NULL DEFAULT '',
    address     text        NOT NULL DEFAULT '',
    user_agent  text        NOT NULL DEFAULT '',
    detail      jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX security_audit_org_idx ON security_audit (org_id, id);
CREATE INDEX security_audit_actor_idx ON security_audit (actor_id, id);

-- +goose StatementBegin
CREATE FUNCTION security_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'security_audit is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
-- +goose StatementEnd
CREATE TRIGGER security_audit_no_update BEFORE UPDATE OR DELETE ON security_audit
    FOR EACH ROW EXECUTE FUNCTION security_audit_append_only();
CREATE TRIGGER security_audit_no_truncate BEFORE TRUNCATE ON security_audit
    FOR EACH STATEMENT EXECUTE FUNCTION security_audit_append_only();

-- The tenancy before organisations: a shop belonged to an Etsy user id and
-- an API token named that id. Each such id becomes an organisation that
-- owns the same shops and tokens, so no token loses access.
INSERT INTO organisations (name, etsy_user_id)
SELECT 'Etsy seller ' || u, u FROM (
    SELECT user_id AS u FROM shops WHERE user_id > 0
    UNION SELECT user_id FROM shop_connections WHERE user_id > 0
    UNION SELECT seller_id FROM api_tokens
) ids ORDER BY u;

INSERT INTO organisation_shops (shop_id, org_id)
SELECT s.shop_id, o.id FROM (
    SELECT shop_id, user_id FROM shops WHERE user_id > 0
    UNION SELECT shop_id, user_id FROM shop_connections WHERE user_id > 0
) s JOIN organisations o ON o.etsy_user_id = s.user_id
ON CONFLICT (shop_id) DO NOTHING;

-- API tokens belong to an organisation, and self-service ones to the
-- member who made them too: a token never outlives its member's access.
-- seller_id stays for tokens an operator makes by Etsy user id.
ALTER TABLE api_tokens ADD COLUMN org_id bigint REFERENCES organisations (id);
ALTER TABLE api_tokens ADD COLUMN user_id uuid REFERENCES users (id);
UPDATE api_tokens t SET org_id = o.id FROM organisations o WHERE o.etsy_user_id = t.seller_id;
ALTER TABLE api_tokens ALTER COLUMN seller_id DROP NOT NULL;
ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_seller_id_check;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_seller_id_check CHECK (seller_id > 0);
CREATE INDEX api_tokens_org_idx ON api_tokens (org_id, created_at);

-- A token made by seller id (ledger tokens create, older code) joins that
-- seller's organisation, which is created on first use.
-- +goose StatementBegin
CREATE FUNCTION api_tokens_organisation() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public AS $$
BEGIN
    IF NEW.org_id IS NULL THEN
        IF NEW.seller_id IS NULL THEN
            RAISE EXCEPTION 'api token needs an organisation or a seller id';
        END IF;
        NEW.org_id := organisation_of_seller(NEW.seller_id);
    END IF;
    RETURN NEW;
END
$$;
CREATE FUNCTION organisation_of_seller(seller bigint) RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public AS $$
DECLARE
    org bigint;
BEGIN
    INSERT INTO organisations (name, etsy_user_id) VALUES ('Etsy seller ' || seller, seller)
    ON CONFLICT (etsy_user_id) DO NOTHING;
    SELECT id INTO org FROM organisations WHERE etsy_user_id = seller;
    RETURN org;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER api_tokens_organisation BEFORE INSERT ON api_tokens
    FOR EACH ROW EXECUTE FUNCTION api_tokens_organisation();
ALTER TABLE api_tokens ALTER COLUMN org_id SET NOT NULL;
REVOKE ALL ON FUNCTION organisation_of_seller(bigint) FROM PUBLIC;

-- A shop connected by an operator (ledger shops connect) joins the
-- organisation of its Etsy seller unless an organisation already owns it.
-- A restore (ledger restore) copies organisation_shops as the source held
-- them, so its rows are left alone.
-- +goose StatementBegin
CREATE FUNCTION shop_connections_organisation() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public AS $$
BEGIN
    IF current_setting('shopledger.restoring', true) = 'on' THEN
        RETURN NEW;
    END IF;
    IF NEW.user_id > 0 AND NOT EXISTS (SELECT 1 FROM organisation_shops WHERE shop_id = NEW.shop_id) THEN
        INSERT INTO organisation_shops (shop_id, org_id)
        VALUES (NEW.shop_id, organisation_of_seller(NEW.user_id))
        ON CONFLICT (shop_id) DO NOTHING;
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER shop_connections_organisation AFTER INSERT OR UPDATE OF user_id ON shop_connections
    FOR EACH ROW EXECUTE FUNCTION shop_connections_organisation();

-- +goose Down
DROP TRIGGER shop_connections_organisation ON shop_connections;
DROP FUNCTION shop_connections_organisation();
DROP TRIGGER api_tokens_organisation ON api_tokens;
DROP FUNCTION api_tokens_organisation();
DROP FUNCTION organisation_of_seller(bigint);
DELETE FROM api_tokens WHERE seller_id IS NULL;
ALTER TABLE api_tokens DROP COLUMN user_id;
ALTER TABLE api_tokens DROP COLUMN org_id;
ALTER TABLE api_tokens ALTER COLUMN seller_id SET NOT NULL;
DROP TABLE security_audit;
DROP FUNCTION security_audit_append_only();
DROP TABLE account_mail;
DROP TABLE throttles;
DROP TABLE sessions;
DROP TABLE email_tokens;
DROP TABLE invitations;
DROP TABLE organisation_shops;
DROP TABLE memberships;
DROP TABLE organisations;
DROP TABLE users;
