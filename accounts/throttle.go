package accounts

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/shopledger/shopledger/internal/defaults"
)

// ThrottleConfig sets how failed logins slow down and lock, and how many
// e-mails an address may be sent.
//
// Failed logins count per account (the e-mail as typed, registered or not,
// so the throttle reveals nothing) and per client address, within Window.
// The first FreeFailures cost nothing; each later one makes the next
// attempt wait twice as long as the last (1 s, 2 s, 4 s, …), up to
// LockFor once LockAfter failures are reached. A lock always ends, the
// count starts again after a quiet Window, and a password reset by e-mail
// lifts the account's lock: an attacker can slow a victim down but never
// lock them out for good.
type ThrottleConfig struct {
	FreeFailures int           // default 3
	LockAfter    int           // default 10
	LockFor      time.Duration // default 15 minutes
	Window       time.Duration // default 15 minutes
	// MailPerAccount and MailPerAddress bound the verification and reset
	// e-mails sent to one address, and asked for by one client, per
	// MailWindow (default 3 and 10 an hour).
	MailPerAccount int
	MailPerAddress int
	MailWindow     time.Duration
}

func (c ThrottleConfig) withDefaults() ThrottleConfig {
	defaults.Positive(&c.FreeFailures, 3)
	if c.LockAfter <= c.FreeFailures {
		c.LockAfter = c.FreeFailures + 7
	}
	defaults.Positive(&c.LockFor, 15*time.Minute)
	defaults.Positive(&c.Window, 15*time.Minute)
	defaults.Positive(&c.MailPerAccount, 3)
	defaults.Positive(&c.MailPerAddress, 10)
	defaults.Positive(&c.MailWindow, time.Hour)
	return c
}

// ThrottledError says how long to wait.
type ThrottledError struct{ RetryAfter time.Duration }

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many attempts: try again in %s", e.RetryAfter.Round(time.Second))
}

func (e *ThrottledError) Unwrap() error { return ErrThrottled }

func loginKeys(emailKey, address string) []string {
	return []string{"login-account:" + emailKey, "login-address:" + address}
}

// lockedFor returns how long the longest lock on keys still runs.
func (s *Store) lockedFor(ctx context.Context, keys ...string) (time.Duration, error) {
	var until sql.NullTime
	err := s.db.QueryRowContext(ctx, `SELECT max(locked_until) FROM throttles WHERE key = ANY($1)`, keys).Scan(&until)
	if err != nil {
		return 0, fmt.Errorf("check throttle: %w", err)
	}
	if !until.Valid {
		return 0, nil
	}
	return until.Time.Sub(s.now()), nil
}

// count adds one to key's count in the current window and returns it.
func (s *Store) count(ctx context.Context, key string, window time.Duration) (int, error) {
	now := s.now().UTC()
	var n int
	err := s.db.QueryRowContext(ctx, `INSERT INTO throttles AS t (key, count, window_start) VALUES ($1, 1, $2)
		ON CONFLICT (key) DO UPDATE SET
			count = CASE WHEN t.window_start <= $3 AND coalesce(t.locked_until, '-infinity') <= $2 THEN 1 ELSE t.count + 1 END,
			window_start = CASE WHEN t.window_start <= $3 AND coalesce(t.locked_until, '-infinity') <= $2 THEN $2 ELSE t.window_start END
		RETURNING count`, key, now, now.Add(-window)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count %s: %w", key, err)
	}
	return n, nil
}

// loginFailed counts a failure on each key and sets its delay.
func (s *Store) loginFailed(ctx context.Context, keys ...string) error {
	c := s.throttle
	for _, key := range keys {
		n, err := s.count(ctx, key, c.Window)
		if err != nil {
			return err
		}
		if n <= c.FreeFailures {
			continue
		}
		delay := c.LockFor
		if n < c.LockAfter {
			delay = min(time.Second<<min(n-c.FreeFailures-1, 20), c.LockFor)
		}
		if _, err := s.db.ExecContext(ctx, `UPDATE throttles SET locked_until = $2 WHERE key = $1`, key, s.now().UTC().Add(delay)); err != nil {
			return fmt.Errorf("lock %s: %w", key, err)
		}
	}
	return nil
}

// clearThrottle forgets the counts of keys (after a successful login, the
// account's; after a reset, the account's too).
func (s *Store) clearThrottle(ctx context.Context, keys ...string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM throttles WHERE key = ANY($1)`, keys); err != nil {
		return fmt.Errorf("clear throttle: %w", err)
	}
	return nil
}

// mailAllowed counts an e-mail to emailKey asked for from address and
// reports whether it may be sent.
func (s *Store) mailAllowed(ctx context.Context, emailKey, address string) (bool, error) {
	c := s.throttle
	n, err := s.count(ctx, "mail-account:"+emailKey, c.MailWindow)
	if err != nil {
		return false, err
	}
	m, err := s.count(ctx, "mail-address:"+address, c.MailWindow)
	if err != nil {
		return false, err
	}
	return n <= c.MailPerAccount && m <= c.MailPerAddress, nil
}

// Unlock lifts every login lock of an account: what an operator runs for
// an owner who cannot wait (ledger accounts unlock).
func (s *Store) Unlock(ctx context.Context, email string) error {
	_, key, err := normaliseEmail(email)
	if err != nil {
		return err
	}
	return s.clearThrottle(ctx, "login-account:"+key)
}

// throttled turns a remaining lock into an error, or nil.
func throttled(d time.Duration) error {
	if d <= 0 {
		return nil
	}
	return &ThrottledError{RetryAfter: d}
}

// IsThrottled reports whether err is a throttle and how long to wait.
func IsThrottled(err error) (time.Duration, bool) {
	var te *ThrottledError
	if errors.As(err, &te) {
		return te.RetryAfter, true
	}
	return 0, false
}
