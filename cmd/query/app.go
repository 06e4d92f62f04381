package main

// The seller's pages (sign up, log in, members, tokens, the audit trail):
// their settings and wiring. run mounts them at / beside the API's /v1.

import (
	"database/sql"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/shopledger/shopledger/accounts"
	"github.com/shopledger/shopledger/alerts"
	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/httpapi"
	"github.com/shopledger/shopledger/reconcile"
	"github.com/shopledger/shopledger/service"
	shopconn "github.com/shopledger/shopledger/shops"
	"github.com/shopledger/shopledger/tokens"
	"github.com/shopledger/shopledger/webapp"
)

// appConfig is read from SHOPLEDGER_APP_*, SHOPLEDGER_SESSION_* and the
// SHOPLEDGER_SMTP_* settings the projector's alert e-mails use too.
type appConfig struct {
	// QueryTimeout bounds each query of the pages' log export, as the
	// API's SHOPLEDGER_QUERY_TIMEOUT bounds its own.
	QueryTimeout time.Duration
	// TokenKeys seal the alert webhook signing secrets (as ingest's seal
	// the shops' OAuth tokens, and the projector opens them to sign).
	TokenKeys string
	// URL is the pages' public address, the start of every e-mailed link.
	URL           string
	SessionSecure bool
	SessionIdle   time.Duration
	SessionMaxAge time.Duration
	SMTPAddr      string
	SMTPUsername  string
	SMTPPassword  string
	SMTPFrom      string
	SMTPStartTLS  bool
	TokenMaxTTL   time.Duration
	// ConnectURL is ingest's public /connect/etsy.
	ConnectURL string
	// ConsentURL is Etsy's consent page, where ingest sends the browser
	// on from ConnectURL: the pages' form-action allows its origin.
	ConsentURL string
}

func loadAppConfig(env *service.Env, addr string) appConfig {
	c := appConfig{
		URL:           env.String("SHOPLEDGER_APP_URL", "http://"+addr),
		SessionIdle:   env.Duration("SHOPLEDGER_SESSION_IDLE", 12*time.Hour),
		SessionMaxAge: env.Duration("SHOPLEDGER_SESSION_MAX_AGE", 7*24*time.Hour),
		SMTPAddr:      env.String("SHOPLEDGER_SMTP_ADDR", ""),
		SMTPUsername:  env.String("SHOPLEDGER_SMTP_USERNAME", ""),
		SMTPPassword:  env.String("SHOPLEDGER_SMTP_PASSWORD", ""),
		SMTPFrom:      env.String("SHOPLEDGER_SMTP_FROM", "Shopledger <accounts@localhost>"),
		SMTPStartTLS:  env.Bool("SHOPLEDGER_SMTP_STARTTLS", true),
		TokenMaxTTL:   env.Duration("SHOPLEDGER_APP_TOKEN_MAX_TTL", 365*24*time.Hour),
		TokenKeys:     env.String("SHOPLEDGER_TOKEN_KEYS", ""),
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" && u.Path != "/" {
		env.Fail("SHOPLEDGER_APP_URL: %q is not an http(s) URL of a site's root", c.URL)
		return c
	}
	// Behind the compose proxy ingest's /connect/etsy shares the app's
	// host; make run points it at ingest's own port.
	c.ConnectURL = httpURL(env, "SHOPLEDGER_APP_CONNECT_URL", strings.TrimRight(c.URL, "/")+"/connect/etsy")
	c.ConsentURL = httpURL(env, "SHOPLEDGER_ETSY_OAUTH_AUTHORIZE_URL", etsy.DefaultAuthURL)
	// Secure cookies by default wherever the app is served over HTTPS.
	c.SessionSecure = env.Bool("SHOPLEDGER_SESSION_SECURE", u.Scheme == "https")
	if c.SessionSecure && u.Scheme != "https" {
		env.Fail("SHOPLEDGER_APP_URL is %q but SHOPLEDGER_SESSION_SECURE is on: a browser would never send the session cookie back over plain HTTP; use https or set SHOPLEDGER_SESSION_SECURE=false on a development machine", c.URL)
	}
	if c.SessionIdle < time.Minute || c.SessionMaxAge < c.SessionIdle {
		env.Fail("SHOPLEDGER_SESSION_IDLE must be at least 1m and at most SHOPLEDGER_SESSION_MAX_AGE")
	}
	if c.SMTPPassword != "" && c.SMTPUsername == "" {
		env.Fail("SHOPLEDGER_SMTP_PASSWORD is set without SHOPLEDGER_SMTP_USERNAME")
	}
	return c
}

