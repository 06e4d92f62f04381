package alerts

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/textproto"
	"strings"
	"text/template"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/shopledger/shopledger/internal/defaults"
)

// SMTPConfig says how to hand alert emails to a mail server.
type SMTPConfig struct {
	// Addr is host:port of the submission server.
	Addr     string
	Username string
	// Password is never logged and never stored in the log.
	Password string
	From     string
	// StartTLS upgrades the connection before authenticating and fails
	// when the server does not offer it. Without it, credentials are only
	// sent to a loopback server.
	StartTLS bool
	// TLSConfig verifies the server; nil uses the system roots and the
	// host of Addr.
	TLSConfig *tls.Config
	// Timeout bounds one message, connection to QUIT. Default 30 s.
	Timeout time.Duration
}

// EmailSender delivers alerts as multipart (plain text and HTML) email.
type EmailSender struct {
	cfg   SMTPConfig
	from  *mail.Address
	links Links
	now   func() time.Time
}

// NewEmailSender returns a sender over cfg; links builds the link in each
// message, now stamps the Date header.
func NewEmailSender(cfg SMTPConfig, links Links, now func() time.Time) (*EmailSender, error) {
	if cfg.Addr == "" {
		return nil, errors.New("new email sender: SMTP address is required")
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("new email sender: SMTP address %q: %w", cfg.Addr, err)
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("new email sender: from address %q: %w", cfg.From, err)
	}
	defaults.Positive(&cfg.Timeout, 30*time.Second)
	if now == nil {
		now = time.Now
	}
	return &EmailSender{cfg: cfg, from: from, links: links, now: now}, nil
}

// Send implements Sender.
func (s *EmailSender) Send(ctx context.Context, o Outgoing) error {
	to, err := mail.ParseAddress(o.Target)
	if err != nil {
		return Permanent(fmt.Errorf("email address %q: %w", o.Target, err))
	}
	msg, err := s.compose(o, to)
	if err != nil {
		return Permanent(fmt.Errorf("compose email: %w", err))
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if err := s.submit(ctx, to.Address, msg); err != nil {
		return fmt.Errorf("send email: %w", err)
	}
	return nil
}

func (s *EmailSender) submit(ctx context.Context, rcpt string, msg []byte) error {
	host, _, _ := net.SplitHostPort(s.cfg.Addr)
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// Closing the connection is what interrupts a stuck exchange when ctx
	// ends before the deadline.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	var c *smtp.Client
	if s.cfg.StartTLS {
		tc := s.cfg.TLSConfig
		if tc == nil {
			tc = &tls.Config{}
		} else {
			tc = tc.Clone()
		}
		if tc.ServerName == "" {
			tc.ServerName = host
		}
		if c, err = smtp.NewClientStartTLS(conn, tc); err != nil {
			conn.Close()
			return fmt.Errorf("starttls: %w", err)
		}
	} else {
		c = smtp.NewClient(conn)
	}
	defer c.Close()
	if s.cfg.Username != "" {
		if !s.cfg.StartTLS && !isLoopback(host) {
			return Permanent(errors.New("refusing to send SMTP credentials without STARTTLS"))
		}
		if err := c.Auth(sasl.NewPlainClient("", s.cfg.Username, s.cfg.Password)); err != nil {
			// The server's answer, never the credentials.
			return fmt.Errorf("auth as %s: %w", s.cfg.Username, err)
		}
	}
	if err := c.SendMail(s.from.Address, []string{rcpt}, bytes.NewReader(msg)); err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) && (se.Code == 550 || se.Code == 551 || se.Code == 553) {
			// Mailbox unknown or address refused: retrying changes nothing.
			return Permanent(err)
		}
		return err
	}
	return c.Quit()
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// HeaderAlertID names the alert in an email, so receivers and tests can
// tell one alert's mails apart; Message-ID carries it too.
const HeaderAlertID = "X-Shopledger-Alert-Id"

type emailData struct {
	Message
	Shop, Listing, Variant, Link string
}

var textBody = template.Must(template.New("text").Parse(`Low stock in {{.Shop}}

{{.Listing}} — {{.Variant}}
Quantity: {{.Quantity}} (threshold {{.Threshold}})
Shop: {{.Shop}} ({{.ShopID}})
Listing: {{.Listing}} ({{.ListingID}})
Variant: {{.Variant}} ({{.VariantKey}})
{{if .Link}}
See the alert: {{.Link}}
{{end}}{{if .ListingURL}}Listing on Etsy: {{.ListingURL}}
{{end}}
Alert {{.AlertID}}, raised {{.RaisedAt.Format "2006-01-02 15:04 MST"}}.
`))

