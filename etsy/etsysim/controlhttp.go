package etsysim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// faultsJSON is Faults on the wire, the delay as a Go duration string.
type faultsJSON struct {
	Drop      float64 `json:"drop"`
	Duplicate float64 `json:"duplicate"`
	Reorder   float64 `json:"reorder"`
	Delay     float64 `json:"delay"`
	MaxDelay  string  `json:"max_delay,omitempty"`
}

// MarshalJSON writes the fractions and max_delay as "30s".
func (f Faults) MarshalJSON() ([]byte, error) {
	return json.Marshal(faultsJSON{f.Drop, f.Duplicate, f.Reorder, f.Delay, f.MaxDelay.String()})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (f *Faults) UnmarshalJSON(b []byte) error {
	var w faultsJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*f = Faults{Drop: w.Drop, Duplicate: w.Duplicate, Reorder: w.Reorder, Delay: w.Delay}
	if w.MaxDelay != "" {
		d, err := time.ParseDuration(w.MaxDelay)
		if err != nil {
			return fmt.Errorf("max_delay: %w", err)
		}
		f.MaxDelay = d
	}
	return nil
}

// TokenGrant is a token issued through the control API.
type TokenGrant struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token"`
	ExpiresAt    time.Time `json:"expires_at"`
	UserID       int64     `json:"user_id"`
}

// AppInfo is a registered app's credentials.
type AppInfo struct {
	KeyString     string `json:"key_string"`
	SharedSecret  string `json:"shared_secret"`
	ApplicationID int64  `json:"application_id"`
}

// Apps returns the registered apps' credentials.
func (s *Sim) Apps() []AppInfo {
	out := []AppInfo{}
	for _, a := range s.opts.Apps {
		out = append(out, AppInfo{KeyString: a.KeyString, SharedSecret: a.SharedSecret, ApplicationID: s.apps[a.KeyString].ApplicationID})
	}
	return out
}

type clockJSON struct {
	Now  time.Time `json:"now"`
	Unix int64     `json:"unix"`
}

type stepJSON struct {
	Kind     string   `json:"kind"`
	Count    int      `json:"count,omitempty"`
	Scenario Scenario `json:"scenario"`
}

type stepResult struct {
	Done    []string `json:"done"`
	Skipped int      `json:"skipped"`
}

