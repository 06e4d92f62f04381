package shops

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
)

// shopTokens is this process's view of one shop's access token. sem lets
// one goroutine at a time look at or refresh it (single flight within the
// process); a lease in shop_token_refresh_leases does the same across
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
	// to find out, and keeps the lease for real refreshes.
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

// loadCredentials reads a shop's tokens; the refresh token is decrypted
// only withRefresh.
func (s *Store) loadCredentials(ctx context.Context, q eventstore.Queryer, shopID int64, withRefresh bool) (credentialsRow, error) {
	const query = `
SELECT c.status, cr.user_id, cr.access_token_key, cr.access_token, cr.refresh_token_key, cr.refresh_token, cr.expires_at, cr.generation
FROM shop_connections c JOIN shop_credentials cr ON cr.shop_id = c.shop_id
WHERE c.shop_id = $1`
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
	if withRefresh {
		if r.refresh, err = s.open(colRefresh, r.userID, shopID, refKey, ref); err != nil {
			return r, err
		}
	}
	return r, nil
}

// refresh runs with the shop's in-process lock held. Across processes it
// takes the shop's refresh lease, in a statement that commits before Etsy
// is called, so no transaction or row lock stays open across that call;
// a process finding the lease taken waits for the holder's tokens.
//
// Etsy rotates the refresh token on every refresh: from its answer on,
// only the new one works. So the new tokens are stored before the new
// access token is used, the work is detached from the caller's
// cancellation, and storing retries with backoff for RefreshStoreWindow,
// so a short database outage does not lose the grant. The lease lasts
// longer than the call and that window, so nobody else spends the old
// refresh token meanwhile. If the process dies between Etsy's answer and
// the commit, the stored refresh token is spent: once the lease runs out,
// the next refresh gets invalid_grant and the shop goes to
// reauth_required once, instead of retrying forever.
func (s *Store) refresh(ctx context.Context, shopID int64, st *shopTokens, stale string) (string, error) {
	owner := uuid.New()
	row, done, err := s.takeLease(ctx, shopID, owner, stale)
	if err != nil {
		return "", fmt.Errorf("refresh token of shop %d: %w", shopID, err)
	}
	if done {
		// Someone refreshed while we waited for the lease.
		st.access, st.expires = row.access, row.expires
		return row.access, nil
	}
	defer s.releaseLease(shopID, owner)
	if s.oauth == nil {
		return "", fmt.Errorf("refresh token of shop %d: no oauth client configured: %w", shopID, etsy.ErrInvalidToken)
	}
	callCtx, callCancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	tok, err := s.oauth.Refresh(callCtx, row.refresh)
	callCancel()
	work, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.window)
	defer cancel()
	switch {
	case errors.Is(err, etsy.ErrInvalidGrant):
		s.refreshes.WithLabelValues("invalid_grant").Inc()
		if merr := s.markReauth(work, shopID, row.generation, err); merr != nil {
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
	if err := s.storeRefreshed(work, shopID, row, tok); err != nil {
		s.refreshes.WithLabelValues("lost").Inc()
		s.log.ErrorContext(ctx, "etsy rotated the shop's tokens but they could not be stored; the grant is lost",
			"shop_id", shopID, "user_id", row.userID, "err", err)
		return "", fmt.Errorf("refresh token of shop %d: new token could not be stored: %w", shopID, err)
	}
	s.refreshes.WithLabelValues("ok").Inc()
	st.access, st.expires = tok.AccessToken, tok.ExpiresAt
	s.log.DebugContext(ctx, "shop token refreshed", "shop_id", shopID, "expires_at", tok.ExpiresAt)
	return tok.AccessToken, nil
}

// leaseWait is the pause between looks at a lease another process holds.
const leaseWait = 100 * time.Millisecond

// takeLease takes the shop's refresh lease for owner and returns the
// credentials to refresh, read after the lease was taken. done means no
// refresh is needed (any more): the returned row holds a token that is
// fresh and not stale. While another process holds the lease it waits,
// as long as ctx allows.
func (s *Store) takeLease(ctx context.Context, shopID int64, owner uuid.UUID, stale string) (credentialsRow, bool, error) {
	// Long enough for the holder's call to Etsy and its storing window.
	hold := s.timeout + s.window + 2*time.Second
	for {
		row, err := s.loadCredentials(ctx, s.db, shopID, true)
		if err != nil {
			return row, false, err
		}
		if row.access != stale && s.fresh(row.expires) {
			return row, true, nil
		}
		var got uuid.UUID
		err = s.db.QueryRowContext(ctx, `
INSERT INTO shop_token_refresh_leases (shop_id, owner, until)
VALUES ($1, $2, now() + $3 * interval '1 millisecond')
ON CONFLICT (shop_id) DO UPDATE SET owner = excluded.owner, until = excluded.until
WHERE shop_token_refresh_leases.until < now()
RETURNING owner`, shopID, owner, hold.Milliseconds()).Scan(&got)
		switch {
		case err == nil:
			// Read again under the lease: the previous holder may have
			// stored new tokens between our read and its release.
			row, err := s.loadCredentials(ctx, s.db, shopID, true)
			if err != nil {
				s.releaseLease(shopID, owner)
				return row, false, err
			}
			if row.access != stale && s.fresh(row.expires) {
				s.releaseLease(shopID, owner)
				return row, true, nil
			}
			return row, false, nil
		case !errors.Is(err, sql.ErrNoRows):
			return row, false, fmt.Errorf("take refresh lease: %w", err)
		}
		t := time.NewTimer(leaseWait/2 + time.Duration(rand.Int64N(int64(leaseWait))))
		select {
		case <-ctx.Done():
			t.Stop()
			return row, false, fmt.Errorf("wait for another process's refresh: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// releaseLease ends owner's lease on the shop's refresh. If it fails the
// lease runs out on its own.
func (s *Store) releaseLease(shopID int64, owner uuid.UUID) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.db.ExecContext(ctx, `DELETE FROM shop_token_refresh_leases WHERE shop_id = $1 AND owner = $2`, shopID, owner); err != nil {
		s.log.Warn("release token refresh lease; it runs out on its own", "shop_id", shopID, "err", err)
	}
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

// Backoff between attempts to store rotated tokens, and the bound of one
// attempt: a database that does not answer at all (frozen, or a network
// partition) must not use up the whole window in one attempt.
const (
	storeBackoff    = 100 * time.Millisecond
	storeMaxBackoff = 2 * time.Second
	storeAttempt    = 5 * time.Second
)

// storeRefreshed stores the rotated tokens, guarded by the generation so
// that nothing newer is overwritten, retrying with jittered exponential
// backoff until ctx ends.
func (s *Store) storeRefreshed(ctx context.Context, shopID int64, row credentialsRow, tok etsy.Token) error {
	acc, ref, err := s.sealPair(shopID, row, tok)
	if err != nil {
		return err
	}
	pause := storeBackoff
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, storeAttempt)
		res, err := s.db.ExecContext(actx, updateTokensSQL, shopID, row.generation, acc.keyID, acc.sealed, ref.keyID, ref.sealed, tok.ExpiresAt.UTC(), s.now().UTC())
		cancel()
		if err == nil {
			if n, _ := res.RowsAffected(); n == 1 {
				return nil
			}
			// An earlier attempt may have committed although its answer
			// was lost; then the stored refresh token is ours.
			if attempt > 1 {
				if cur, lerr := s.loadCredentials(ctx, s.db, shopID, true); lerr == nil && cur.refresh == tok.RefreshToken {
					return nil
				}
			}
			return errors.New("credentials changed meanwhile (reconnected, disconnected or reauth_required)")
		}
		if ctx.Err() != nil {
			return fmt.Errorf("after %d attempts: %w", attempt, errors.Join(err, ctx.Err()))
		}
		d := pause/2 + time.Duration(rand.Int64N(int64(pause/2)+1))
		s.log.WarnContext(ctx, "storing the refreshed token failed, retrying", "shop_id", shopID, "attempt", attempt, "pause", d, "err", err)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("after %d attempts: %w", attempt, errors.Join(err, ctx.Err()))
		case <-t.C:
		}
		pause = min(pause*2, storeMaxBackoff)
	}
}

// markReauth records that Etsy refused the refresh token: the shop stops
// being polled until the seller connects it again. It changes nothing if
// the credentials moved on since generation (the seller connected again
// meanwhile).
func (s *Store) markReauth(ctx context.Context, shopID, generation int64, cause error) error {
	now := s.now().UTC()
	reason := "invalid_grant"
	var apiErr *etsy.APIError
	if errors.As(cause, &apiErr) && apiErr.Description != "" {
		reason = "invalid_grant: " + apiErr.Description
	}
	tx, err := eventstore.BeginAppend(ctx, s.db)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	res, err := tx.ExecContext(ctx, `UPDATE shop_connections c SET status = 'reauth_required', status_reason = $2, status_changed_at = $3
		WHERE c.shop_id = $1 AND c.status = 'connected'
		  AND EXISTS (SELECT 1 FROM shop_credentials cr WHERE cr.shop_id = c.shop_id AND cr.generation = $4)`, shopID, reason, now, generation)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	ev := events.New(events.ShopStream(shopID), shopID, now, events.ShopReauthRequired{ShopID: shopID, Reason: reason}).
		WithMetadata(events.Metadata{Source: "shops", Actor: "token-refresh"})
	if _, err := s.es.AppendIn(ctx, tx, events.ShopStream(shopID), eventstore.Any, ev); err != nil {
		return err
	}
	return tx.Commit()
}
