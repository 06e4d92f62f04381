package shops

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
)

// shopTokens is this process's view of one shop's access token. sem lets
// one goroutine at a time look at or refresh it (single flight within the
// process); the row lock on shop_credentials does the same across
// processes.
type shopTokens struct {
	sem     chan struct{}
	access  string
	expires time.Time
}

func (t *shopTokens) lock(ctx context.Context) error {
	select {
	case t.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for shop token: %w", ctx.Err())
	}
}

func (t *shopTokens) unlock() { <-t.sem }

func (s *Store) state(shopID int64) *shopTokens {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tokens[shopID]
	if t == nil {
		t = &shopTokens{sem: make(chan struct{}, 1)}
		s.tokens[shopID] = t
	}
	return t
}

func (s *Store) fresh(expires time.Time) bool {
	return s.now().Add(s.skew).Before(expires)
}

// ForShop returns the shop's token source. It fails with ErrNotConnected
// (and ErrReauthRequired when that is why) unless the shop is connected.
func (s *Store) ForShop(ctx context.Context, shopID int64) (etsy.TokenSource, error) {
	var status Status
	var hasCreds bool
	err := s.db.QueryRowContext(ctx, `
SELECT c.status, cr.shop_id IS NOT NULL
FROM shop_connections c LEFT JOIN shop_credentials cr ON cr.shop_id = c.shop_id
WHERE c.shop_id = $1`, shopID).Scan(&status, &hasCreds)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("token source for shop %d: %w", shopID, ErrNotConnected)
	}
	if err != nil {
		return nil, fmt.Errorf("token source for shop %d: %w", shopID, err)
	}
	if err := statusErr(status, hasCreds); err != nil {
		return nil, fmt.Errorf("token source for shop %d: %w", shopID, err)
	}
	return &TokenSource{s: s, shopID: shopID}, nil
}

func statusErr(status Status, hasCreds bool) error {
	switch {
	case status == StatusReauthRequired:
		return fmt.Errorf("%w: %w", ErrNotConnected, ErrReauthRequired)
	case status != StatusConnected || !hasCreds:
		return ErrNotConnected
	}
	return nil
}

// TokenSource is one shop's etsy.TokenSource backed by shop_credentials.
// Refreshed tokens are committed before they are handed out.
type TokenSource struct {
	s      *Store
	shopID int64
}

// Token returns a current access token, refreshing it first when it
// expires within the store's skew.
func (t *TokenSource) Token(ctx context.Context) (string, error) {
	s := t.s
	st := s.state(t.shopID)
	if err := st.lock(ctx); err != nil {
		return "", err
	}
	defer st.unlock()
	if st.access != "" && s.fresh(st.expires) {
		return st.access, nil
	}
	// Another process may have refreshed already: a plain read is enough
	// to find out, and keeps the row lock for real refreshes.
	row, err := s.loadCredentials(ctx, s.db, t.shopID, false)
	if err != nil {
		return "", fmt.Errorf("token for shop %d: %w", t.shopID, err)
	}
	if s.fresh(row.expires) {
		st.access, st.expires = row.access, row.expires
		return row.access, nil
	}
	return s.refresh(ctx, t.shopID, st, "")
}

// Refresh replaces stale (a token Etsy refused) unless the stored token is
// already another one.
func (t *TokenSource) Refresh(ctx context.Context, stale string) (string, error) {
	s := t.s
	st := s.state(t.shopID)
	if err := st.lock(ctx); err != nil {
		return "", err
	}
	defer st.unlock()
	if st.access != "" && st.access != stale && s.fresh(st.expires) {
		return st.access, nil
	}
	return s.refresh(ctx, t.shopID, st, stale)
}

type credentialsRow struct {
	userID     int64
	status     Status
	access     string
	refresh    string
	expires    time.Time
	generation int64
}