var htmlBody = htmltemplate.Must(htmltemplate.New("html").Parse(`<!doctype html>
<html><body>
<h2>Low stock in {{.Shop}}</h2>
<p><strong>{{.Listing}}</strong> — {{.Variant}}</p>
<table>
<tr><th align="left">Quantity</th><td>{{.Quantity}}</td></tr>
<tr><th align="left">Threshold</th><td>{{.Threshold}}</td></tr>
<tr><th align="left">Shop</th><td>{{.Shop}} ({{.ShopID}})</td></tr>
<tr><th align="left">Listing</th><td>{{.Listing}} ({{.ListingID}})</td></tr>
<tr><th align="left">Variant</th><td>{{.Variant}} ({{.VariantKey}})</td></tr>
</table>
{{if .Link}}<p><a href="{{.Link}}">See the alert</a></p>{{end}}
{{if .ListingURL}}<p><a href="{{.ListingURL}}">Listing on Etsy</a></p>{{end}}
<p><small>Alert {{.AlertID}}, raised {{.RaisedAt.Format "2006-01-02 15:04 MST"}}.</small></p>
</body></html>
`))

// compose builds the RFC 5322 message with a text/plain and a text/html
// alternative.
func (s *EmailSender) compose(o Outgoing, to *mail.Address) ([]byte, error) {
	m := o.Message
	data := emailData{Message: m, Shop: m.Shop(), Listing: m.Listing(), Variant: m.Variant(), Link: s.links.Of(m)}
	var text, html bytes.Buffer
	if err := textBody.Execute(&text, data); err != nil {
		return nil, err
	}
	if err := htmlBody.Execute(&html, data); err != nil {
		return nil, err
	}

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, part := range []struct {
		contentType string
		content     []byte
	}{{"text/plain; charset=utf-8", text.Bytes()}, {"text/html; charset=utf-8", html.Bytes()}} {
		w, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {part.contentType},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, err
		}
		qp := quotedprintable.NewWriter(w)
		if _, err := qp.Write(part.content); err != nil {
			return nil, err
		}
		if err := qp.Close(); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}

	subject := fmt.Sprintf("Low stock: %s — %s (%d left, threshold %d)", m.Listing(), m.Variant(), m.Quantity, m.Threshold)
	var msg bytes.Buffer
	for _, h := range [][2]string{
		{"From", s.from.String()},
		{"To", to.String()},
		// Titles come from Etsy: no line break may reach a header.
		{"Subject", mime.QEncoding.Encode("utf-8", strings.NewReplacer("\r", " ", "\n", " ").Replace(subject))},
		{"Date", s.now().UTC().Format(time.RFC1123Z)},
		{"Message-ID", "<" + m.AlertID + "@alerts.shopledger>"},
		{HeaderAlertID, m.AlertID},
		{"MIME-Version", "1.0"},
		{"Content-Type", "multipart/alternative; boundary=" + mw.Boundary()},
	} {
		fmt.Fprintf(&msg, "%s: %s\r\n", h[0], h[1])
	}
	msg.WriteString("\r\n")
	msg.Write(body.Bytes())
	return msg.Bytes(), nil
}

// Links builds the links in alert messages.
type Links struct {
	// Base is where sellers reach the query service (its pages and API), e.g.
	// https://ledger.example.com; empty leaves links out.
	Base string
}

// Alert returns the link to one alert's page in the web app (a person
// opens it in a browser: the API's /v1/alerts/{id} wants a token), or ""
// without a base. Logged out, the page sends the browser to log in and
// back.
func (l Links) Alert(alertID string) string {
	if l.Base == "" {
		return ""
	}
	return strings.TrimRight(l.Base, "/") + "/alerts/" + alertID
}

// Of returns the link a message carries: its alert's page, or for a test
// alert, which has no page, the alert channels page where its result
// shows.
func (l Links) Of(m Message) string {
	if m.Test && l.Base != "" {
		return strings.TrimRight(l.Base, "/") + "/channels"
	}
	return l.Alert(m.AlertID)
}
