package shops

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/internal/defaults"
)

var (
	// ErrUnknownState means a callback's state was never issued, was
	// used already or expired: the seller must start again.
	ErrUnknownState = errors.New("unknown, used or expired oauth state")
	// ErrAccessDenied means Etsy sent the seller back with an error
	// instead of a code (the seller declined, or the request was bad).
	ErrAccessDenied = errors.New("etsy did not grant access")
	// ErrNoShop means the consenting Etsy user has no shop.
	ErrNoShop = errors.New("etsy user has no shop")
)

// ConnectorConfig configures a Connector.
type ConnectorConfig struct {
	Store *Store
	// OAuth is the app's OAuth setup; its RedirectURL must lead to the
	// callback handler (or to a caller of Complete).
	OAuth etsy.OAuthConfig
	// Client calls getMe and getShop with the new token.
	Client *etsy.Client
	// StateTTL is how long a started authorization may take; default 10
	// minutes.
	StateTTL time.Duration
	Logger   *slog.Logger
}

// Connector runs Etsy's authorization-code flow with PKCE. Pending
// authorizations live in the database, so a flow started by one process
// (the ledger CLI, say) can be completed by another (ingest's callback).
type Connector struct {
	store  *Store
	oauth  etsy.OAuthConfig
	client *etsy.Client
	ttl    time.Duration
	log    *slog.Logger
}

// NewConnector checks cfg.
func NewConnector(cfg ConnectorConfig) (*Connector, error) {
	if cfg.Store == nil || cfg.Client == nil {
		return nil, errors.New("new connector: store and etsy client are required")
	}
	if cfg.OAuth.ClientID == "" || cfg.OAuth.RedirectURL == "" {
		return nil, errors.New("new connector: oauth client id and redirect url are required")
	}
	if len(cfg.OAuth.Scopes) == 0 {
		cfg.OAuth.Scopes = DefaultScopes()
	}
	c := &Connector{store: cfg.Store, oauth: cfg.OAuth, client: cfg.Client, ttl: cfg.StateTTL, log: cfg.Logger}
	defaults.Positive(&c.ttl, 10*time.Minute)
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// DefaultScopes are the scopes the ledger asks a seller for: read
// listings and inventory, write inventory, read receipts, read the shop.
func DefaultScopes() []string {
	return []string{etsy.ScopeListingsRead, etsy.ScopeListingsWrite, etsy.ScopeTransactionsRead, etsy.ScopeShopsRead}
}

// Begin starts an authorization: it stores a fresh single-use state with
// its PKCE verifier and returns the Etsy URL to send the seller to.
func (c *Connector) Begin(ctx context.Context) (string, error) {
	return c.begin(ctx, nil)
}

// Callback completes an authorization from the query Etsy redirected the
// seller back with.
func (c *Connector) Callback(ctx context.Context, q url.Values) (Shop, error) {
	state := q.Get("state")
	if e := q.Get("error"); e != "" {
		// Burn the state: a denied request must not be completed later.
		if state != "" {
			_, _, _ = c.store.takePending(ctx, state)
		}
		return Shop{}, fmt.Errorf("complete authorization: %w: %s", ErrAccessDenied, e)
	}
	return c.Complete(ctx, state, q.Get("code"))
}

// Complete exchanges the code of a pending authorization, identifies the
// seller and shop, stores the tokens and appends shop.connected.
func (c *Connector) Complete(ctx context.Context, state, code string) (Shop, error) {
	if state == "" || code == "" {
		return Shop{}, fmt.Errorf("complete authorization: state and code are required: %w", ErrUnknownState)
	}
	verifier, _, err := c.store.takePending(ctx, state)
	if err != nil {
		return Shop{}, fmt.Errorf("complete authorization: %w", err)
	}
	return c.finish(ctx, verifier, code, nil)
}

// finish exchanges the code, identifies the seller and shop, lets claim
// refuse the shop (nil accepts any), stores the tokens and appends
// shop.connected.
func (c *Connector) finish(ctx context.Context, verifier, code string, claim func(etsy.Shop) error) (Shop, error) {
	tok, err := c.oauth.Exchange(ctx, code, verifier)
	if err != nil {
		return Shop{}, fmt.Errorf("complete authorization: %w", err)
	}
	ts := etsy.StaticTokenSource(tok.AccessToken)
	me, err := c.client.GetMe(ctx, ts)
	if err != nil {
		return Shop{}, fmt.Errorf("complete authorization: %w", err)
	}
	if me.UserID != tok.UserID {
		return Shop{}, fmt.Errorf("complete authorization: getMe user %d, token user %d: %w", me.UserID, tok.UserID, ErrGrantMismatch)
	}
	if me.ShopID == 0 {
		return Shop{}, fmt.Errorf("complete authorization: user %d: %w", me.UserID, ErrNoShop)
	}
	shop, err := c.client.GetShop(ctx, ts, me.ShopID)
	if err != nil {
		return Shop{}, fmt.Errorf("complete authorization: %w", err)
	}
	if shop.UserID == 0 {
		shop.UserID = me.UserID
	}
	if claim != nil {
		if err := claim(shop); err != nil {
			return Shop{}, fmt.Errorf("complete authorization: %w", err)
		}
	}
	sh, err := c.store.Connect(ctx, Grant{Shop: shop, Token: tok, Scopes: c.oauth.Scopes},
		events.Metadata{Source: "oauth", Actor: "seller:" + strconv.FormatInt(me.UserID, 10)})
	if err != nil {
		return Shop{}, fmt.Errorf("complete authorization: %w", err)
	}
	return sh, nil
}

// StartHandler serves GET /connect/etsy: a redirect to Etsy's consent page.
func (c *Connector) StartHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := c.Begin(r.Context())
		if err != nil {
			c.log.ErrorContext(r.Context(), "begin etsy authorization", "err", err)
			http.Error(w, "could not start connecting to Etsy; try again", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, u, http.StatusFound)
	})
}

