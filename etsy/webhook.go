package etsy

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names Etsy sends with every webhook delivery (Standard Webhooks).
const (
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
)

// Tolerance is how far a webhook timestamp may lie from the receiver's clock.
// Etsy gives no number; this is the Standard Webhooks reference library's
// value, with its strict comparison: exactly ±300 s passes, ±301 s fails.
const Tolerance = 5 * time.Minute

// SecretPrefix marks a Standard Webhooks signing secret.
const SecretPrefix = "whsec_"

// Limits that keep verification cheap whatever a sender puts in the headers.
const (
	maxWebhookIDLen     = 256
	maxSignatureHdrLen  = 8 << 10
	maxSecretKeyLen     = 64 // 512 bits, the Standard Webhooks maximum
	minGeneratedKeySize = 32
)

var (
	// ErrMissingHeader means one of webhook-id, webhook-timestamp or
	// webhook-signature is absent.
	ErrMissingHeader = errors.New("missing webhook header")
	// ErrInvalidHeader means a header is present but unusable (an id that is
	// too long or not printable ASCII, an oversized signature list).
	ErrInvalidHeader = errors.New("invalid webhook header")
	// ErrInvalidTimestamp means webhook-timestamp is not a decimal integer
	// number of seconds.
	ErrInvalidTimestamp = errors.New("invalid webhook timestamp")
	// ErrTimestampExpired means the timestamp is outside Tolerance, in the
	// past or in the future.
	ErrTimestampExpired = errors.New("webhook timestamp outside tolerance")
	// ErrNoMatchingSignature means no v1 signature matches any secret.
	ErrNoMatchingSignature = errors.New("no matching webhook signature")
	// ErrInvalidSecret means a configured signing secret cannot be decoded;
	// it is a configuration error, not the sender's fault.
	ErrInvalidSecret = errors.New("invalid webhook secret")
)

// Verify checks a Standard Webhooks v1 signature over the raw body bytes, as
// Etsy signs its webhook deliveries. Any of secrets may match, so a receiver
// can accept the current and the previous secret while rotating. now is
// injected so tests and callers decide the clock.
//
// The body must be the exact bytes received: re-serialised JSON does not
// verify.
func Verify(h http.Header, body []byte, secrets []string, now time.Time) error {
	id, err := requiredHeader(h, HeaderWebhookID)
	if err != nil {
		return err
	}
	tsText, err := requiredHeader(h, HeaderWebhookTimestamp)
	if err != nil && !errors.Is(err, errEmptyHeader) {
		return err
	}
	if _, err := requiredHeader(h, HeaderWebhookSignature); err != nil {
		return err
	}
	// A list split over several header lines is still one list.
	sigs := strings.Join(h.Values(HeaderWebhookSignature), " ")
	if err := checkWebhookID(id); err != nil {
		return err
	}
	if len(sigs) > maxSignatureHdrLen {
		return fmt.Errorf("verify webhook: %s longer than %d bytes: %w", HeaderWebhookSignature, maxSignatureHdrLen, ErrInvalidHeader)
	}
	ts, err := parseTimestamp(tsText)
	if err != nil {
		return fmt.Errorf("verify webhook: %w", err)
	}
	if now.Sub(ts) > Tolerance {
		return fmt.Errorf("verify webhook: timestamp %s is too old: %w", tsText, ErrTimestampExpired)
	}
	if ts.Sub(now) > Tolerance {
		return fmt.Errorf("verify webhook: timestamp %s is too new: %w", tsText, ErrTimestampExpired)
	}
	if len(secrets) == 0 {
		return fmt.Errorf("verify webhook: no secrets configured: %w", ErrInvalidSecret)
	}
	keys := make([][]byte, 0, len(secrets))
	for i, s := range secrets {
		k, err := ParseSecret(s)
		if err != nil {
			return fmt.Errorf("verify webhook: secret %d: %w", i, err)
		}
		keys = append(keys, k)
	}
	macs := make([][]byte, len(keys))
	for i, k := range keys {
		macs[i] = computeMAC(k, id, tsText, body)
	}
	for _, entry := range strings.Split(sigs, " ") {
		if entry == "" {
			continue
		}
		version, encoded, found := strings.Cut(entry, ",")
		if !found {
			// Etsy's page never shows the header; accept a bare
			// base64 signature too, defensively. It is still an HMAC.
			version, encoded = "v1", entry
		}
		if version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil {
			continue
		}
		for _, mac := range macs {
			if hmac.Equal(got, mac) {
				return nil
			}
		}
	}
	return fmt.Errorf("verify webhook %q: %w", id, ErrNoMatchingSignature)
}

// Sign returns the header value "v1,<base64>" for a message, exactly as a
// Standard Webhooks sender (and so Etsy) computes it.
func Sign(secret, msgID string, ts time.Time, body []byte) (string, error) {
	key, err := ParseSecret(secret)
	if err != nil {
		return "", fmt.Errorf("sign webhook: %w", err)
	}
	mac := computeMAC(key, msgID, strconv.FormatInt(ts.Unix(), 10), body)
	return "v1," + base64.StdEncoding.EncodeToString(mac), nil
}

// NewSecret returns a fresh random signing secret in the "whsec_<base64>"
// form Etsy shows in its webhook portal.
func NewSecret() (string, error) {
	key := make([]byte, minGeneratedKeySize)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("new webhook secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(key), nil
}

// ParseSecret decodes a "whsec_<base64>" secret (the prefix is optional, as
// in the reference library) into its key bytes. Callers can use it to
// validate configuration at start-up.
func ParseSecret(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil {
		return nil, fmt.Errorf("parse secret: %w", errors.Join(ErrInvalidSecret, err))
	}
	if len(key) == 0 || len(key) > maxSecretKeyLen {
		return nil, fmt.Errorf("parse secret: key of %d bytes: %w", len(key), ErrInvalidSecret)
	}
	return key, nil
}

func computeMAC(key []byte, id, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

var errEmptyHeader = errors.New("empty header")

// requiredHeader tells an absent header (ErrMissingHeader) from one that is
// present but empty, because an empty timestamp is a malformed value rather
// than a missing one.
func requiredHeader(h http.Header, name string) (string, error) {
	vals := h.Values(name)
	if len(vals) == 0 {
		return "", fmt.Errorf("verify webhook: %s: %w", name, ErrMissingHeader)
	}
	if vals[0] == "" {
		if name == HeaderWebhookTimestamp {
			return "", errEmptyHeader
		}
		return "", fmt.Errorf("verify webhook: %s is empty: %w", name, ErrMissingHeader)
	}
	return vals[0], nil
}

func checkWebhookID(id string) error {
	if len(id) > maxWebhookIDLen {
		return fmt.Errorf("verify webhook: %s longer than %d bytes: %w", HeaderWebhookID, maxWebhookIDLen, ErrInvalidHeader)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("verify webhook: %s has a non-printable byte at %d: %w", HeaderWebhookID, i, ErrInvalidHeader)
		}
	}
	return nil
}

// parseTimestamp accepts only plain decimal digits: "1.5", "+1", " 1" and
// "" are all malformed, never rounded or trimmed.
func parseTimestamp(s string) (time.Time, error) {
	if s == "" || len(s) > 18 {
		return time.Time{}, fmt.Errorf("timestamp %q: %w", s, ErrInvalidTimestamp)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return time.Time{}, fmt.Errorf("timestamp %q: %w", s, ErrInvalidTimestamp)
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("timestamp %q: %w", s, errors.Join(ErrInvalidTimestamp, err))
	}
	return time.Unix(n, 0), nil
}
