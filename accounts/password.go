package accounts

import (
	"bufio"
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are the argon2id cost parameters. They are stored in every
// hash, so raising them later leaves older hashes verifiable (and each is
// rehashed at its owner's next login).
type Argon2Params struct {
	// MemoryKiB is the memory cost in KiB.
	MemoryKiB uint32
	// Iterations is the time cost.
	Iterations uint32
	// Threads is the parallelism.
	Threads uint8
}

// DefaultArgon2 is OWASP's first recommended argon2id configuration
// (19 MiB, two passes, one lane): a login costs one core a few tens of
// milliseconds, so a login burst cannot exhaust memory, while an offline
// guess costs the same memory and time.
var DefaultArgon2 = Argon2Params{MemoryKiB: 19 * 1024, Iterations: 2, Threads: 1}

const (
	saltLen = 16
	keyLen  = 32
	// MinPasswordLen is the shortest password accepted, in characters.
	MinPasswordLen = 10
	// MaxPasswordLen bounds the work one login can ask of the hash.
	MaxPasswordLen = 256
)

// ErrWeakPassword wraps every reason a new password is refused; the
// message says which.
var ErrWeakPassword = errors.New("password refused")

// hashPassword returns the PHC string of password under p.
func hashPassword(password string, p Argon2Params) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return phcString(p, salt, argon2.IDKey([]byte(password), salt, p.Iterations, p.MemoryKiB, p.Threads, keyLen)), nil
}

// unmatchableHash returns a PHC string under p whose key is random, not
// derived from any password: checking a password against it takes the
// same argon2 work as checking one against a real hash, and never
// matches. Making it takes none of that work, nor p's memory.
func unmatchableHash(p Argon2Params) (string, error) {
	b := make([]byte, saltLen+keyLen)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("unmatchable hash: %w", err)
	}
	return phcString(p, b[:saltLen], b[saltLen:]), nil
}

// phcString encodes an argon2id key with its salt and parameters.
func phcString(p Argon2Params, salt, key []byte) string {
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.MemoryKiB, p.Iterations, p.Threads, enc.EncodeToString(salt), enc.EncodeToString(key))
}

// checkPassword reports whether password matches the PHC string, and
// whether the string's parameters differ from want (time to rehash).
func checkPassword(password, encoded string, want Argon2Params) (ok, stale bool, err error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, false, errors.New("check password: not an argon2id hash")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, false, fmt.Errorf("check password: argon2 version %q", parts[2])
	}
	var p Argon2Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Iterations, &p.Threads); err != nil {
		return false, false, fmt.Errorf("check password: parameters %q: %w", parts[3], err)
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return false, false, fmt.Errorf("check password: salt: %w", err)
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil {
		return false, false, fmt.Errorf("check password: key: %w", err)
	}
	got := argon2.IDKey([]byte(password), salt, p.Iterations, p.MemoryKiB, p.Threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, p != want, nil
}

//go:embed common-passwords.txt
var commonPasswordList string

var (
	commonOnce      sync.Once
	commonPasswords map[string]bool
)

// isCommon reports whether the password, lower-cased, is on the bundled
// list of passwords seen most often in breaches.
func isCommon(password string) bool {
	commonOnce.Do(func() {
		commonPasswords = map[string]bool{}
		sc := bufio.NewScanner(strings.NewReader(commonPasswordList))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line != "" && !strings.HasPrefix(line, "#") {
				commonPasswords[strings.ToLower(line)] = true
			}
		}
	})
	return commonPasswords[strings.ToLower(password)]
}

// CheckNewPassword says why a password may not be chosen, or nil. email
// is the account's address: a password that is the address, or its name
// part, is refused too.
func CheckNewPassword(password, email string) error {
	n := utf8.RuneCountInString(password)
	switch {
	case n < MinPasswordLen:
		return fmt.Errorf("%w: it has %d characters; use at least %d", ErrWeakPassword, n, MinPasswordLen)
	case len(password) > MaxPasswordLen:
		return fmt.Errorf("%w: it is longer than %d bytes", ErrWeakPassword, MaxPasswordLen)
	case isCommon(password):
		return fmt.Errorf("%w: it is on a list of passwords leaked in breaches and tried first by attackers", ErrWeakPassword)
	case oneCharacter(password):
		return fmt.Errorf("%w: it repeats a single character", ErrWeakPassword)
	}
	email = strings.ToLower(email)
	local, _, _ := strings.Cut(email, "@")
	if lp := strings.ToLower(password); email != "" && (lp == email || (len(local) >= 4 && strings.Contains(lp, local) && len(lp)-len(local) < MinPasswordLen)) {
		return fmt.Errorf("%w: it is too close to the e-mail address", ErrWeakPassword)
	}
	return nil
}

func oneCharacter(s string) bool {
	first, _ := utf8.DecodeRuneInString(s)
	return strings.Trim(s, string(first)) == ""
}
