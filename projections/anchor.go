package projections

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// SealKeys are the HMAC-SHA256 keys that sign seal heads (anchors). They
// live only in the configuration of the projector (which signs with the
// first) and of `ledger verify` (which checks with any): a database
// superuser who rewrites the log and re-seals it cannot sign the new heads.
type SealKeys struct {
	ids  []string
	keys map[string][]byte
}

// SealKeySize is the least key length accepted, in bytes.
const SealKeySize = 32

var sealKeyID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// ErrSealKeys means the seal key configuration is unusable.
var ErrSealKeys = errors.New("invalid seal keys")

// ParseSealKeys reads "k2:<base64 key>,k1:<base64 key>", current key first.
// Error messages never contain key material.
func ParseSealKeys(spec string) (*SealKeys, error) {
	k := &SealKeys{keys: map[string][]byte{}}
	for i, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		id, enc, ok := strings.Cut(item, ":")
		if !ok || !sealKeyID.MatchString(id) {
			return nil, fmt.Errorf("seal keys: entry %d is not id:base64key with an id of 1-32 [A-Za-z0-9_-]: %w", i+1, ErrSealKeys)
		}
		raw, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			raw, err = base64.URLEncoding.DecodeString(enc)
		}
		if err != nil || len(raw) < SealKeySize {
			return nil, fmt.Errorf("seal keys: key %q is not at least %d bytes of base64: %w", id, SealKeySize, ErrSealKeys)
		}
		if _, dup := k.keys[id]; dup {
			return nil, fmt.Errorf("seal keys: key id %q appears twice: %w", id, ErrSealKeys)
		}
		k.ids = append(k.ids, id)
		k.keys[id] = raw
	}
	if len(k.ids) == 0 {
		return nil, fmt.Errorf("seal keys: no keys: %w", ErrSealKeys)
	}
	return k, nil
}

// Current is the id of the signing key.
func (k *SealKeys) Current() string { return k.ids[0] }

// mac signs a seal head with key id.
func (k *SealKeys) mac(id string, seq int64, hash []byte) ([]byte, bool) {
	key, ok := k.keys[id]
	if !ok {
		return nil, false
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("shopledger seal anchor v1\n" + strconv.FormatInt(seq, 10) + "\n" + hex.EncodeToString(hash)))
	return m.Sum(nil), true
}

// AnchorHead is one signed seal head.
type AnchorHead struct {
	Seq   int64
	Hash  []byte
	KeyID string
}

// Anchor signs the seal's current head, unless it is already anchored, and
// stores the signature. It reports the head and whether it was new.
func Anchor(ctx context.Context, db *sql.DB, keys *SealKeys) (AnchorHead, bool, error) {
	var a AnchorHead
	err := db.QueryRowContext(ctx, `SELECT seq, hash FROM event_seal ORDER BY seq DESC LIMIT 1`).Scan(&a.Seq, &a.Hash)
	if errors.Is(err, sql.ErrNoRows) {
		return a, false, nil
	}
	if err != nil {
		return a, false, fmt.Errorf("anchor seal: %w", err)
	}
	a.KeyID = keys.Current()
	mac, _ := keys.mac(a.KeyID, a.Seq, a.Hash)
	res, err := db.ExecContext(ctx, `INSERT INTO seal_anchors (seq, hash, key_id, mac) VALUES ($1, $2, $3, $4)
		ON CONFLICT (seq) DO NOTHING`, a.Seq, a.Hash, a.KeyID, mac)
	if err != nil {
		return a, false, fmt.Errorf("anchor seal at seq %d: %w", a.Seq, err)
	}
	n, _ := res.RowsAffected()
	return a, n == 1, nil
}

// anchorRow is a stored anchor as VerifySealWith reads it.
type anchorRow struct {
	hash, mac []byte
	keyID     string
}

func loadAnchors(ctx context.Context, tx *sql.Tx) (map[int64]anchorRow, int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT seq, hash, key_id, mac FROM seal_anchors ORDER BY seq`)
	if err != nil {
		return nil, 0, fmt.Errorf("read anchors: %w", err)
	}
	defer rows.Close()
	out := map[int64]anchorRow{}
	var last int64
	for rows.Next() {
		var seq int64
		var a anchorRow
		if err := rows.Scan(&seq, &a.hash, &a.keyID, &a.mac); err != nil {
			return nil, 0, fmt.Errorf("read anchors: %w", err)
		}
		out[seq] = a
		last = seq
	}
	return out, last, rows.Err()
}

// checkAnchor compares the anchor at seq, if any, with the chain's
// recomputed hash there, and its signature with keys when given.
func checkAnchor(anchors map[int64]anchorRow, keys *SealKeys, seq int64, hash []byte, rep *VerifyReport) (kind, detail string) {
	a, ok := anchors[seq]
	if !ok {
		return "", ""
	}
	if !hmac.Equal(a.hash, hash) {
		return ProblemAnchor, fmt.Sprintf("the chain's hash here is %x but the head signed at this seq was %x: the log was rewritten and re-sealed", hash, a.hash)
	}
	if keys != nil {
		want, known := keys.mac(a.keyID, seq, a.hash)
		if !known {
			return ProblemAnchorSignature, fmt.Sprintf("anchor signed with key %q, which SHOPLEDGER_SEAL_KEYS does not hold", a.keyID)
		}
		if !hmac.Equal(want, a.mac) {
			return ProblemAnchorSignature, "the anchor's signature does not verify: it was not made with the seal key"
		}
		rep.AnchorsVerified++
	}
	rep.Anchors++
	rep.AnchoredSeq = seq
	return "", ""
}
