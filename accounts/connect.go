package accounts

import (
	"context"
	"fmt"
	"time"
)

// ConnectIntentTTL is how long a "Connect an Etsy shop" click stays good
// for ingest to start the OAuth flow.
const ConnectIntentTTL = 10 * time.Minute

// connectStartsPerOrg bounds the connect flows an organisation starts per
// ConnectIntentTTL: each sends a browser to Etsy and leaves a pending row.
const connectStartsPerOrg = 10

// StartConnect records that an owner of the session's organisation asked
// to connect an Etsy shop, from this browser session, and returns the
// single-use token ingest's /connect/etsy takes. Starts are rate-limited
// per organisation.
func (s *Store) StartConnect(ctx context.Context, sess Session, c Client) (string, error) {
	a := sess.Actor(c)
	if err := a.mustManage(); err != nil {
		return "", err
	}
	n, err := s.count(ctx, fmt.Sprintf("connect-org:%d", a.OrgID), ConnectIntentTTL)
	if err != nil {
		return "", err
	}
	if n > connectStartsPerOrg {
		return "", &ThrottledError{RetryAfter: ConnectIntentTTL}
	}
	token, hash, err := newSecret()
	if err != nil {
		return "", err
	}
	now := s.now().UTC()
	if _, err := s.db.ExecContext(ctx, `INSERT INTO connect_intents (intent_hash, org_id, user_id, session_hash, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, hash, a.OrgID, a.UserID, sess.ID.hash(), now, now.Add(ConnectIntentTTL)); err != nil {
		return "", fmt.Errorf("start connect: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM connect_intents WHERE expires_at < $1`, now); err != nil {
		return "", fmt.Errorf("purge connect intents: %w", err)
	}
	return token, s.Record(ctx, nil, a.audit(ActionShopConnectStarted, "", nil))
}
