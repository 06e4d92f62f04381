package main

import (
	"context"
	"fmt"
	"time"

	"github.com/shopledger/shopledger/alerts"
	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/projections/engine"
	"github.com/shopledger/shopledger/service"
	"github.com/shopledger/shopledger/shops"
)

// The alerts plugin runs the alerter (its own consumer group, appending
// low-stock alerts), the alerts read model, and the delivery loop that
// works the outbox apart from the consumers, so a mail outage never holds
// up the log.
func init() {
	plugins = append(plugins, plugin{name: "alerts", setup: setupAlerts})
}

// alertsConfig is what the alerts plugin reads from SHOPLEDGER_* variables.
type alertsConfig struct {
	DefaultThreshold    int64
	Cooldown            time.Duration
	LinkBase            string
	SMTPAddr            string
	SMTPUsername        string
	SMTPPassword        string
	SMTPFrom            string
	SMTPStartTLS        bool
	SMTPTimeout         time.Duration
	WebhookTimeout      time.Duration
	WebhookAllowPrivate bool
	DispatchInterval    time.Duration
	RetryFor            time.Duration
	InitialBackoff      time.Duration
	MaxBackoff          time.Duration
	// TokenKeys (SHOPLEDGER_TOKEN_KEYS, as ingest and query have them)
	// open the shops' webhook signing secrets, stored sealed.
	TokenKeys string
}

func loadAlertsConfig(d deps) alertsConfig {
	env := d.env
	c := alertsConfig{
		DefaultThreshold:    env.Int("SHOPLEDGER_DEFAULT_LOW_STOCK_THRESHOLD", domain.DefaultLowStockThreshold),
		Cooldown:            env.Duration("SHOPLEDGER_ALERT_COOLDOWN", time.Hour),
		LinkBase:            env.String("SHOPLEDGER_ALERT_LINK_BASE", "http://127.0.0.1:8080"),
		SMTPAddr:            env.String("SHOPLEDGER_SMTP_ADDR", ""),
		SMTPUsername:        env.String("SHOPLEDGER_SMTP_USERNAME", ""),
		SMTPPassword:        env.String("SHOPLEDGER_SMTP_PASSWORD", ""),
		SMTPFrom:            env.String("SHOPLEDGER_SMTP_FROM", "Shopledger <alerts@localhost>"),
		SMTPStartTLS:        env.Bool("SHOPLEDGER_SMTP_STARTTLS", true),
		SMTPTimeout:         env.Duration("SHOPLEDGER_SMTP_TIMEOUT", 30*time.Second),
		WebhookTimeout:      env.Duration("SHOPLEDGER_ALERT_WEBHOOK_TIMEOUT", 15*time.Second),
		WebhookAllowPrivate: env.Bool("SHOPLEDGER_ALERT_WEBHOOK_ALLOW_PRIVATE", false),
		DispatchInterval:    env.Duration("SHOPLEDGER_ALERT_DISPATCH_INTERVAL", 5*time.Second),
		RetryFor:            env.Duration("SHOPLEDGER_ALERT_RETRY_FOR", 24*time.Hour),
		InitialBackoff:      env.Duration("SHOPLEDGER_ALERT_BACKOFF_INITIAL", 30*time.Second),
		MaxBackoff:          env.Duration("SHOPLEDGER_ALERT_BACKOFF_MAX", time.Hour),
		TokenKeys:           env.String("SHOPLEDGER_TOKEN_KEYS", ""),
	}
	if c.DefaultThreshold < 0 {
		env.Fail("SHOPLEDGER_DEFAULT_LOW_STOCK_THRESHOLD: %d is negative", c.DefaultThreshold)
	}
	if c.Cooldown < 0 {
		env.Fail("SHOPLEDGER_ALERT_COOLDOWN: %s is negative", c.Cooldown)
	}
	for _, v := range []struct {
		name string
		d    time.Duration
	}{
		{"SHOPLEDGER_SMTP_TIMEOUT", c.SMTPTimeout}, {"SHOPLEDGER_ALERT_WEBHOOK_TIMEOUT", c.WebhookTimeout},
		{"SHOPLEDGER_ALERT_DISPATCH_INTERVAL", c.DispatchInterval}, {"SHOPLEDGER_ALERT_RETRY_FOR", c.RetryFor},
		{"SHOPLEDGER_ALERT_BACKOFF_INITIAL", c.InitialBackoff}, {"SHOPLEDGER_ALERT_BACKOFF_MAX", c.MaxBackoff},
	} {
		if v.d <= 0 {
			env.Fail("%s: must be positive", v.name)
		}
	}
	if c.SMTPPassword != "" && c.SMTPUsername == "" {
		env.Fail("SHOPLEDGER_SMTP_PASSWORD is set without SHOPLEDGER_SMTP_USERNAME")
	}
	return c
}