// routeControl serves the control API under /_sim/. Errors are
// {"error": …} with 404 for unknown ids and 400 for refused requests.
func (s *Sim) routeControl() {
	m := s.mux
	handle := func(pattern string, h func(r *http.Request) (any, error)) {
		m.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
			v, err := h(r)
			if err != nil {
				status := http.StatusInternalServerError
				switch {
				case errors.Is(err, ErrNotFound):
					status = http.StatusNotFound
				case errors.Is(err, ErrInvalid), errors.Is(err, ErrNothingToDo), errors.Is(err, errBadBody):
					status = http.StatusBadRequest
				}
				writeError(w, status, err.Error())
				return
			}
			if v == nil {
				w.WriteHeader(http.StatusNoContent)
				return
			}
			writeJSON(w, http.StatusOK, v)
		})
	}
	handle("GET /_sim/health", func(*http.Request) (any, error) { return map[string]bool{"ok": true}, nil })
	handle("GET /_sim/apps", func(*http.Request) (any, error) { return s.Apps(), nil })
	handle("GET /_sim/shops", func(*http.Request) (any, error) { return s.Shops(), nil })
	handle("POST /_sim/shops", withBody(func(spec ShopSpec) (any, error) {
		return s.CreateShop(spec)
	}))
	handle("POST /_sim/shops/{shop_id}/listings", withIDBody("shop_id", func(sid int64, spec ListingSpec) (any, error) {
		return s.CreateListing(sid, spec)
	}))
	handle("GET /_sim/shops/{shop_id}/listings", withID("shop_id", func(sid int64) (any, error) { return s.Listings(sid), nil }))
	handle("POST /_sim/shops/{shop_id}/catalogue", withIDBody("shop_id", func(sid int64, body struct {
		Listings int `json:"listings"`
	}) (any, error) {
		return s.GenerateCatalogue(sid, body.Listings)
	}))
	handle("POST /_sim/shops/{shop_id}/orders", withIDBody("shop_id", func(sid int64, spec OrderSpec) (any, error) {
		return s.CreateOrder(sid, spec)
	}))
	handle("POST /_sim/shops/{shop_id}/orders/random", withID("shop_id", func(sid int64) (any, error) { return s.RandomOrder(sid) }))
	handle("GET /_sim/shops/{shop_id}/receipts", withID("shop_id", func(sid int64) (any, error) { return s.Receipts(sid), nil }))
	handle("GET /_sim/listings/{listing_id}", withID("listing_id", func(lid int64) (any, error) { return s.Listing(lid) }))
	handle("PATCH /_sim/listings/{listing_id}", withIDBody("listing_id", func(lid int64, e ListingEdit) (any, error) {
		return s.EditListing(lid, e)
	}))
	handle("DELETE /_sim/listings/{listing_id}", withID("listing_id", func(lid int64) (any, error) { return nil, s.DeleteListing(lid) }))
	handle("POST /_sim/listings/{listing_id}/restock", withIDBody("listing_id", func(lid int64, rs Restock) (any, error) {
		return s.RestockListing(lid, rs)
	}))
	handle("GET /_sim/receipts/{receipt_id}", withID("receipt_id", func(rid int64) (any, error) { return s.Receipt(rid) }))
	handle("POST /_sim/receipts/{receipt_id}/cancel", withIDBody("receipt_id", func(rid int64, body struct {
		Restock *bool `json:"restock"`
	}) (any, error) {
		return s.CancelOrder(rid, body.Restock == nil || *body.Restock)
	}))
	handle("POST /_sim/receipts/{receipt_id}/ship", withIDBody("receipt_id", func(rid int64, body struct {
		Carrier  string `json:"carrier_name"`
		Tracking string `json:"tracking_code"`
	}) (any, error) {
		return s.ShipOrder(rid, body.Carrier, body.Tracking)
	}))
	handle("POST /_sim/receipts/{receipt_id}/deliver", withID("receipt_id", func(rid int64) (any, error) { return s.DeliverOrder(rid) }))
	handle("POST /_sim/receipts/{receipt_id}/refund", withIDBody("receipt_id", func(rid int64, body struct {
		Amount int64  `json:"amount"`
		Reason string `json:"reason"`
	}) (any, error) {
		return s.RefundOrder(rid, body.Amount, body.Reason)
	}))
	handle("GET /_sim/truth", func(r *http.Request) (any, error) {
		var sid int64
		if v := r.URL.Query().Get("shop_id"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("shop_id %q: %w", v, ErrInvalid)
			}
			sid = n
		}
		return s.Truth(sid), nil
	})
	handle("GET /_sim/webhooks", func(*http.Request) (any, error) { return s.Webhooks(), nil })
	handle("POST /_sim/webhooks", withBody(func(spec WebhookSpec) (any, error) {
		return s.AddWebhook(spec)
	}))
	handle("POST /_sim/webhooks/{id}/rotate", func(r *http.Request) (any, error) {
		var body struct {
			Secret       string `json:"secret"`
			KeepPrevious bool   `json:"keep_previous"`
		}
		if err := decodeBody(r, &body); err != nil {
			return nil, err
		}
		return s.RotateWebhookSecret(r.PathValue("id"), body.Secret, body.KeepPrevious)
	})
	handle("DELETE /_sim/webhooks/{id}", func(r *http.Request) (any, error) {
		return nil, s.RemoveWebhook(r.PathValue("id"))
	})
	handle("GET /_sim/deliveries", func(r *http.Request) (any, error) {
		q := r.URL.Query()
		f := DeliveryFilter{EventType: q.Get("event_type"), State: q.Get("state"), EndpointID: q.Get("endpoint_id")}
		if v := q.Get("shop_id"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("shop_id %q: %w", v, ErrInvalid)
			}
			f.ShopID = n
		}
		return s.Deliveries(f), nil
	})
	handle("POST /_sim/deliveries/wait", func(r *http.Request) (any, error) {
		timeout := 30 * time.Second
		if v := r.URL.Query().Get("timeout"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return nil, fmt.Errorf("timeout %q: %w", v, ErrInvalid)
			}
			timeout = d
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		if err := s.WaitDeliveries(ctx); err != nil {
			return nil, fmt.Errorf("%w: %w", err, ErrInvalid)
		}
		return nil, nil
	})
	handle("POST /_sim/deliveries/{message_id}/redeliver", func(r *http.Request) (any, error) {
		return nil, s.Redeliver(r.PathValue("message_id"))
	})
	handle("GET /_sim/faults", func(*http.Request) (any, error) { return s.Faults(), nil })
	handle("PUT /_sim/faults", withBody(func(f Faults) (any, error) {
		if err := s.SetFaults(f); err != nil {
			return nil, err
		}
		return s.Faults(), nil
	}))
	handle("GET /_sim/api-faults", func(*http.Request) (any, error) { return s.APIFaults(), nil })
	handle("PUT /_sim/api-faults", withBody(func(f APIFaults) (any, error) {
		if err := s.SetAPIFaults(f); err != nil {
			return nil, err
		}
		return s.APIFaults(), nil
	}))
	handle("GET /_sim/stats", func(*http.Request) (any, error) { return s.Stats(), nil })
	handle("POST /_sim/tokens", withBody(func(body struct {
		ShopID int64    `json:"shop_id"`
		Scopes []string `json:"scopes"`
	}) (any, error) {
		t, err := s.IssueToken(body.ShopID, body.Scopes)
		if err != nil {
			return nil, err
		}
		return TokenGrant{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, ExpiresAt: t.ExpiresAt, UserID: t.UserID}, nil
	}))
	handle("POST /_sim/users/{user_id}/revoke", withID("user_id", func(uid int64) (any, error) { return nil, s.RevokeTokens(uid) }))
	handle("POST /_sim/users/{user_id}/expire-tokens", withID("user_id", func(uid int64) (any, error) { return nil, s.ExpireAccessTokens(uid) }))
	handle("GET /_sim/clock", func(*http.Request) (any, error) {
		now := s.Now()
		return clockJSON{Now: now, Unix: now.Unix()}, nil
	})
	handle("POST /_sim/clock/advance", withBody(func(body struct {
		Seconds float64 `json:"seconds"`
	}) (any, error) {
		if body.Seconds < 0 {
			return nil, fmt.Errorf("seconds %v: %w", body.Seconds, ErrInvalid)
		}
		s.Advance(time.Duration(body.Seconds * float64(time.Second)))
		now := s.Now()
		return clockJSON{Now: now, Unix: now.Unix()}, nil
	}))
	handle("POST /_sim/scenario/step", withBody(func(body stepJSON) (any, error) {
		res := stepResult{Done: []string{}}
		for range max(body.Count, 1) {
			desc, err := s.ScenarioStep(body.Kind, body.Scenario)
			switch {
			case errors.Is(err, ErrNothingToDo):
				res.Skipped++
			case err != nil:
				return nil, err
			default:
				res.Done = append(res.Done, desc)
			}
		}
		return res, nil
	}))
	m.HandleFunc("/_sim/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "unknown control route "+r.Method+" "+r.URL.Path)
	})
}