// httpURL reads an http(s) URL with a host from name.
func httpURL(env *service.Env, name, def string) string {
	v := env.String(name, def)
	if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		env.Fail("%s: %q is not an http(s) URL", name, v)
	}
	return v
}

func (c appConfig) logAttrs() []any {
	return []any{"app_url", c.URL, "connect_url", c.ConnectURL, "consent_url", c.ConsentURL, "session_secure", c.SessionSecure, "session_idle", c.SessionIdle.String(),
		"session_max_age", c.SessionMaxAge.String(), "smtp_addr", c.SMTPAddr, "smtp_username", c.SMTPUsername,
		"smtp_password", service.Mask(c.SMTPPassword), "smtp_from", c.SMTPFrom, "smtp_starttls", c.SMTPStartTLS}
}

// newApp builds the pages over db. Without SHOPLEDGER_SMTP_ADDR the
// accounts' e-mails are recorded as pending and never claimed sent.
func newApp(c appConfig, db *sql.DB, shops webapp.Shops, data httpapi.Readers, edits webapp.StockEdits, clientAddr func(*http.Request) string, logger *slog.Logger) (http.Handler, error) {
	var mailer accounts.Mailer
	if c.SMTPAddr != "" {
		m, err := accounts.NewSMTPMailer(accounts.SMTPConfig{Addr: c.SMTPAddr, Username: c.SMTPUsername, Password: c.SMTPPassword, From: c.SMTPFrom, StartTLS: c.SMTPStartTLS})
		if err != nil {
			return nil, fmt.Errorf("accounts mail: %w", err)
		}
		mailer = m
	} else {
		logger.Warn("SHOPLEDGER_SMTP_ADDR is unset: verification, reset and invitation e-mails stay pending")
	}
	store, err := accounts.New(accounts.Config{
		DB: db, Logger: logger, Mailer: mailer, BaseURL: c.URL,
		Sessions: accounts.SessionConfig{Idle: c.SessionIdle, Absolute: c.SessionMaxAge, Secure: c.SessionSecure},
	})
	if err != nil {
		return nil, err
	}
	channels := alerts.NewChannels(db)
	if c.TokenKeys != "" {
		keys, err := shopconn.ParseKeyring(c.TokenKeys)
		if err != nil {
			return nil, fmt.Errorf("SHOPLEDGER_TOKEN_KEYS: %w", err)
		}
		channels = channels.WithSecretBox(keys)
	} else {
		logger.Warn("SHOPLEDGER_TOKEN_KEYS is unset: alert webhook signing secrets are stored unencrypted")
	}
	control, err := shopconn.NewStore(shopconn.Config{DB: db, Events: eventstore.New(db), Logger: logger}, nil)
	if err != nil {
		return nil, err
	}
	return webapp.New(webapp.Config{
		Accounts: store, Tokens: tokens.NewStore(db), Shops: shops, Logger: logger,
		ClientAddress: clientAddr, TokenMaxTTL: c.TokenMaxTTL, ConnectURL: c.ConnectURL, ConsentURL: c.ConsentURL, Data: data,
		QueryTimeout: c.QueryTimeout, Channels: channels,
		ShopControl: control, SyncNow: reconcile.SyncRequests{DB: db}, StockEdits: edits,
	})
}
