package shops

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// RotateResult reports what RotateKeys did.
type RotateResult struct {
	// Credentials and PendingAuths count rows re-encrypted under the
	// current key.
	Credentials  int
	PendingAuths int
	// Failed lists shops whose tokens could not be re-encrypted (their
	// key is no longer configured, or the ciphertext is damaged).
	Failed []int64
}

// RotateKeys re-encrypts every stored token and pending PKCE verifier that
// is not under the current key, one row per transaction with the row
// locked, so it runs safely next to refreshes. Running it again after it
// succeeded changes nothing; once it reports no failures, old keys can be
// removed from the configuration.
func (s *Store) RotateKeys(ctx context.Context) (RotateResult, error) {
	var res RotateResult
	if s.keys == nil {
		return res, fmt.Errorf("rotate keys: no token keys configured: %w", ErrKeyring)
	}
	cur := s.keys.CurrentID()
	ids, err := s.idsWhere(ctx, `SELECT shop_id FROM shop_credentials WHERE access_token_key <> $1 OR refresh_token_key <> $1 ORDER BY shop_id`, cur)
	if err != nil {
		return res, fmt.Errorf("rotate keys: %w", err)
	}
	var errs []error
	for _, id := range ids {
		done, err := s.rotateShop(ctx, id, cur)
		if err != nil {
			res.Failed = append(res.Failed, id)
			errs = append(errs, fmt.Errorf("shop %d: %w", id, err))
			continue
		}
		if done {
			res.Credentials++
		}
	}
	n, err := s.rotatePending(ctx, cur)
	res.PendingAuths = n
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return res, fmt.Errorf("rotate keys: %w", errors.Join(errs...))
	}
	return res, nil
}

func (s *Store) idsWhere(ctx context.Context, query string, args ...any) ([]int64, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

func (s *Store) rotateShop(ctx context.Context, shopID int64, cur string) (bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	var userID int64
	var accKey, refKey string
	var acc, ref []byte
	err = tx.QueryRowContext(ctx, `
SELECT user_id, access_token_key, access_token, refresh_token_key, refresh_token
FROM shop_credentials WHERE shop_id = $1 FOR UPDATE`, shopID).Scan(&userID, &accKey, &acc, &refKey, &ref)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil // disconnected meanwhile
	}
	if err != nil {
		return false, err
	}
	if accKey == cur && refKey == cur {
		return false, nil // a refresh rewrote it meanwhile
	}
	access, err := s.open(colAccess, userID, shopID, accKey, acc)
	if err != nil {
		return false, err
	}
	refresh, err := s.open(colRefresh, userID, shopID, refKey, ref)
	if err != nil {
		return false, err
	}
	newAcc, err := s.seal(colAccess, userID, shopID, access)
	if err != nil {
		return false, err
	}
	newRef, err := s.seal(colRefresh, userID, shopID, refresh)
	if err != nil {
		return false, err
	}
	// The tokens are the same, so generation stays: a refresh racing
	// with rotation still finds the row it expects.
	if _, err := tx.ExecContext(ctx, `
UPDATE shop_credentials SET access_token_key = $2, access_token = $3, refresh_token_key = $4, refresh_token = $5
WHERE shop_id = $1`, shopID, newAcc.keyID, newAcc.sealed, newRef.keyID, newRef.sealed); err != nil {
		return false, err
	}
	return true, tx.Commit()
}

// rotatePending re-encrypts pending PKCE verifiers; ones that cannot be
// opened any more are deleted, since the seller can simply start again.
func (s *Store) rotatePending(ctx context.Context, cur string) (int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT state_hash, verifier_key, verifier FROM oauth_pending WHERE verifier_key <> $1`, cur)
	if err != nil {
		return 0, fmt.Errorf("pending authorizations: %w", err)
	}
	type pending struct {
		hash, sealed []byte
		key          string
	}
	var all []pending
	for rows.Next() {
		var p pending
		if err := rows.Scan(&p.hash, &p.key, &p.sealed); err != nil {
			rows.Close()
			return 0, fmt.Errorf("pending authorizations: %w", err)
		}
		all = append(all, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("pending authorizations: %w", err)
	}
	n := 0
	for _, p := range all {
		v, err := s.keys.Open(p.key, p.sealed, verifierAAD(p.hash))
		if err != nil {
			if _, err := s.db.ExecContext(ctx, `DELETE FROM oauth_pending WHERE state_hash = $1`, p.hash); err != nil {
				return n, fmt.Errorf("pending authorizations: %w", err)
			}
			continue
		}
		key, sealed, err := s.keys.Seal(v, verifierAAD(p.hash))
		if err != nil {
			return n, fmt.Errorf("pending authorizations: %w", err)
		}
		res, err := s.db.ExecContext(ctx, `UPDATE oauth_pending SET verifier_key = $2, verifier = $3 WHERE state_hash = $1 AND verifier_key = $4`, p.hash, key, sealed, p.key)
		if err != nil {
			return n, fmt.Errorf("pending authorizations: %w", err)
		}
		if k, _ := res.RowsAffected(); k == 1 {
			n++
		}
	}
	return n, nil
}
