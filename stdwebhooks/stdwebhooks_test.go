package stdwebhooks_test

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/stdwebhooks"
)

// The known-answer vector from the Standard Webhooks Go library's
// TestWebhookSign.
const (
	kaSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	kaID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	kaTS     = 1614265330
	kaBody   = `{"test": 2432232314}`
	kaSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func kaHeader(sig string) http.Header {
	h := http.Header{}
	h.Set("webhook-id", kaID)
	h.Set("webhook-timestamp", strconv.Itoa(kaTS))
	h.Set("webhook-signature", sig)
	return h
}

// verifyBoth runs stdwebhooks.Verify and a Verifier made from the same secrets
// (twice, so its reused HMAC state is exercised) and fails the test unless
// all three agree. It returns Verify's error.
func verifyBoth(t *testing.T, h http.Header, body []byte, secrets []string, now time.Time) error {
	t.Helper()
	err := stdwebhooks.Verify(h, body, secrets, now)
	v, nerr := stdwebhooks.NewVerifier(secrets)
	if nerr != nil {
		if !errors.Is(nerr, stdwebhooks.ErrInvalidSecret) {
			t.Errorf("NewVerifier = %v, want ErrInvalidSecret", nerr)
		}
		return err
	}
	for range 2 {
		if verr := v.Verify(h, body, now); (verr == nil) != (err == nil) || (err != nil && verr.Error() != err.Error()) {
			t.Errorf("Verifier.Verify = %v, stdwebhooks.Verify = %v", verr, err)
		}
	}
	return err
}

func TestSignerMatchesSign(t *testing.T) {
	s, err := stdwebhooks.NewSigner(kaSecret)
	if err != nil {
		t.Fatal(err)
	}
	var buf []byte
	for range 2 {
		buf = s.AppendSign(buf[:0], kaID, time.Unix(kaTS, 0), []byte(kaBody))
		if string(buf) != kaSig {
			t.Errorf("AppendSign = %q, want %q", buf, kaSig)
		}
	}
	if _, err := stdwebhooks.NewSigner("whsec_***"); !errors.Is(err, stdwebhooks.ErrInvalidSecret) {
		t.Errorf("NewSigner(bad) = %v, want ErrInvalidSecret", err)
	}
}

func TestSignKnownAnswer(t *testing.T) {
	got, err := stdwebhooks.Sign(kaSecret, kaID, time.Unix(kaTS, 0), []byte(kaBody))
	if err != nil {
		t.Fatal(err)
	}
	if got != kaSig {
		t.Errorf("Sign = %q, want %q", got, kaSig)
	}
}

func TestVerifyKnownAnswer(t *testing.T) {
	if err := verifyBoth(t, kaHeader(kaSig), []byte(kaBody), []string{kaSecret}, time.Unix(kaTS, 0)); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func TestVerifyRawBytes(t *testing.T) {
	// The same JSON with other whitespace is a different message.
	err := verifyBoth(t, kaHeader(kaSig), []byte(`{"test":2432232314}`), []string{kaSecret}, time.Unix(kaTS, 0))
	if !errors.Is(err, stdwebhooks.ErrNoMatchingSignature) {
		t.Fatalf("Verify re-serialised body: got %v, want ErrNoMatchingSignature", err)
	}
}

func TestVerifySignatureList(t *testing.T) {
	decoyV1 := "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="
	// A v1a/v2 entry carrying the right bytes must still be ignored.
	rightBytesWrongVersion := "v2," + strings.TrimPrefix(kaSig, "v1,")
	tests := []struct {
		name   string
		header string
		want   error
	}{
		{"only valid", kaSig, nil},
		{"decoys before", decoyV1 + " v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg== " + kaSig, nil},
		{"decoys after", kaSig + " " + decoyV1 + " v2,abc", nil},
		{"decoys both sides", decoyV1 + " " + kaSig + " " + decoyV1, nil},
		{"double spaces", "  " + decoyV1 + "  " + kaSig + "  ", nil},
		{"bare base64 accepted", strings.TrimPrefix(kaSig, "v1,"), nil},
		{"only decoys", decoyV1 + " " + decoyV1, stdwebhooks.ErrNoMatchingSignature},
		{"right bytes other version", rightBytesWrongVersion, stdwebhooks.ErrNoMatchingSignature},
		{"v1a only", "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", stdwebhooks.ErrNoMatchingSignature},
		{"bad base64", "v1,!!!notbase64", stdwebhooks.ErrNoMatchingSignature},
		{"truncated signature", kaSig[:len(kaSig)-4], stdwebhooks.ErrNoMatchingSignature},
		{"oversized list", strings.Repeat(decoyV1+" ", 200) + kaSig, stdwebhooks.ErrInvalidHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := verifyBoth(t, kaHeader(tt.header), []byte(kaBody), []string{kaSecret}, time.Unix(kaTS, 0))
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("Verify(%q) = %v, want %v", tt.header, err, tt.want)
			}
		})
	}
}

