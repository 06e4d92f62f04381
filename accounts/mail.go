package accounts

import (
	"bytes"
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/mail"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/google/uuid"

	"github.com/shopledger/shopledger/internal/defaults"
)

// Message is one plain-text e-mail.
type Message struct {
	To      string
	Subject string
	Body    string
}

// Mailer hands messages to a mail server.
type Mailer interface {
	Send(ctx context.Context, m Message) error
}

// SMTPConfig says how to reach the mail server.
type SMTPConfig struct {
	Addr     string // host:port
	Username string
	Password string
	From     string
	// StartTLS upgrades the connection before authenticating. Without it
	// credentials are only sent to a loopback server.
	StartTLS bool
	Timeout  time.Duration
}

// SMTPMailer sends over SMTP submission.
type SMTPMailer struct {
	cfg  SMTPConfig
	from *mail.Address
	now  func() time.Time
}

// NewSMTPMailer checks cfg.
func NewSMTPMailer(cfg SMTPConfig) (*SMTPMailer, error) {
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("smtp mailer: address %q: %w", cfg.Addr, err)
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("smtp mailer: from address %q: %w", cfg.From, err)
	}
	defaults.Positive(&cfg.Timeout, 30*time.Second)
	return &SMTPMailer{cfg: cfg, from: from, now: time.Now}, nil
}

// Send implements Mailer.
func (m *SMTPMailer) Send(ctx context.Context, msg Message) error {
	to, err := mail.ParseAddress(msg.To)
	if err != nil {
		return fmt.Errorf("send mail: recipient %q: %w", msg.To, err)
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", m.cfg.Addr)
	if err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	host, _, _ := net.SplitHostPort(m.cfg.Addr)
	var c *smtp.Client
	if m.cfg.StartTLS {
		if c, err = smtp.NewClientStartTLS(conn, &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}); err != nil {
			conn.Close()
			return fmt.Errorf("send mail: starttls: %w", err)
		}
	} else {
		c = smtp.NewClient(conn)
	}
	defer c.Close()
	if m.cfg.Username != "" {
		if ip := net.ParseIP(host); !m.cfg.StartTLS && (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			return errors.New("send mail: refusing to send credentials without STARTTLS to a remote server")
		}
		if err := c.Auth(sasl.NewPlainClient("", m.cfg.Username, m.cfg.Password)); err != nil {
			return fmt.Errorf("send mail: auth: %w", err)
		}
	}
	var body bytes.Buffer
	fmt.Fprintf(&body, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@shopledger>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\nAuto-Submitted: auto-generated\r\n\r\n",
		m.from.String(), to.String(), mime.QEncoding.Encode("utf-8", msg.Subject), m.now().UTC().Format(time.RFC1123Z), uuid.NewString())
	body.WriteString(crlf(msg.Body))
	if err := c.SendMail(m.from.Address, []string{to.Address}, &body); err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	return c.Quit()
}

func crlf(s string) string {
	var b bytes.Buffer
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' && (i == 0 || s[i-1] != '\r') {
			b.WriteByte('\r')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// MailRecord is one e-mail the accounts sent or tried to send.
type MailRecord struct {
	ID        uuid.UUID
	Recipient string
	Kind      string
	Subject   string
	Status    string
	Detail    string
	CreatedAt time.Time
}

// sendMail records the message and hands it to the mailer. The body is
// never stored (it holds single-use links). Without a mailer the record
// stays pending, visible to an operator, and nothing claims it was sent.
func (s *Store) sendMail(ctx context.Context, kind string, m Message) {
	id, _ := uuid.NewV7()
	status, detail := "pending", "no mail server is configured"
	if s.mailer != nil {
		if err := s.mailer.Send(ctx, m); err != nil {
			status, detail = "failed", err.Error()
			s.log.WarnContext(ctx, "account e-mail not sent", "kind", kind, "err", err)
		} else {
			status, detail = "sent", ""
		}
	} else {
		s.log.WarnContext(ctx, "account e-mail left pending: no mail server is configured", "kind", kind)
	}
	var sent any
	if status == "sent" {
		sent = s.now().UTC()
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO account_mail (id, recipient, kind, subject, status, detail, created_at, sent_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, id, m.To, kind, m.Subject, status, truncate(detail, 500), s.now().UTC(), sent); err != nil {
		s.log.ErrorContext(ctx, "record account e-mail", "kind", kind, "err", err)
	}
}

// Mail lists the e-mails recorded, newest first: what an operator checks
// when a seller says no e-mail came.
func (s *Store) Mail(ctx context.Context, limit int) ([]MailRecord, error) {
	return queryAll(ctx, s.db, "list account mail", func(rows *sql.Rows) (MailRecord, error) {
		var r MailRecord
		err := rows.Scan(&r.ID, &r.Recipient, &r.Kind, &r.Subject, &r.Status, &r.Detail, &r.CreatedAt)
		return r, err
	}, `SELECT id, recipient, kind, subject, status, detail, created_at FROM account_mail ORDER BY created_at DESC LIMIT $1`, limit)
}
