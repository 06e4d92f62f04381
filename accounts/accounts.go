// Package accounts keeps the people who use shopledger and what they may
// do: users with argon2id passwords, e-mail verification and password
// reset by single-use links, browser sessions, login throttling,
// organisations with their members, roles, invitations and shops, and the
// security audit trail. Everything lives in PostgreSQL; secrets (passwords,
// session ids, link tokens) are stored only as hashes.
package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"time"

	"github.com/shopledger/shopledger/internal/defaults"
)

var (
	// ErrNotFound means the object does not exist or belongs to another
	// organisation: the caller cannot tell which.
	ErrNotFound = errors.New("not found")
	// ErrForbidden means the member's role does not allow the action.
	ErrForbidden = errors.New("not allowed for this role")
	// ErrInvalid wraps bad input; the message says what is wrong.
	ErrInvalid = errors.New("invalid input")
	// ErrBadCredentials is the one answer to a wrong e-mail or password.
	ErrBadCredentials = errors.New("e-mail or password is wrong")
	// ErrNotVerified means the password was right but the address has not
	// been verified yet.
	ErrNotVerified = errors.New("e-mail address not verified yet")
	// ErrThrottled means too many attempts: wait and try again.
	ErrThrottled = errors.New("too many attempts")
	// ErrLinkInvalid is the one answer to an unknown, used or expired
	// link token.
	ErrLinkInvalid = errors.New("this link is unknown, used or expired")
	// ErrLastOwner means the change would leave an organisation without
	// an owner.
	ErrLastOwner = errors.New("an organisation needs at least one owner")
)

// Config configures a Store.
type Config struct {
	DB     *sql.DB
	Logger *slog.Logger
	// Mailer sends the e-mails; nil records each one as pending.
	Mailer Mailer
	// BaseURL is the app's public URL (https://ledger.example.com), the
	// start of every link in an e-mail.
	BaseURL string
	// Argon2 are the password hashing costs (default DefaultArgon2).
	Argon2 Argon2Params
	// Sessions are the session lifetimes and the cookie's settings.
	Sessions SessionConfig
	// Throttle are the login and e-mail limits.
	Throttle ThrottleConfig
	// VerifyTTL, ResetTTL and InviteTTL bound how long an e-mailed link
	// works: 48 hours, 1 hour and 7 days by default.
	VerifyTTL time.Duration
	ResetTTL  time.Duration
	InviteTTL time.Duration
	// Now is the clock (tests move it).
	Now func() time.Time
}

// Store is the accounts' storage and rules.
type Store struct {
	db       *sql.DB
	log      *slog.Logger
	mailer   Mailer
	baseURL  string
	argon    Argon2Params
	sessions SessionConfig
	throttle ThrottleConfig
	ttl      struct{ verify, reset, invite time.Duration }
	now      func() time.Time
	// dummyHash is checked when an e-mail is unknown, so a wrong address
	// costs the same time as a wrong password.
	dummyHash string
}

// New checks cfg and fills its defaults.
func New(cfg Config) (*Store, error) {
	if cfg.DB == nil {
		return nil, errors.New("accounts: DB is required")
	}
	if cfg.BaseURL == "" {
		return nil, errors.New("accounts: BaseURL is required")
	}
	s := &Store{
		db: cfg.DB, log: cfg.Logger, mailer: cfg.Mailer, baseURL: strings.TrimRight(cfg.BaseURL, "/"),
		argon: cfg.Argon2, sessions: cfg.Sessions.withDefaults(), throttle: cfg.Throttle.withDefaults(), now: cfg.Now,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.argon == (Argon2Params{}) {
		s.argon = DefaultArgon2
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.ttl.verify, s.ttl.reset, s.ttl.invite = cfg.VerifyTTL, cfg.ResetTTL, cfg.InviteTTL
	defaults.Positive(&s.ttl.verify, 48*time.Hour)
	defaults.Positive(&s.ttl.reset, time.Hour)
	defaults.Positive(&s.ttl.invite, 7*24*time.Hour)
	h, err := unmatchableHash(s.argon)
	if err != nil {
		return nil, err
	}
	s.dummyHash = h
	return s, nil
}

// Sessions returns the session settings in force (for the cookie).
func (s *Store) Sessions() SessionConfig { return s.sessions }

// Client is where a request comes from, recorded in the audit trail and
// used by the throttles.
type Client struct {
	Address   string
	UserAgent string
}

// newSecret returns 256 random bits, URL-safe, and their SHA-256.
func newSecret() (string, []byte, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", nil, fmt.Errorf("random: %w", err)
	}
	secret := base64.RawURLEncoding.EncodeToString(raw)
	return secret, hashSecret(secret), nil
}

func hashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// normaliseEmail checks an address and returns it as typed (trimmed) and
// its comparison key.
func normaliseEmail(raw string) (string, string, error) {
	raw = strings.TrimSpace(raw)
	a, err := mail.ParseAddress(raw)
	if err != nil || a.Address != raw || len(raw) > 254 || !strings.Contains(raw[strings.LastIndexByte(raw, '@')+1:], ".") {
		return "", "", fmt.Errorf("%w: %q is not an e-mail address", ErrInvalid, raw)
	}
	return raw, strings.ToLower(raw), nil
}

// checkTimezone accepts IANA zone names that this system knows.
func checkTimezone(tz string) error {
	if tz == "" || tz == "Local" {
		return fmt.Errorf("%w: time zone %q is not an IANA name", ErrInvalid, tz)
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return fmt.Errorf("%w: time zone %q is not an IANA name", ErrInvalid, tz)
	}
	return nil
}

func checkDisplayName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if len(name) > 100 {
		return "", fmt.Errorf("%w: display name is longer than 100 characters", ErrInvalid)
	}
	return name, nil
}

// inTx runs fn in a transaction, committed when fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after commit this is a no-op
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}
