package accounts

import (
	"database/sql"
	"runtime"
	"testing"
)

// An unknown e-mail is checked against the unmatchable hash: it must
// parse under the configured parameters (so the check does the same
// argon2 work as for a real account, and asks for no rehash) and refuse
// every password.
func TestUnmatchableHashParsesAndRefusesEveryPassword(t *testing.T) {
	p := Argon2Params{MemoryKiB: 64, Iterations: 1, Threads: 1}
	h, err := unmatchableHash(p)
	if err != nil {
		t.Fatal(err)
	}
	real, err := hashPassword("correct horse battery", p)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != len(real) {
		t.Errorf("unmatchable hash %q is not shaped like a real one %q", h, real)
	}
	for _, pw := range []string{"", "correct horse battery", "not a password anyone has"} {
		ok, stale, err := checkPassword(pw, h, p)
		if err != nil || ok || stale {
			t.Errorf("check %q against the unmatchable hash: ok %v, stale %v, err %v; want a plain refusal", pw, ok, stale, err)
		}
	}
	if other, _ := unmatchableHash(p); other == h {
		t.Error("two unmatchable hashes are equal; want a fresh salt and key each time")
	}
}

// Starting the store computes no password hash: under the default
// parameters one takes 19 MiB, which every service would otherwise hold
// from start-up on. New keeps the database handle and does not use it.
func TestNewHashesNoPassword(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := New(Config{DB: new(sql.DB), BaseURL: "http://app.test"}); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > uint64(DefaultArgon2.MemoryKiB)*1024/4 {
		t.Errorf("New allocated %d bytes; want far less than one hash's %d KiB", n, DefaultArgon2.MemoryKiB)
	}
}
