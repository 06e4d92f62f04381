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

// RedactURL hides a password in a connection URL for logs.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable url)"
	}
	return u.Redacted()
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
