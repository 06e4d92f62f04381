package shops

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/shopledger/shopledger/accounts"
	"github.com/shopledger/shopledger/etsy"
)

// Binding ties a pending authorization to the organisation and member
// that started it from the app, and to their browser session (the SHA-256
// of its id): only that browser can complete it, and the shop joins that
// organisation.
type Binding struct {
	OrgID       int64
	UserID      uuid.UUID
	SessionHash []byte
}

var (
	// ErrOtherSession means the browser completing a flow is not the one
	// that started it.
	ErrOtherSession = errors.New("this connection was started in another browser session")
	// ErrOwnedElsewhere means another organisation owns the shop.
	ErrOwnedElsewhere = errors.New("the shop is connected to another organisation")
)

// AppConnectConfig configures the connect flow as the app starts it.
type AppConnectConfig struct {
	// AppURL is the app's root (https://ledger.example.com); the flow ends
	// on its shop page, and every refusal links back to it.
	AppURL string
	// SessionCookie is the name of the app's session cookie.
	SessionCookie string
}

// AppHandlers returns the handlers of the connect flow started from the
// app: start (GET /connect/etsy?intent=…) and callback (the redirect
// URL). start writes nothing unless the intent is live and the browser
// presents the session that made it; callback refuses a state presented
// by any other session. A flow an operator started (ledger shops connect)
// carries no binding and completes as before.
func (c *Connector) AppHandlers(cfg AppConnectConfig) (start, callback http.Handler) {
	app := strings.TrimRight(cfg.AppURL, "/")
	refuse := func(w http.ResponseWriter, status int, msg string) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		_ = refusalPage.Execute(w, struct{ Message, App string }{msg, app})
	}
	sessionHash := func(r *http.Request) []byte {
		ck, err := r.Cookie(cfg.SessionCookie)
		if err != nil || ck.Value == "" {
			return nil
		}
		h := sha256.Sum256([]byte(ck.Value))
		return h[:]
	}
	start = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := c.store.takeIntent(r.Context(), r.URL.Query().Get("intent"), sessionHash(r))
		if errors.Is(err, ErrUnknownState) {
			refuse(w, http.StatusBadRequest, "This connection link is unknown, used, expired or was opened in another browser. Start again from the app.")
			return
		}
		if err != nil {
			c.log.ErrorContext(r.Context(), "take connect intent", "err", err)
			refuse(w, http.StatusServiceUnavailable, "Could not start connecting to Etsy; try again.")
			return
		}
		u, err := c.begin(r.Context(), b)
		if err != nil {
			c.log.ErrorContext(r.Context(), "begin etsy authorization", "err", err)
			refuse(w, http.StatusServiceUnavailable, "Could not start connecting to Etsy; try again.")
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, u, http.StatusFound)
	})
	callback = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		state, code := q.Get("state"), q.Get("code")
		if state == "" {
			refuse(w, http.StatusBadRequest, "This connection link is unknown, used or expired. Start again from the app.")
			return
		}
		verifier, b, err := c.store.takePending(r.Context(), state)
		if b == nil && err == nil {
			// Started by an operator: the flow as it always was.
			if q.Get("error") != "" || code == "" {
				c.respondOperator(w, r, Shop{}, cmp.Or(q.Get("error"), "no code"), nil)
				return
			}
			sh, err := c.finish(r.Context(), verifier, code, nil)
			c.respondOperator(w, r, sh, "", err)
			return
		}
		switch {
		case errors.Is(err, ErrUnknownState):
			refuse(w, http.StatusBadRequest, "This connection link is unknown, used or expired. Start again from the app.")
			return
		case err != nil:
			c.log.ErrorContext(r.Context(), "complete etsy authorization", "err", err)
			refuse(w, http.StatusBadGateway, "Connecting the shop failed; try again from the app.")
			return
		case subtle.ConstantTimeCompare(b.SessionHash, sessionHash(r)) != 1:
			refuse(w, http.StatusForbidden, ErrOtherSession.Error()+": start again from the app in this browser.")
			return
		case q.Get("error") != "" || code == "":
			refuse(w, http.StatusBadRequest, "Etsy did not grant access ("+q.Get("error")+"). Start again from the app.")
			return
		}
		sh, err := c.finish(r.Context(), verifier, code, func(s etsy.Shop) error { return c.store.claimShop(r.Context(), s.ShopID, b.OrgID) })
		if err == nil {
			err = accounts.Record(r.Context(), c.store.db, c.store.now(), accounts.AuditEntry{OrgID: b.OrgID, ActorID: b.UserID, Action: accounts.ActionShopConnected,
				Target: strconv.FormatInt(sh.ShopID, 10), Address: clientAddress(r), UserAgent: r.UserAgent(), Detail: map[string]string{"shop_name": sh.Name}})
		}
		switch {
		case errors.Is(err, ErrOwnedElsewhere):
			refuse(w, http.StatusConflict, "This Etsy shop is connected to another organisation. Its owners can add you as a member instead.")
		case errors.Is(err, ErrNoShop):
			refuse(w, http.StatusBadRequest, "This Etsy account has no shop.")
		case err != nil:
			c.log.ErrorContext(r.Context(), "complete etsy authorization", "err", err)
			refuse(w, http.StatusBadGateway, "Connecting the shop failed; try again from the app.")
		default:
			w.Header().Set("Cache-Control", "no-store")
			http.Redirect(w, r, app+"/shops/"+strconv.FormatInt(sh.ShopID, 10)+"?notice=connected", http.StatusSeeOther)
		}
	})
	return start, callback
}

