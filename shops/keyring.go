// Package shops connects Etsy shops to the ledger and keeps their OAuth
// tokens: the connect flow (PKCE, single-use server-side state), an
// encrypted credentials table, a database-backed token source that
// refreshes once per shop across processes, and key rotation.
//
// Tokens never enter the event log. They live in shop_credentials,
// encrypted with AES-256-GCM under keys that exist only in the process's
// configuration, each ciphertext bound (as additional data) to its seller,
// shop and column so that a ciphertext copied to another row does not
// decrypt.
package shops

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrUnknownKey means a ciphertext names a key the keyring does not
	// hold: it was removed from SHOPLEDGER_TOKEN_KEYS too early.
	ErrUnknownKey = errors.New("unknown token key")
	// ErrDecrypt means a ciphertext does not open: wrong key, wrong
	// binding (another shop's or column's data) or tampering.
	ErrDecrypt = errors.New("token ciphertext does not decrypt")
	// ErrKeyring means the key configuration is unusable.
	ErrKeyring = errors.New("invalid token keyring")
)

// KeySize is the AES-256 key length.
const KeySize = 32

const nonceSize = 12

// Keyring holds the token encryption keys. The first key encrypts every
// new write; the others only decrypt, so a key can be retired after
// RotateKeys has re-encrypted everything under its successor.
type Keyring struct {
	current string
	ids     []string
	aeads   map[string]cipher.AEAD
}

// ParseKeyring reads a key list of the form "k2:<base64 key>,k1:<base64
// key>" (standard or URL-safe base64, 32 bytes each). The first key is the
// current one. Error messages never contain key material.
func ParseKeyring(spec string) (*Keyring, error) {
	k := &Keyring{aeads: make(map[string]cipher.AEAD)}
	for i, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		id, enc, ok := strings.Cut(item, ":")
		if !ok {
			return nil, fmt.Errorf("parse token keys: entry %d is not id:base64key: %w", i+1, ErrKeyring)
		}
		if !validKeyID(id) {
			return nil, fmt.Errorf("parse token keys: entry %d: key id must be 1-32 characters of [A-Za-z0-9_-]: %w", i+1, ErrKeyring)
		}
		raw, err := decodeKey(enc)
		if err != nil || len(raw) != KeySize {
			return nil, fmt.Errorf("parse token keys: key %q is not %d bytes of base64: %w", id, KeySize, ErrKeyring)
		}
		if err := k.add(id, raw); err != nil {
			return nil, fmt.Errorf("parse token keys: %w", err)
		}
	}
	if len(k.ids) == 0 {
		return nil, fmt.Errorf("parse token keys: no keys: %w", ErrKeyring)
	}
	return k, nil
}

// NewKeyring builds a keyring from raw keys, current first; for tests and
// tools that generate keys.
func NewKeyring(keys ...Key) (*Keyring, error) {
	k := &Keyring{aeads: make(map[string]cipher.AEAD)}
	for _, key := range keys {
		if !validKeyID(key.ID) || len(key.Secret) != KeySize {
			return nil, fmt.Errorf("new keyring: key %q: want a valid id and %d bytes: %w", key.ID, KeySize, ErrKeyring)
		}
		if err := k.add(key.ID, key.Secret); err != nil {
			return nil, fmt.Errorf("new keyring: %w", err)
		}
	}
	if len(k.ids) == 0 {
		return nil, fmt.Errorf("new keyring: no keys: %w", ErrKeyring)
	}
	return k, nil
}

// Key is one named AES-256 key.
type Key struct {
	ID     string
	Secret []byte
}

// GenerateKey returns a fresh random key with the given id.
func GenerateKey(id string) (Key, error) {
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		return Key{}, fmt.Errorf("generate key: %w", err)
	}
	return Key{ID: id, Secret: b}, nil
}

// Spec formats the key as one entry of SHOPLEDGER_TOKEN_KEYS.
func (k Key) Spec() string { return k.ID + ":" + base64.StdEncoding.EncodeToString(k.Secret) }

func (k *Keyring) add(id string, raw []byte) error {
	if _, dup := k.aeads[id]; dup {
		return fmt.Errorf("key id %q appears twice: %w", id, ErrKeyring)
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return fmt.Errorf("key %q: %w", id, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return fmt.Errorf("key %q: %w", id, err)
	}
	if k.current == "" {
		k.current = id
	}
	k.ids = append(k.ids, id)
	k.aeads[id] = aead
	return nil
}

func validKeyID(id string) bool {
	if len(id) == 0 || len(id) > 32 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func decodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}

// CurrentID is the id of the key new writes use.
func (k *Keyring) CurrentID() string { return k.current }

// IDs lists the key ids, current first.
func (k *Keyring) IDs() []string { return append([]string(nil), k.ids...) }

// Seal encrypts plaintext under the current key with a fresh random
// 12-byte nonce. The result is nonce || ciphertext || tag; aad must be
// given again to open it.
func (k *Keyring) Seal(plaintext, aad []byte) (keyID string, sealed []byte, err error) {
	aead := k.aeads[k.current]
	nonce := make([]byte, nonceSize, nonceSize+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", nil, fmt.Errorf("seal: nonce: %w", err)
	}
	return k.current, aead.Seal(nonce, nonce, plaintext, aad), nil
}

// Open decrypts what Seal produced under keyID with the same aad.
func (k *Keyring) Open(keyID string, sealed, aad []byte) ([]byte, error) {
	aead, ok := k.aeads[keyID]
	if !ok {
		return nil, fmt.Errorf("open: key %q: %w", keyID, ErrUnknownKey)
	}
	if len(sealed) < nonceSize+aead.Overhead() {
		return nil, fmt.Errorf("open: %d bytes is too short: %w", len(sealed), ErrDecrypt)
	}
	pt, err := aead.Open(nil, sealed[:nonceSize], sealed[nonceSize:], aad)
	if err != nil {
		return nil, fmt.Errorf("open with key %q: %w", keyID, ErrDecrypt)
	}
	return pt, nil
}
