package alerts_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/shopledger/shopledger/alerts"
	"github.com/shopledger/shopledger/stdwebhooks"
)

const (
	smtpUser = "alerts@shop.test"
	smtpPass = "correct horse battery staple"
)

// mailServer is a real SMTP server in the test process: STARTTLS with a
// certificate made for 127.0.0.1, PLAIN auth required after TLS.
type mailServer struct {
	srv   *smtp.Server
	mu    sync.Mutex
	mails [][]byte
	// tlsUsed records that every accepted mail came over TLS.
	plainMails int
}

// testCert returns a self-signed certificate for 127.0.0.1 and a pool
// that trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "smtp.test"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// startMailServer serves SMTP on addr ("127.0.0.1:0" for any port).
func startMailServer(t *testing.T, addr string, cert tls.Certificate) (*mailServer, string) {
	t.Helper()
	m := &mailServer{}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &mailSession{m: m, conn: c}, nil
	}))
	s.Domain = "smtp.test"
	s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.ReadTimeout = 10 * time.Second
	s.WriteTimeout = 10 * time.Second
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln) //nolint:errcheck // ends with Close
	m.srv = s
	t.Cleanup(func() { s.Close() })
	return m, ln.Addr().String()
}

func (m *mailServer) received() [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([][]byte(nil), m.mails...)
}

type mailSession struct {
	m    *mailServer
	conn *smtp.Conn
	auth bool
}

func (s *mailSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *mailSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != smtpUser || pass != smtpPass {
			return errors.New("invalid credentials")
		}
		s.auth = true
		return nil
	}), nil
}

func (s *mailSession) Mail(string, *smtp.MailOptions) error {
	if !s.auth {
		return smtp.ErrAuthRequired
	}
	return nil
}

func (s *mailSession) Rcpt(string, *smtp.RcptOptions) error { return nil }

func (s *mailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	s.m.mails = append(s.m.mails, b)
	if !isTLS {
		s.m.plainMails++
	}
	return nil
}

func (s *mailSession) Reset()        {}
func (s *mailSession) Logout() error { return nil }

// hookReceiver is a seller's endpoint: it verifies our Standard Webhooks
// signature with stdwebhooks.Verify and keeps what verified, by webhook-id.
type hookReceiver struct {
	srv     *httptest.Server
	secret  func() string
	mu      sync.Mutex
	byID    map[string]int
	bodies  []alerts.WebhookPayload
	refused []error
}

func startHookReceiver(t *testing.T, secret func() string) *hookReceiver {
	t.Helper()
	h := &hookReceiver{secret: secret, byID: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if err := stdwebhooks.Verify(r.Header, body, []string{h.secret()}, time.Now()); err != nil {
			h.refused = append(h.refused, err)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var p alerts.WebhookPayload
		if err := json.Unmarshal(body, &p); err != nil {
			h.refused = append(h.refused, err)
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		h.byID[r.Header.Get(stdwebhooks.HeaderID)]++
		h.bodies = append(h.bodies, p)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// slackReceiver is a Slack-compatible incoming webhook.
type slackReceiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	msgs []alerts.SlackPayload
}

func startSlackReceiver(t *testing.T) *slackReceiver {
	t.Helper()
	s := &slackReceiver{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p alerts.SlackPayload
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil || p.Text == "" {
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.msgs = append(s.msgs, p)
		s.mu.Unlock()
		io.WriteString(w, "ok") //nolint:errcheck
	}))
	t.Cleanup(s.srv.Close)
	return s
}