func TestVerifySignatureOverSeveralHeaderLines(t *testing.T) {
	h := kaHeader("v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=")
	h.Add("webhook-signature", kaSig)
	if err := verifyBoth(t, h, []byte(kaBody), []string{kaSecret}, time.Unix(kaTS, 0)); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

func mustSecret(t *testing.T) string {
	t.Helper()
	s, err := stdwebhooks.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifyRotation(t *testing.T) {
	oldSecret := mustSecret(t)
	newSecret := mustSecret(t)
	removed := mustSecret(t)
	now := time.Unix(1700000000, 0)
	body := []byte(`{"event_type":"order.paid","resource_url":"https://openapi.stdwebhooks.com/v3/application/shops/1/receipts/2","shop_id":1}`)
	configured := []string{newSecret, oldSecret}
	for _, tt := range []struct {
		name   string
		signer string
		want   error
	}{
		{"current secret", newSecret, nil},
		{"previous secret", oldSecret, nil},
		{"removed secret", removed, stdwebhooks.ErrNoMatchingSignature},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sig, err := stdwebhooks.Sign(tt.signer, "msg_rotation", now, body)
			if err != nil {
				t.Fatal(err)
			}
			h := http.Header{}
			h.Set("webhook-id", "msg_rotation")
			h.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
			h.Set("webhook-signature", sig)
			err = verifyBoth(t, h, body, configured, now)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
	// A sender signing with both secrets during rotation passes a receiver
	// that knows only one of them.
	s1, _ := stdwebhooks.Sign(oldSecret, "msg_both", now, body)
	s2, _ := stdwebhooks.Sign(newSecret, "msg_both", now, body)
	h := http.Header{}
	h.Set("webhook-id", "msg_both")
	h.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	h.Set("webhook-signature", s1+" "+s2)
	if err := verifyBoth(t, h, body, []string{newSecret}, now); err != nil {
		t.Errorf("Verify with both signatures, new secret only: %v", err)
	}
}

func TestVerifyTolerance(t *testing.T) {
	msgTS := time.Unix(kaTS, 0)
	tests := []struct {
		name   string
		offset time.Duration // receiver clock minus message timestamp
		want   error
	}{
		{"same second", 0, nil},
		{"300 s late", 300 * time.Second, nil},
		{"300 s early", -300 * time.Second, nil},
		{"301 s late", 301 * time.Second, stdwebhooks.ErrTimestampExpired},
		{"301 s early", -301 * time.Second, stdwebhooks.ErrTimestampExpired},
		{"a day late", 24 * time.Hour, stdwebhooks.ErrTimestampExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := verifyBoth(t, kaHeader(kaSig), []byte(kaBody), []string{kaSecret}, msgTS.Add(tt.offset))
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("Verify at %v = %v, want %v", tt.offset, err, tt.want)
			}
		})
	}
}

func TestVerifyHeaders(t *testing.T) {
	now := time.Unix(kaTS, 0)
	tests := []struct {
		name   string
		mutate func(h http.Header)
		want   error
	}{
		{"missing id", func(h http.Header) { h.Del("webhook-id") }, stdwebhooks.ErrMissingHeader},
		{"missing timestamp", func(h http.Header) { h.Del("webhook-timestamp") }, stdwebhooks.ErrMissingHeader},
		{"missing signature", func(h http.Header) { h.Del("webhook-signature") }, stdwebhooks.ErrMissingHeader},
		{"empty id", func(h http.Header) { h.Set("webhook-id", "") }, stdwebhooks.ErrMissingHeader},
		{"empty signature", func(h http.Header) { h.Set("webhook-signature", "") }, stdwebhooks.ErrMissingHeader},
		{"timestamp abc", func(h http.Header) { h.Set("webhook-timestamp", "abc") }, stdwebhooks.ErrInvalidTimestamp},
		{"timestamp 1.5", func(h http.Header) { h.Set("webhook-timestamp", "1.5") }, stdwebhooks.ErrInvalidTimestamp},
		{"timestamp empty", func(h http.Header) { h.Set("webhook-timestamp", "") }, stdwebhooks.ErrInvalidTimestamp},
		{"timestamp with plus", func(h http.Header) { h.Set("webhook-timestamp", "+1614265330") }, stdwebhooks.ErrInvalidTimestamp},
		{"timestamp negative", func(h http.Header) { h.Set("webhook-timestamp", "-1614265330") }, stdwebhooks.ErrInvalidTimestamp},
		{"timestamp with space", func(h http.Header) { h.Set("webhook-timestamp", " 1614265330") }, stdwebhooks.ErrInvalidTimestamp},
		{"timestamp huge", func(h http.Header) { h.Set("webhook-timestamp", "99999999999999999999999") }, stdwebhooks.ErrInvalidTimestamp},
		{"timestamp in ms", func(h http.Header) { h.Set("webhook-timestamp", "1614265330000") }, stdwebhooks.ErrTimestampExpired},
		{"id too long", func(h http.Header) { h.Set("webhook-id", strings.Repeat("a", 257)) }, stdwebhooks.ErrInvalidHeader},
		{"id with control char", func(h http.Header) { h.Set("webhook-id", "msg_\x01") }, stdwebhooks.ErrInvalidHeader},
		{"id with space", func(h http.Header) { h.Set("webhook-id", "msg 1") }, stdwebhooks.ErrInvalidHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := kaHeader(kaSig)
			tt.mutate(h)
			err := verifyBoth(t, h, []byte(kaBody), []string{kaSecret}, now)
			if !errors.Is(err, tt.want) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestVerifySecrets(t *testing.T) {
	now := time.Unix(kaTS, 0)
	for _, tt := range []struct {
		name    string
		secrets []string
		want    error
	}{
		{"none", nil, stdwebhooks.ErrInvalidSecret},
		{"not base64", []string{"whsec_***"}, stdwebhooks.ErrInvalidSecret},
		{"empty key", []string{"whsec_"}, stdwebhooks.ErrInvalidSecret},
		{"without prefix", []string{strings.TrimPrefix(kaSecret, "whsec_")}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := verifyBoth(t, kaHeader(kaSig), []byte(kaBody), tt.secrets, now)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestNewSecret(t *testing.T) {
	a := mustSecret(t)
	b := mustSecret(t)
	if !strings.HasPrefix(a, "whsec_") || a == b {
		t.Fatalf("NewSecret gave %q and %q", a, b)
	}
	key, err := stdwebhooks.ParseSecret(a)
	if err != nil {
		t.Fatal(err)
	}
	if len(key) < 24 {
		t.Errorf("key is %d bytes, Standard Webhooks wants at least 24", len(key))
	}
}

func FuzzVerify(f *testing.F) {
	f.Add(kaID, strconv.Itoa(kaTS), kaSig, []byte(kaBody))
	f.Add(kaID, strconv.Itoa(kaTS), "v1a,abc "+kaSig+" v1,zzz", []byte(kaBody))
	f.Add("", "", "", []byte(nil))
	f.Add(kaID, "1.5", kaSig, []byte(kaBody))
	f.Add(kaID, "abc", "v1,", []byte("{}"))
	f.Add("msg\x00", "1614265330", ",,, v1,,", []byte(`{"a":1}`))
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		h := http.Header{}
		h["Webhook-Id"] = []string{id}
		h["Webhook-Timestamp"] = []string{ts}
		h["Webhook-Signature"] = []string{sig}
		err := verifyBoth(t, h, body, []string{kaSecret}, time.Unix(kaTS, 0))
		if err != nil {
			return
		}
		// Acceptance must mean the sender knew the secret: the header
		// holds the true signature for exactly these bytes.
		n, perr := strconv.ParseInt(ts, 10, 64)
		if perr != nil {
			t.Fatalf("accepted unparsable timestamp %q", ts)
		}
		want, serr := stdwebhooks.Sign(kaSecret, id, time.Unix(n, 0), body)
		if serr != nil {
			t.Fatal(serr)
		}
		wantBare := strings.TrimPrefix(want, "v1,")
		ok := false
		for _, e := range strings.Split(sig, " ") {
			if e == want || e == wantBare {
				ok = true
			}
		}
		if !ok {
			t.Fatalf("accepted %q without the true signature %q", sig, want)
		}
	})
}
