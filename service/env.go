// Package service is what every shopledger binary does the same way: read
// SHOPLEDGER_* settings, open and migrate the database, serve /healthz,
// /readyz and /metrics, and shut down cleanly on a signal.
package service

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Env reads settings from a lookup function (os.Getenv in main, a map in
// tests), collecting every malformed value so a bad start names them all.
type Env struct {
	lookup func(string) string
	errs   []error
}

// NewEnv wraps lookup.
func NewEnv(lookup func(string) string) *Env { return &Env{lookup: lookup} }

// MapEnv is a lookup over a map, for tests.
func MapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// String returns the variable or def when unset.
func (e *Env) String(name, def string) string {
	if v := strings.TrimSpace(e.lookup(name)); v != "" {
		return v
	}
	return def
}

// Int returns the variable parsed as an integer.
func (e *Env) Int(name string, def int64) int64 {
	v := strings.TrimSpace(e.lookup(name))
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s: %q is not an integer", name, v))
		return def
	}
	return n
}

// Float returns the variable parsed as a number.
func (e *Env) Float(name string, def float64) float64 {
	v := strings.TrimSpace(e.lookup(name))
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s: %q is not a number", name, v))
		return def
	}
	return f
}

// Duration returns the variable parsed as a Go duration ("15m").
func (e *Env) Duration(name string, def time.Duration) time.Duration {
	v := strings.TrimSpace(e.lookup(name))
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s: %q is not a duration like 15m or 30s", name, v))
		return def
	}
	return d
}

// Bool returns the variable parsed as a boolean.
func (e *Env) Bool(name string, def bool) bool {
	v := strings.TrimSpace(e.lookup(name))
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s: %q is not true or false", name, v))
		return def
	}
	return b
}

// List returns the comma-separated variable, trimmed, empty items dropped.
func (e *Env) List(name string, def []string) []string {
	v := strings.TrimSpace(e.lookup(name))
	if v == "" {
		return def
	}
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// Err reports every malformed variable read so far.
func (e *Env) Err() error { return errors.Join(e.errs...) }

// Fail records a validation failure found by the caller.
func (e *Env) Fail(format string, args ...any) {
	e.errs = append(e.errs, fmt.Errorf(format, args...))
}

// DefaultDatabaseURL is where make run's database lives.
const DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/shopledger?sslmode=disable"

// redacted replaces a secret in logged connection strings.
const redacted = "xxxxx"

// RedactURL returns a database or service URL fit for logs: the password
// of user:password@, and the value of every query parameter whose name
// looks secret (password, sslpassword, token, key, secret, signature…),
// are replaced. A keyword/value DSN ("host=… password=…") is redacted the
// same way. Something that cannot be parsed is not shown at all.
func RedactURL(raw string) string {
	s := strings.TrimSpace(raw)
	if !strings.Contains(s, "://") && strings.Contains(s, "=") {
		return redactKeywordDSN(s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable url)"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), redacted)
		}
	}
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return "(unparseable url)"
		}
		for name, vals := range q {
			if secretName(name) {
				for i := range vals {
					vals[i] = redacted
				}
			}
		}
		u.RawQuery = q.Encode()
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

// secretName reports whether a connection parameter's value is secret.
func secretName(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"pass", "pwd", "secret", "token", "key", "sig", "auth", "credential"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// redactKeywordDSN redacts a libpq keyword/value string: key=value pairs
// separated by spaces, a value either bare or single-quoted with
// backslash escapes.
func redactKeywordDSN(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] == ' ' || s[i] == '\t' || s[i] == '\n' {
			i++
			continue
		}
		start := i
		for i < len(s) && s[i] != '=' && s[i] != ' ' {
			i++
		}
		key := s[start:i]
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if key == "" || i >= len(s) || s[i] != '=' {
			return "(unparseable dsn)"
		}
		i++
		for i < len(s) && s[i] == ' ' {
			i++
		}
		vstart := i
		if i < len(s) && s[i] == '\'' {
			i++
			for i < len(s) && s[i] != '\'' {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(s) {
				return "(unparseable dsn)"
			}
			i++
		} else {
			for i < len(s) && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' {
				i++
			}
		}
		value := s[vstart:i]
		if secretName(key) {
			value = redacted
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(key + "=" + value)
	}
	return b.String()
}

// Mask shows that a secret is set without showing it.
func Mask(secret string) string {
	if secret == "" {
		return "(unset)"
	}
	return fmt.Sprintf("(set, %d chars)", len(secret))
}

// NewLogger builds the process logger: JSON on w at the given level.
func NewLogger(level string, w *os.File) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}
