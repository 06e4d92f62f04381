// Package stdwebhooks signs and verifies Standard Webhooks v1 deliveries
// (https://www.standardwebhooks.com): an HMAC-SHA256 over the message id,
// the timestamp and the raw body, keyed with a whsec_ secret. Etsy signs
// its webhooks this way; shopledger signs its outbound alert webhooks the
// same way.
package stdwebhooks

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Header names of a Standard Webhooks delivery.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
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
// verify. A receiver that checks many deliveries against the same secrets
// should make a Verifier once instead: Verify decodes the secrets and keys
// an HMAC afresh on every call.
func Verify(h http.Header, body []byte, secrets []string, now time.Time) error {
	d, err := checkDelivery(h, now)
	if err != nil {
		return err
	}
	if len(secrets) == 0 {
		return fmt.Errorf("verify webhook: no secrets configured: %w", ErrInvalidSecret)
	}
	macs := make([]*macState, 0, len(secrets))
	for i, s := range secrets {
		k, err := ParseSecret(s)
		if err != nil {
			return fmt.Errorf("verify webhook: secret %d: %w", i, err)
		}
		macs = append(macs, newMACState(k))
	}
	return d.verify(body, macs)
}

// Verifier checks deliveries against a fixed list of secrets, decoded once.
// Each secret's keyed HMAC state is kept and reset between deliveries
// rather than derived from the key again. It is safe for concurrent use.
type Verifier struct {
	pools []sync.Pool // one per secret, of *macState keyed with it
}

// NewVerifier decodes secrets (current first; any may match) for Verify.
// The error never includes a secret.
func NewVerifier(secrets []string) (*Verifier, error) {
	if len(secrets) == 0 {
		return nil, fmt.Errorf("new verifier: no secrets configured: %w", ErrInvalidSecret)
	}
	v := &Verifier{pools: make([]sync.Pool, len(secrets))}
	for i, s := range secrets {
		k, err := ParseSecret(s)
		if err != nil {
			return nil, fmt.Errorf("new verifier: secret %d: %w", i, err)
		}
		v.pools[i].New = func() any { return newMACState(k) }
	}
	return v, nil
}

// Verify is Verify with the Verifier's secrets: the same checks in
// the same order, with the same errors.
func (v *Verifier) Verify(h http.Header, body []byte, now time.Time) error {
	d, err := checkDelivery(h, now)
	if err != nil {
		return err
	}
	var local [2]*macState
	macs := local[:0]
	for i := range v.pools {
		macs = append(macs, v.pools[i].Get().(*macState))
	}
	err = d.verify(body, macs)
	for i, m := range macs {
		v.pools[i].Put(m)
	}
	return err
}

// Header names as net/http stores them, so that looking one up does not
// canonicalise (and allocate) the name on every request.
var (
	canonicalWebhookID        = http.CanonicalHeaderKey(HeaderID)
	canonicalWebhookTimestamp = http.CanonicalHeaderKey(HeaderTimestamp)
	canonicalWebhookSignature = http.CanonicalHeaderKey(HeaderSignature)
)

// delivery is what the headers of a delivery say, once they passed the
// checks that need no secret.
type delivery struct {
	id, ts string
	sigs   []string // the webhook-signature header lines
}

// checkDelivery checks the headers and the timestamp against now: every
// check that comes before any MAC is computed.
func checkDelivery(h http.Header, now time.Time) (delivery, error) {
	id, err := requiredHeader(h, canonicalWebhookID, HeaderID)
	if err != nil {
		return delivery{}, err
	}
	tsText, err := requiredHeader(h, canonicalWebhookTimestamp, HeaderTimestamp)
	if err != nil && !errors.Is(err, errEmptyHeader) {
		return delivery{}, err
	}
	if _, err := requiredHeader(h, canonicalWebhookSignature, HeaderSignature); err != nil {
		return delivery{}, err
	}
	// A list split over several header lines is still one list.
	sigs := h[canonicalWebhookSignature]
	if err := checkWebhookID(id); err != nil {
		return delivery{}, err
	}
	n := len(sigs) - 1
	for _, s := range sigs {
		n += len(s)
	}
	if n > maxSignatureHdrLen {
		return delivery{}, fmt.Errorf("verify webhook: %s longer than %d bytes: %w", HeaderSignature, maxSignatureHdrLen, ErrInvalidHeader)
	}
	ts, err := parseTimestamp(tsText)
	if err != nil {
		return delivery{}, fmt.Errorf("verify webhook: %w", err)
	}
	if now.Sub(ts) > Tolerance {
		return delivery{}, fmt.Errorf("verify webhook: timestamp %s is too old: %w", tsText, ErrTimestampExpired)
	}
	if ts.Sub(now) > Tolerance {
		return delivery{}, fmt.Errorf("verify webhook: timestamp %s is too new: %w", tsText, ErrTimestampExpired)
	}
	return delivery{id: id, ts: tsText, sigs: sigs}, nil
}