// CallbackHandler serves the redirect URL Etsy sends the seller back to.
func (c *Connector) CallbackHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		sh, err := c.Callback(r.Context(), r.URL.Query())
		switch {
		case errors.Is(err, ErrAccessDenied):
			http.Error(w, "Etsy did not grant access ("+r.URL.Query().Get("error")+"). Start again from /connect/etsy.", http.StatusBadRequest)
		case errors.Is(err, ErrUnknownState):
			http.Error(w, "This connection link is unknown, used or expired. Start again from /connect/etsy.", http.StatusBadRequest)
		default:
			c.respondConnected(w, r, sh, err)
		}
	})
}

// respondConnected answers a callback Etsy granted: the account has no
// shop, completing failed (logged here), or the shop is connected.
func (c *Connector) respondConnected(w http.ResponseWriter, r *http.Request, sh Shop, err error) {
	switch {
	case errors.Is(err, ErrNoShop):
		http.Error(w, "This Etsy account has no shop.", http.StatusBadRequest)
	case err != nil:
		c.log.ErrorContext(r.Context(), "complete etsy authorization", "err", err)
		http.Error(w, "Connecting the shop failed; try again.", http.StatusBadGateway)
	default:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "Connected shop %q (%d). You can close this window.\n", sh.Name, sh.ShopID)
	}
}

func stateHash(state string) []byte {
	h := sha256.Sum256([]byte(state))
	return h[:]
}

func verifierAAD(hash []byte) []byte {
	return []byte("shopledger/oauth_pending/v1/verifier/state=" + hex.EncodeToString(hash))
}

func (s *Store) savePending(ctx context.Context, state, verifier string, ttl time.Duration, b *Binding) error {
	if s.keys == nil {
		return fmt.Errorf("store pending authorization: no token keys configured: %w", ErrKeyring)
	}
	hash := stateHash(state)
	key, sealed, err := s.keys.Seal([]byte(verifier), verifierAAD(hash))
	if err != nil {
		return err
	}
	now := s.now().UTC()
	if _, err := s.db.ExecContext(ctx, `DELETE FROM oauth_pending WHERE expires_at < $1`, now); err != nil {
		return fmt.Errorf("purge expired authorizations: %w", err)
	}
	if b == nil {
		b = &Binding{}
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO oauth_pending (state_hash, verifier_key, verifier, created_at, expires_at, org_id, user_id, session_hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		hash, key, sealed, now, now.Add(ttl), sql.NullInt64{Int64: b.OrgID, Valid: b.OrgID > 0}, uuid.NullUUID{UUID: b.UserID, Valid: b.UserID != uuid.Nil}, b.SessionHash); err != nil {
		return fmt.Errorf("store pending authorization: %w", err)
	}
	return nil
}

// takePending deletes the state's row and returns its verifier and its
// binding (nil for a flow an operator started): a state works once, and
// only before it expires.
func (s *Store) takePending(ctx context.Context, state string) (string, *Binding, error) {
	hash := stateHash(state)
	var key string
	var sealed []byte
	var expires time.Time
	var org sql.NullInt64
	var user uuid.NullUUID
	var session []byte
	err := s.db.QueryRowContext(ctx, `DELETE FROM oauth_pending WHERE state_hash = $1 RETURNING verifier_key, verifier, expires_at, org_id, user_id, session_hash`, hash).
		Scan(&key, &sealed, &expires, &org, &user, &session)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil, ErrUnknownState
	}
	if err != nil {
		return "", nil, fmt.Errorf("take pending authorization: %w", err)
	}
	if !s.now().Before(expires) {
		return "", nil, ErrUnknownState
	}
	if s.keys == nil {
		return "", nil, fmt.Errorf("take pending authorization: no token keys configured: %w", ErrKeyring)
	}
	v, err := s.keys.Open(key, sealed, verifierAAD(hash))
	if err != nil {
		return "", nil, fmt.Errorf("take pending authorization: %w", err)
	}
	var b *Binding
	if session != nil {
		b = &Binding{OrgID: org.Int64, UserID: user.UUID, SessionHash: session}
	}
	return string(v), b, nil
}