func setupAlerts(d deps) ([]engine.Projection, []func(context.Context) error, error) {
	c := loadAlertsConfig(d)
	if err := d.env.Err(); err != nil {
		// run reports every configuration error together.
		return nil, nil, nil
	}
	logger := d.logger.With("component", "alerts")
	logger.Info("alerts configured",
		"default_threshold", c.DefaultThreshold, "cooldown", c.Cooldown.String(), "link_base", c.LinkBase,
		"smtp_addr", c.SMTPAddr, "smtp_username", c.SMTPUsername, "smtp_password", service.Mask(c.SMTPPassword),
		"smtp_from", c.SMTPFrom, "smtp_starttls", c.SMTPStartTLS, "webhook_allow_private", c.WebhookAllowPrivate,
		"retry_for", c.RetryFor.String())

	alerter, err := alerts.NewAlerter(d.store, alerts.AlerterConfig{DefaultThreshold: c.DefaultThreshold, Cooldown: c.Cooldown}, logger, d.reg)
	if err != nil {
		return nil, nil, err
	}
	links := alerts.Links{Base: c.LinkBase}
	channels := alerts.NewChannels(d.db)
	if c.TokenKeys != "" {
		keys, err := shops.ParseKeyring(c.TokenKeys)
		if err != nil {
			return nil, nil, fmt.Errorf("SHOPLEDGER_TOKEN_KEYS: %w", err)
		}
		channels = channels.WithSecretBox(keys)
	} else {
		logger.Warn("SHOPLEDGER_TOKEN_KEYS is not set: alert webhook signing secrets are stored unencrypted")
	}
	client := alerts.NewHTTPClient(c.WebhookTimeout, c.WebhookAllowPrivate)
	senders := map[string]alerts.Sender{
		alerts.KindWebhook: alerts.NewWebhookSender(client, channels, links, time.Now),
		alerts.KindSlack:   alerts.NewSlackSender(client, links),
	}
	if c.SMTPAddr != "" {
		email, err := alerts.NewEmailSender(alerts.SMTPConfig{
			Addr: c.SMTPAddr, Username: c.SMTPUsername, Password: c.SMTPPassword, From: c.SMTPFrom,
			StartTLS: c.SMTPStartTLS, Timeout: c.SMTPTimeout,
		}, links, time.Now)
		if err != nil {
			return nil, nil, err
		}
		senders[alerts.KindEmail] = email
	} else {
		logger.Warn("SHOPLEDGER_SMTP_ADDR is not set: e-mail deliveries wait, pending, until a projector runs with it")
	}
	dispatcher, err := alerts.NewDispatcher(d.db, alerts.DispatcherConfig{
		Senders: senders, InitialBackoff: c.InitialBackoff, MaxBackoff: c.MaxBackoff, GiveUpAfter: c.RetryFor,
	}, logger, d.reg)
	if err != nil {
		return nil, nil, err
	}
	deliver := func(ctx context.Context) error { return dispatcher.Run(ctx, c.DispatchInterval) }
	return []engine.Projection{alerter, alerts.NewReadModel()}, []func(context.Context) error{deliver}, nil
}