func (s *Store) loadCredentials(ctx context.Context, q eventstore.Queryer, shopID int64, forUpdate bool) (credentialsRow, error) {
	query := `
SELECT c.status, cr.user_id, cr.access_token_key, cr.access_token, cr.refresh_token_key, cr.refresh_token, cr.expires_at, cr.generation
FROM shop_connections c JOIN shop_credentials cr ON cr.shop_id = c.shop_id
WHERE c.shop_id = $1`
	if forUpdate {
		query += ` FOR UPDATE OF cr`
	}
	var r credentialsRow
	var accKey, refKey string
	var acc, ref []byte
	err := q.QueryRowContext(ctx, query, shopID).Scan(&r.status, &r.userID, &accKey, &acc, &refKey, &ref, &r.expires, &r.generation)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotConnected
	}
	if err != nil {
		return r, fmt.Errorf("load credentials: %w", err)
	}
	if err := statusErr(r.status, true); err != nil {
		return r, err
	}
	if r.access, err = s.open(colAccess, r.userID, shopID, accKey, acc); err != nil {
		return r, err
	}
	if forUpdate {
		if r.refresh, err = s.open(colRefresh, r.userID, shopID, refKey, ref); err != nil {
			return r, err
		}
	}
	return r, nil
}

// refresh runs with the shop's in-process lock held. It locks the
// credentials row, so that processes refresh one at a time, and checks
// whether the stored token still needs replacing before asking Etsy.
//
// Etsy rotates the refresh token on every refresh: from its answer on,
// only the new one works. So the new tokens are committed before the new
// access token is used, and the work is detached from the caller's
// cancellation. If the process dies between Etsy's answer and the commit,
// the stored refresh token is spent; the next refresh gets invalid_grant
// and the shop goes to reauth_required once, instead of retrying forever.
func (s *Store) refresh(ctx context.Context, shopID int64, st *shopTokens, stale string) (string, error) {
	work, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout+10*time.Second)
	defer cancel()
	tx, err := eventstore.BeginAppend(work, s.db)
	if err != nil {
		return "", fmt.Errorf("refresh token of shop %d: begin: %w", shopID, err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	row, err := s.loadCredentials(work, tx, shopID, true)
	if err != nil {
		return "", fmt.Errorf("refresh token of shop %d: %w", shopID, err)
	}
	if row.access != stale && s.fresh(row.expires) {
		// Someone refreshed while we waited for the lock.
		if err := tx.Commit(); err != nil {
			return "", fmt.Errorf("refresh token of shop %d: commit: %w", shopID, err)
		}
		st.access, st.expires = row.access, row.expires
		return row.access, nil
	}
	if s.oauth == nil {
		return "", fmt.Errorf("refresh token of shop %d: no oauth client configured: %w", shopID, etsy.ErrInvalidToken)
	}
	callCtx, callCancel := context.WithTimeout(work, s.timeout)
	tok, err := s.oauth.Refresh(callCtx, row.refresh)
	callCancel()
	switch {
	case errors.Is(err, etsy.ErrInvalidGrant):
		s.refreshes.WithLabelValues("invalid_grant").Inc()
		if merr := s.markReauth(work, tx, shopID, err); merr != nil {
			return "", fmt.Errorf("refresh token of shop %d: %w (marking reauth_required failed: %v)", shopID, err, merr)
		}
		st.access, st.expires = "", time.Time{}
		s.log.WarnContext(ctx, "etsy refused the shop's refresh token; the seller must connect again",
			"shop_id", shopID, "user_id", row.userID, "err", err)
		return "", fmt.Errorf("refresh token of shop %d: %w: %w: %w", shopID, ErrNotConnected, ErrReauthRequired, err)
	case err != nil:
		s.refreshes.WithLabelValues("error").Inc()
		return "", fmt.Errorf("refresh token of shop %d: %w", shopID, err)
	}
	if tok.UserID != row.userID {
		s.refreshes.WithLabelValues("error").Inc()
		return "", fmt.Errorf("refresh token of shop %d: token user %d, shop owner %d: %w", shopID, tok.UserID, row.userID, ErrGrantMismatch)
	}
	if err := s.storeRefreshed(work, tx, shopID, row, tok); err != nil {
		// The transaction is gone (a dropped connection, a failed
		// commit) but Etsy has rotated: try again on a new connection,
		// guarded by the generation so nothing newer is overwritten.
		s.log.WarnContext(ctx, "storing refreshed token failed, retrying", "shop_id", shopID, "err", err)
		if err = s.retryStoreRefreshed(work, shopID, row, tok); err != nil {
			s.refreshes.WithLabelValues("lost").Inc()
			return "", fmt.Errorf("refresh token of shop %d: new token could not be stored: %w", shopID, err)
		}
	}
	s.refreshes.WithLabelValues("ok").Inc()
	st.access, st.expires = tok.AccessToken, tok.ExpiresAt
	s.log.DebugContext(ctx, "shop token refreshed", "shop_id", shopID, "expires_at", tok.ExpiresAt)
	return tok.AccessToken, nil
}

const updateTokensSQL = `
UPDATE shop_credentials cr SET
    access_token_key = $3, access_token = $4, refresh_token_key = $5, refresh_token = $6,
    expires_at = $7, generation = cr.generation + 1, updated_at = $8
FROM shop_connections c
WHERE cr.shop_id = $1 AND cr.generation = $2 AND c.shop_id = cr.shop_id AND c.status = 'connected'`

func (s *Store) sealPair(shopID int64, row credentialsRow, tok etsy.Token) (acc, ref sealedValue, err error) {
	if acc, err = s.seal(colAccess, row.userID, shopID, tok.AccessToken); err != nil {
		return acc, ref, err
	}
	ref, err = s.seal(colRefresh, row.userID, shopID, tok.RefreshToken)
	return acc, ref, err
}

func (s *Store) storeRefreshed(ctx context.Context, tx *sql.Tx, shopID int64, row credentialsRow, tok etsy.Token) error {
	acc, ref, err := s.sealPair(shopID, row, tok)
	if err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, updateTokensSQL, shopID, row.generation, acc.keyID, acc.sealed, ref.keyID, ref.sealed, tok.ExpiresAt.UTC(), s.now().UTC())
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return errors.New("credentials row changed under the lock")
	}
	return tx.Commit()
}