// verify computes the delivery's MAC with each keyed state and looks for
// it among the v1 signatures, comparing in constant time.
func (d delivery) verify(body []byte, macs []*macState) error {
	for _, m := range macs {
		m.compute(d.id, d.ts, body)
	}
	var buf [64]byte
	for _, line := range d.sigs {
		for entry := range strings.SplitSeq(line, " ") {
			if entry == "" {
				continue
			}
			version, encoded, found := strings.Cut(entry, ",")
			if !found {
				// Etsy's page never shows the header; accept a bare
				// base64 signature too, defensively. It is still an HMAC.
				version, encoded = "v1", entry
			}
			if version != "v1" || base64.StdEncoding.DecodedLen(len(encoded)) > len(buf) {
				// Longer than any HMAC-SHA256 could be: it cannot match.
				continue
			}
			n, err := base64.StdEncoding.Decode(buf[:], []byte(encoded))
			if err != nil {
				continue
			}
			for _, m := range macs {
				if hmac.Equal(buf[:n], m.sum) {
					return nil
				}
			}
		}
	}
	return fmt.Errorf("verify webhook %q: %w", d.id, ErrNoMatchingSignature)
}

// Sign returns the header value "v1,<base64>" for a message, exactly as a
// Standard Webhooks sender (and so Etsy) computes it.
func Sign(secret, msgID string, ts time.Time, body []byte) (string, error) {
	key, err := ParseSecret(secret)
	if err != nil {
		return "", fmt.Errorf("sign webhook: %w", err)
	}
	s := Signer{mac: newMACState(key)}
	return string(s.AppendSign(nil, msgID, ts, body)), nil
}

// Signer signs many messages with one secret, decoded once. It is not safe
// for concurrent use: give each sender its own.
type Signer struct {
	mac *macState
	ts  []byte
}

// NewSigner decodes secret for AppendSign.
func NewSigner(secret string) (*Signer, error) {
	key, err := ParseSecret(secret)
	if err != nil {
		return nil, fmt.Errorf("new signer: %w", err)
	}
	return &Signer{mac: newMACState(key)}, nil
}

// AppendSign appends to dst the header value Sign would return.
func (s *Signer) AppendSign(dst []byte, msgID string, ts time.Time, body []byte) []byte {
	s.ts = strconv.AppendInt(s.ts[:0], ts.Unix(), 10)
	s.mac.compute(msgID, string(s.ts), body)
	dst = append(dst, "v1,"...)
	return base64.StdEncoding.AppendEncode(dst, s.mac.sum)
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

// macState is an HMAC-SHA256 keyed once, with room for the signed
// message's prefix and the MAC, reset between messages.
type macState struct {
	h      hash.Hash
	prefix []byte
	sum    []byte
}

func newMACState(key []byte) *macState {
	return &macState{h: hmac.New(sha256.New, key), prefix: make([]byte, 0, 64), sum: make([]byte, 0, sha256.Size)}
}

// compute sets m.sum to the MAC of "id.ts.body", the signed content of
// Standard Webhooks.
func (m *macState) compute(id, ts string, body []byte) {
	m.h.Reset()
	p := append(m.prefix[:0], id...)
	p = append(p, '.')
	p = append(p, ts...)
	p = append(p, '.')
	m.prefix = p
	m.h.Write(p)
	m.h.Write(body)
	m.sum = m.h.Sum(m.sum[:0])
}

var errEmptyHeader = errors.New("empty header")

// requiredHeader tells an absent header (ErrMissingHeader) from one that is
// present but empty, because an empty timestamp is a malformed value rather
// than a missing one.
// canonical is name as net/http stores it.
func requiredHeader(h http.Header, canonical, name string) (string, error) {
	vals := h[canonical]
	if len(vals) == 0 {
		return "", fmt.Errorf("verify webhook: %s: %w", name, ErrMissingHeader)
	}
	if vals[0] == "" {
		if name == HeaderTimestamp {
			return "", errEmptyHeader
		}
		return "", fmt.Errorf("verify webhook: %s is empty: %w", name, ErrMissingHeader)
	}
	return vals[0], nil
}

func checkWebhookID(id string) error {
	if len(id) > maxWebhookIDLen {
		return fmt.Errorf("verify webhook: %s longer than %d bytes: %w", HeaderID, maxWebhookIDLen, ErrInvalidHeader)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("verify webhook: %s has a non-printable byte at %d: %w", HeaderID, i, ErrInvalidHeader)
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
