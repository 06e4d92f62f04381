package shops_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/shops"
)

func mustKey(t *testing.T, id string) shops.Key {
	t.Helper()
	k, err := shops.GenerateKey(id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustKeyring(t *testing.T, keys ...shops.Key) *shops.Keyring {
	t.Helper()
	specs := make([]string, len(keys))
	for i, k := range keys {
		specs[i] = k.Spec()
	}
	kr, err := shops.ParseKeyring(strings.Join(specs, ","))
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestKeyringSealOpen(t *testing.T) {
	k1 := mustKey(t, "k1")
	kr := mustKeyring(t, k1)
	aad := []byte("seller=1/shop=2/access_token")
	id, sealed, err := kr.Seal([]byte("12345.secret-token"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if id != "k1" {
		t.Errorf("key id = %q, want k1", id)
	}
	if bytes.Contains(sealed, []byte("secret-token")) {
		t.Error("ciphertext contains the plaintext")
	}
	if got := len(sealed); got != 12+len("12345.secret-token")+16 {
		t.Errorf("sealed length = %d, want 12-byte nonce + plaintext + 16-byte tag", got)
	}
	pt, err := kr.Open(id, sealed, aad)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("12345.secret-token", string(pt)); diff != "" {
		t.Errorf("open (-want +got):\n%s", diff)
	}
}

func TestKeyringSamePlaintextTwiceDiffers(t *testing.T) {
	kr := mustKeyring(t, mustKey(t, "k1"))
	aad := []byte("a")
	_, a, err := kr.Seal([]byte("same"), aad)
	if err != nil {
		t.Fatal(err)
	}
	_, b, err := kr.Seal([]byte("same"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, b) {
		t.Fatal("two encryptions of the same plaintext are identical")
	}
	if bytes.Equal(a[:12], b[:12]) {
		t.Fatal("two encryptions reuse a nonce")
	}
}

func TestKeyringRefusesWrongBinding(t *testing.T) {
	kr := mustKeyring(t, mustKey(t, "k1"))
	id, sealed, err := kr.Seal([]byte("token"), []byte("seller=1/shop=2/refresh_token"))
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		keyID  string
		sealed []byte
		aad    string
		want   error
	}{
		"other seller": {id, sealed, "seller=9/shop=2/refresh_token", shops.ErrDecrypt},
		"other shop":   {id, sealed, "seller=1/shop=3/refresh_token", shops.ErrDecrypt},
		"other column": {id, sealed, "seller=1/shop=2/access_token", shops.ErrDecrypt},
		"tampered":     {id, append(append([]byte(nil), sealed[:len(sealed)-1]...), sealed[len(sealed)-1]^1), "seller=1/shop=2/refresh_token", shops.ErrDecrypt},
		"truncated":    {id, sealed[:10], "seller=1/shop=2/refresh_token", shops.ErrDecrypt},
		"unknown key":  {"k9", sealed, "seller=1/shop=2/refresh_token", shops.ErrUnknownKey},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := kr.Open(tc.keyID, tc.sealed, []byte(tc.aad))
			if !errors.Is(err, tc.want) {
				t.Fatalf("open = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestKeyringOldKeysDecryptNewKeyEncrypts(t *testing.T) {
	k1, k2 := mustKey(t, "k1"), mustKey(t, "k2")
	old := mustKeyring(t, k1)
	_, sealed, err := old.Seal([]byte("v"), nil)
	if err != nil {
		t.Fatal(err)
	}
	both := mustKeyring(t, k2, k1)
	if pt, err := both.Open("k1", sealed, nil); err != nil || string(pt) != "v" {
		t.Fatalf("old ciphertext under new keyring: %q, %v", pt, err)
	}
	id, _, err := both.Seal([]byte("v"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if id != "k2" {
		t.Errorf("new writes use %q, want k2", id)
	}
	if diff := cmp.Diff([]string{"k2", "k1"}, both.IDs()); diff != "" {
		t.Errorf("ids (-want +got):\n%s", diff)
	}
}

func TestParseKeyringRejectsBadSpecs(t *testing.T) {
	good := mustKey(t, "k1")
	short := base64.StdEncoding.EncodeToString(good.Secret[:16])
	tests := map[string]string{
		"empty":        "",
		"no id":        base64.StdEncoding.EncodeToString(good.Secret),
		"bad id":       "k 1:" + base64.StdEncoding.EncodeToString(good.Secret),
		"short key":    "k1:" + short,
		"not base64":   "k1:@@@@",
		"duplicate id": good.Spec() + "," + good.Spec(),
	}
	for name, spec := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := shops.ParseKeyring(spec)
			if !errors.Is(err, shops.ErrKeyring) {
				t.Fatalf("ParseKeyring = %v, want ErrKeyring", err)
			}
			if strings.Contains(err.Error(), base64.StdEncoding.EncodeToString(good.Secret)) || strings.Contains(err.Error(), short) {
				t.Errorf("error message carries key material: %v", err)
			}
		})
	}
	kr, err := shops.ParseKeyring(" k2:" + base64.RawURLEncoding.EncodeToString(good.Secret) + " , ")
	if err != nil {
		t.Fatalf("url-safe unpadded key with spaces: %v", err)
	}
	if kr.CurrentID() != "k2" {
		t.Errorf("current = %q, want k2", kr.CurrentID())
	}
}
