// Package inbox is a local mail sink for development: an SMTP server that
// keeps every message it is handed in memory, and a page that lists them,
// so a newcomer running the system on one machine can read what it sends
// (verification and reset links, invitations, low-stock alerts) without a
// real mail server. It delivers nothing anywhere.
package inbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/shopledger/shopledger/internal/defaults"
)

// Message is one message the sink received.
type Message struct {
	ID       int
	At       time.Time
	From     string
	To       []string
	Subject  string
	Header   mail.Header
	Body     string
	Raw      []byte
	Received string // the client's address
}

// Inbox holds the messages, newest last, at most Max of them.
type Inbox struct {
	mu      sync.Mutex
	msgs    []Message
	next    int
	max     int
	changed chan struct{}
	smtp    *smtp.Server
	log     *slog.Logger
}

// New returns an empty inbox keeping at most max messages (default 500).
func New(max int, logger *slog.Logger) *Inbox {
	defaults.Positive(&max, 500)
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Inbox{max: max, changed: make(chan struct{}), log: logger}
}

// Messages returns a copy of the messages, oldest first.
func (in *Inbox) Messages() []Message {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]Message(nil), in.msgs...)
}

// Message returns the message with id.
func (in *Inbox) Message(id int) (Message, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, m := range in.msgs {
		if m.ID == id {
			return m, true
		}
	}
	return Message{}, false
}

// WaitFor returns the first message that match accepts, waiting until one
// arrives or ctx ends.
func (in *Inbox) WaitFor(ctx context.Context, match func(Message) bool) (Message, error) {
	for {
		in.mu.Lock()
		for _, m := range in.msgs {
			if match(m) {
				in.mu.Unlock()
				return m, nil
			}
		}
		changed := in.changed
		in.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return Message{}, fmt.Errorf("wait for message: %w", ctx.Err())
		}
	}
}

func (in *Inbox) add(m Message) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.next++
	m.ID = in.next
	in.msgs = append(in.msgs, m)
	if len(in.msgs) > in.max {
		in.msgs = in.msgs[len(in.msgs)-in.max:]
	}
	close(in.changed)
	in.changed = make(chan struct{})
}

// MaxMessageBytes bounds one message.
const MaxMessageBytes = 10 << 20

// Serve accepts SMTP on l until Close. Any sender, any recipient, no
// authentication: bind it to loopback only.
func (in *Inbox) Serve(l net.Listener) error {
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{in: in, remote: c.Conn().RemoteAddr().String()}, nil
	}))
	s.Domain = "inbox.localhost"
	s.MaxMessageBytes = MaxMessageBytes
	s.MaxRecipients = 50
	s.ReadTimeout, s.WriteTimeout = time.Minute, time.Minute
	in.mu.Lock()
	in.smtp = s
	in.mu.Unlock()
	err := s.Serve(l)
	if errors.Is(err, smtp.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Start listens for SMTP on addr (host:0 picks a free port) and serves
// until Close; it returns the address bound.
func (in *Inbox) Start(addr string) (net.Addr, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("inbox: listen %s: %w", addr, err)
	}
	go func() {
		if err := in.Serve(l); err != nil {
			in.log.Error("inbox smtp stopped", "err", err)
		}
	}()
	return l.Addr(), nil
}

// Close stops the SMTP server.
func (in *Inbox) Close() error {
	in.mu.Lock()
	s := in.smtp
	in.mu.Unlock()
	if s == nil {
		return nil
	}
	return s.Close()
}

type session struct {
	in     *Inbox
	remote string
	from   string
	to     []string
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(io.LimitReader(r, MaxMessageBytes+1))
	if err != nil {
		return err
	}
	m := Message{At: time.Now().UTC(), From: s.from, To: append([]string(nil), s.to...), Raw: raw, Received: s.remote}
	if parsed, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
		m.Header = parsed.Header
		dec := new(mime.WordDecoder)
		if subj, err := dec.DecodeHeader(parsed.Header.Get("Subject")); err == nil {
			m.Subject = subj
		} else {
			m.Subject = parsed.Header.Get("Subject")
		}
		body, _ := io.ReadAll(parsed.Body)
		m.Body = strings.ReplaceAll(string(body), "\r\n", "\n")
	} else {
		m.Body = string(raw)
	}
	s.in.add(m)
	s.in.log.Info("message received", "to", strings.Join(m.To, ","), "subject", m.Subject)
	return nil
}