// respondOperator answers the callback of a flow an operator started.
func (c *Connector) respondOperator(w http.ResponseWriter, r *http.Request, sh Shop, etsyError string, err error) {
	w.Header().Set("Cache-Control", "no-store")
	if etsyError != "" {
		http.Error(w, "Etsy did not grant access ("+etsyError+").", http.StatusBadRequest)
		return
	}
	c.respondConnected(w, r, sh, err)
}

var refusalPage = template.Must(template.New("refusal").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Connecting a shop · shopledger</title></head>
<body><main><h1>Connecting a shop</h1><p>{{.Message}}</p><p><a href="{{.App}}/">Back to shopledger</a></p></main></body></html>`))

// begin stores a fresh state, bound to b unless nil, and returns Etsy's
// consent URL.
func (c *Connector) begin(ctx context.Context, b *Binding) (string, error) {
	state, err := etsy.NewState()
	if err != nil {
		return "", fmt.Errorf("begin authorization: %w", err)
	}
	verifier, challenge, err := etsy.NewPKCE()
	if err != nil {
		return "", fmt.Errorf("begin authorization: %w", err)
	}
	if err := c.store.savePending(ctx, state, verifier, c.ttl, b); err != nil {
		return "", fmt.Errorf("begin authorization: %w", err)
	}
	return c.oauth.AuthCodeURL(state, challenge), nil
}

// takeIntent deletes the intent and returns its binding when it is live
// and was made by the session presenting it.
func (s *Store) takeIntent(ctx context.Context, intent string, session []byte) (*Binding, error) {
	if intent == "" || session == nil {
		return nil, ErrUnknownState
	}
	h := sha256.Sum256([]byte(intent))
	var b Binding
	var expires time.Time
	err := s.db.QueryRowContext(ctx, `DELETE FROM connect_intents WHERE intent_hash = $1 RETURNING org_id, user_id, session_hash, expires_at`, h[:]).
		Scan(&b.OrgID, &b.UserID, &b.SessionHash, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrUnknownState
	}
	if err != nil {
		return nil, fmt.Errorf("take connect intent: %w", err)
	}
	if !s.now().Before(expires) || subtle.ConstantTimeCompare(b.SessionHash, session) != 1 {
		return nil, ErrUnknownState
	}
	return &b, nil
}

// claimShop makes the organisation the shop's owner unless another
// organisation owns it. It runs before the connection is stored, so the
// operator's rule (a connected shop joins its Etsy seller's organisation)
// finds the shop owned already.
func (s *Store) claimShop(ctx context.Context, shopID, org int64) error {
	var owner int64
	err := s.db.QueryRowContext(ctx, `WITH ins AS (
			INSERT INTO organisation_shops (shop_id, org_id) VALUES ($1, $2) ON CONFLICT (shop_id) DO NOTHING RETURNING org_id)
		SELECT org_id FROM ins UNION ALL SELECT org_id FROM organisation_shops WHERE shop_id = $1`, shopID, org).Scan(&owner)
	if err != nil {
		return fmt.Errorf("claim shop %d: %w", shopID, err)
	}
	if owner != org {
		return ErrOwnedElsewhere
	}
	return nil
}

// clientAddress is the host of RemoteAddr: ingest sits behind the same
// proxy as the app, whose logs name the client; the trail keeps what
// this process saw.
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