func (s *Store) retryStoreRefreshed(ctx context.Context, shopID int64, row credentialsRow, tok etsy.Token) error {
	acc, ref, err := s.sealPair(shopID, row, tok)
	if err != nil {
		return err
	}
	var last error
	for attempt := range 3 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return errors.Join(last, ctx.Err())
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			}
		}
		res, err := s.db.ExecContext(ctx, updateTokensSQL, shopID, row.generation, acc.keyID, acc.sealed, ref.keyID, ref.sealed, tok.ExpiresAt.UTC(), s.now().UTC())
		if err != nil {
			last = err
			continue
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errors.New("credentials changed meanwhile (reconnected, disconnected or reauth_required)")
		}
		return nil
	}
	return last
}

// markReauth records, in the refresh's transaction, that Etsy refused the
// refresh token: the shop stops being polled until the seller connects it
// again.
func (s *Store) markReauth(ctx context.Context, tx *sql.Tx, shopID int64, cause error) error {
	now := s.now().UTC()
	reason := "invalid_grant"
	var apiErr *etsy.APIError
	if errors.As(cause, &apiErr) && apiErr.Description != "" {
		reason = "invalid_grant: " + apiErr.Description
	}
	if _, err := tx.ExecContext(ctx, `UPDATE shop_connections SET status = 'reauth_required', status_reason = $2, status_changed_at = $3 WHERE shop_id = $1`, shopID, reason, now); err != nil {
		return err
	}
	ev := events.New(events.ShopStream(shopID), shopID, now, events.ShopReauthRequired{ShopID: shopID, Reason: reason}).
		WithMetadata(events.Metadata{Source: "shops", Actor: "token-refresh"})
	if _, err := s.es.AppendIn(ctx, tx, events.ShopStream(shopID), eventstore.Any, ev); err != nil {
		return err
	}
	return tx.Commit()
}