// withID passes a control route's handler the integer id in path
// parameter param.
func withID(param string, h func(id int64) (any, error)) func(*http.Request) (any, error) {
	return func(r *http.Request) (any, error) {
		id, err := controlID(r, param)
		if err != nil {
			return nil, err
		}
		return h(id)
	}
}

// withBody passes a control route's handler its decoded JSON body.
func withBody[B any](h func(body B) (any, error)) func(*http.Request) (any, error) {
	return func(r *http.Request) (any, error) {
		var body B
		if err := decodeBody(r, &body); err != nil {
			return nil, err
		}
		return h(body)
	}
}

// withIDBody passes a control route's handler the id in path parameter
// param and then its decoded JSON body.
func withIDBody[B any](param string, h func(id int64, body B) (any, error)) func(*http.Request) (any, error) {
	return func(r *http.Request) (any, error) {
		id, err := controlID(r, param)
		if err != nil {
			return nil, err
		}
		return withBody(func(body B) (any, error) { return h(id, body) })(r)
	}
}

// controlID reads the integer id in path parameter param.
func controlID(r *http.Request, param string) (int64, error) {
	n, err := strconv.ParseInt(r.PathValue(param), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s %q: %w", param, r.PathValue(param), ErrInvalid)
	}
	return n, nil
}

var errBadBody = errors.New("bad request body")

// decodeBody reads a JSON body strictly; an empty body leaves v as is.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if err.Error() == "EOF" {
			return nil
		}
		return fmt.Errorf("decode body: %w: %w", err, errBadBody)
	}
	return nil
}
