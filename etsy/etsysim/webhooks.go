package etsysim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/stdwebhooks"
)

// RetrySchedule is Etsy's (Svix's) delay before each attempt, counted
// from the previous failure: 8 attempts over about 27.6 hours.
var RetrySchedule = []time.Duration{
	0, 5 * time.Second, 5 * time.Minute, 30 * time.Minute,
	2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
}

// AllEvents are the event types the simulator emits.
var AllEvents = []string{
	etsy.EventOrderPaid, etsy.EventOrderCanceled, etsy.EventOrderShipped, etsy.EventOrderDelivered,
	etsy.EventInventoryUpdated, etsy.EventInventoryOutOfStock,
	etsy.EventListingCreated, etsy.EventListingUpdated, etsy.EventListingDeleted,
}

type webhookState struct {
	endpoints []*endpoint
	msgs      []*message // every (message, endpoint) pair, in creation order
	seq       int
	changed   chan struct{} // closed and replaced on every state change
	faults    Faults
}

func (h *webhookState) init() { h.changed = make(chan struct{}) }

func (h *webhookState) notify() {
	close(h.changed)
	h.changed = make(chan struct{})
}

type endpoint struct {
	WebhookEndpoint
	busy bool // an attempt is in flight; one at a time keeps order
}

type message struct {
	d        Delivery
	ep       *endpoint
	seq      int
	attempt  int // index into RetrySchedule of the next attempt
	due      time.Time
	pending  bool // waiting for an attempt at due
	held     bool // reorder fault: waiting to be overtaken
	dupLeft  bool // duplicate fault: send once more after success
	inflight bool
	isDup    bool // the pending send is the duplicate
}

// AddWebhook registers an endpoint, as Etsy's webhook portal does.
func (s *Sim) AddWebhook(spec WebhookSpec) (WebhookEndpoint, error) {
	if spec.URL == "" {
		return WebhookEndpoint{}, fmt.Errorf("add webhook: url is required: %w", ErrInvalid)
	}
	for _, e := range spec.EventTypes {
		if !slices.Contains(AllEvents, e) {
			return WebhookEndpoint{}, fmt.Errorf("add webhook: unknown event type %q: %w", e, ErrInvalid)
		}
	}
	if spec.Secret == "" {
		sec, err := stdwebhooks.NewSecret()
		if err != nil {
			return WebhookEndpoint{}, fmt.Errorf("add webhook: %w", err)
		}
		spec.Secret = sec
	} else if _, err := stdwebhooks.ParseSecret(spec.Secret); err != nil {
		return WebhookEndpoint{}, fmt.Errorf("add webhook: %w: %w", err, ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks.seq++
	ep := &endpoint{WebhookEndpoint: WebhookEndpoint{
		ID: "ep_" + strconv.Itoa(s.hooks.seq), URL: spec.URL, Secret: spec.Secret,
		EventTypes: slices.Clone(spec.EventTypes), ShopIDs: slices.Clone(spec.ShopIDs),
	}}
	s.hooks.endpoints = append(s.hooks.endpoints, ep)
	return ep.WebhookEndpoint, nil
}

// RotateWebhookSecret gives an endpoint a new secret (generated when
// secret is empty). With keepPrevious the old secret keeps signing too —
// the header then carries two v1 signatures — until the next rotation.
func (s *Sim) RotateWebhookSecret(id, secret string, keepPrevious bool) (WebhookEndpoint, error) {
	if secret == "" {
		var err error
		if secret, err = stdwebhooks.NewSecret(); err != nil {
			return WebhookEndpoint{}, fmt.Errorf("rotate webhook secret: %w", err)
		}
	} else if _, err := stdwebhooks.ParseSecret(secret); err != nil {
		return WebhookEndpoint{}, fmt.Errorf("rotate webhook secret: %w: %w", err, ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.hooks.endpoints, func(ep *endpoint) bool { return ep.ID == id })
	if i < 0 {
		return WebhookEndpoint{}, fmt.Errorf("rotate webhook secret %q: %w", id, ErrNotFound)
	}
	ep := s.hooks.endpoints[i]
	ep.PreviousSecret = ""
	if keepPrevious {
		ep.PreviousSecret = ep.Secret
	}
	ep.Secret = secret
	return ep.WebhookEndpoint, nil
}

// Webhooks lists the registered endpoints.
func (s *Sim) Webhooks() []WebhookEndpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []WebhookEndpoint{}
	for _, ep := range s.hooks.endpoints {
		out = append(out, ep.WebhookEndpoint)
	}
	return out
}

// RemoveWebhook deletes an endpoint; its pending deliveries stop, as on
// Etsy.
func (s *Sim) RemoveWebhook(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.hooks.endpoints, func(ep *endpoint) bool { return ep.ID == id })
	if i < 0 {
		return fmt.Errorf("remove webhook %q: %w", id, ErrNotFound)
	}
	ep := s.hooks.endpoints[i]
	ep.Disabled = true
	s.hooks.endpoints = slices.Delete(s.hooks.endpoints, i, i+1)
	for _, m := range s.hooks.msgs {
		if m.ep == ep && m.pending {
			m.pending = false
			if m.d.State == DeliveryPending {
				m.d.State = DeliveryFailed
			}
		}
	}
	s.hooks.notify()
	return nil
}

// SetFaults changes the fault fractions for messages emitted from now on.
func (s *Sim) SetFaults(f Faults) error {
	if f.MaxDelay == 0 {
		f.MaxDelay = 30 * time.Second
	}
	if err := f.validate(); err != nil {
		return fmt.Errorf("set faults: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks.faults = f
	return nil
}

// Faults returns the fault fractions in force.
func (s *Sim) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hooks.faults
}

// newMessageIDLocked returns "msg_" and 27 characters, as Etsy's (Svix's)
// ids look: the start's nonce, then the seeded source's characters. It
// draws 27 characters whatever the nonce's length, so the data a seed
// produces does not depend on the nonce.
func (s *Sim) newMessageIDLocked() string {
	opaque := s.opaqueLocked(messageIDChars)
	return "msg_" + s.opts.WebhookIDNonce + opaque[len(s.opts.WebhookIDNonce):]
}

const (
	messageIDChars = 27
	// maxNonce leaves 11 seeded characters to tell one start's ids apart.
	maxNonce = 16
	// nonceChars is the length of a generated nonce: 62^8 (about 2e14)
	// values make two starts sharing one negligible.
	nonceChars = 8
)

// randomNonce draws a webhook id nonce from the operating system's
// randomness, never from the seed: its whole point is to differ between
// runs of one seed.
func randomNonce() string {
	b := make([]byte, nonceChars)
	for i := range b {
		b[i] = opaqueAlphabet[rand.IntN(len(opaqueAlphabet))]
	}
	return string(b)
}

// authorisedLocked reports whether the owner of shopID holds a grant
// that is not revoked.
func (s *Sim) authorisedLocked(shopID int64) bool {
	sh := s.shops[shopID]
	if sh == nil {
		return false
	}
	for _, t := range s.oauth.refresh {
		if t.userID == sh.userID && !t.revoked {
			return true
		}
	}
	return false
}

// emitLocked raises an event: one message (one webhook-id) delivered to
// every endpoint subscribed, each with its own fault decisions.
func (s *Sim) emitLocked(eventType string, shopID int64, resourceURL string) {
	if s.opts.WebhooksAuthorisedOnly && !s.authorisedLocked(shopID) {
		return
	}
	var targets []*endpoint
	for _, ep := range s.hooks.endpoints {
		if ep.Disabled || (len(ep.EventTypes) > 0 && !slices.Contains(ep.EventTypes, eventType)) ||
			(len(ep.ShopIDs) > 0 && !slices.Contains(ep.ShopIDs, shopID)) {
			continue
		}
		targets = append(targets, ep)
	}
	if len(targets) == 0 {
		// Nobody listens: no message, as on Etsy.
		return
	}
	body, _ := json.Marshal(struct {
		EventType   string `json:"event_type"`
		ResourceURL string `json:"resource_url"`
		ShopID      int64  `json:"shop_id"`
	}{eventType, resourceURL, shopID})
	id := s.newMessageIDLocked()
	now := s.clock.now()
	f := s.hooks.faults
	for _, ep := range targets {
		s.hooks.seq++
		m := &message{
			ep: ep, seq: s.hooks.seq, due: now, pending: true,
			d: Delivery{
				MessageID: id, EndpointID: ep.ID, EventType: eventType, ShopID: shopID,
				ResourceURL: resourceURL, Body: string(body), State: DeliveryPending,
				Attempts: []Attempt{}, CreatedAt: now,
			},
		}
		s.stats.webhookMessages++
		// Draw every fault so the random sequence does not depend on
		// which ones fire.
		drop, dup, reorder, delay, delayBy := s.rng.Float64(), s.rng.Float64(), s.rng.Float64(), s.rng.Float64(), s.rng.Float64()
		switch {
		case drop < f.Drop:
			m.pending = false
			m.d.State = DeliveryDropped
			m.d.Faults = append(m.d.Faults, "drop")
			s.stats.webhookDropped++
		default:
			if dup < f.Duplicate {
				m.dupLeft = true
				m.d.Faults = append(m.d.Faults, "duplicate")
			}
			if reorder < f.Reorder {
				m.held = true
				m.due = now.Add(f.MaxDelay)
				m.d.Faults = append(m.d.Faults, "reorder")
			} else if delay < f.Delay {
				m.due = now.Add(time.Duration(delayBy * float64(f.MaxDelay)))
				m.d.Faults = append(m.d.Faults, "delay")
			}
		}
		s.hooks.msgs = append(s.hooks.msgs, m)
	}
	s.hooks.notify()
	s.wake()
}

// deliveryLoop sends due messages, one at a time per endpoint so that
// without faults each endpoint sees events in order.
func (s *Sim) deliveryLoop(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		s.mu.Lock()
		now := s.clock.now()
		var next time.Time
		for _, ep := range s.hooks.endpoints {
			if ep.busy || ep.Disabled {
				continue
			}
			var pick *message
			for _, m := range s.hooks.msgs {
				if m.ep != ep || !m.pending || m.inflight {
					continue
				}
				if m.due.After(now) {
					if next.IsZero() || m.due.Before(next) {
						next = m.due
					}
					continue
				}
				if pick == nil || m.due.Before(pick.due) || (m.due.Equal(pick.due) && m.seq < pick.seq) {
					pick = m
				}
			}
			if pick != nil {
				ep.busy, pick.inflight = true, true
				req := attemptReq{m: pick, url: ep.URL, secrets: []string{ep.Secret}, id: pick.d.MessageID, body: []byte(pick.d.Body)}
				if ep.PreviousSecret != "" {
					req.secrets = append(req.secrets, ep.PreviousSecret)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					s.attempt(ctx, req)
				}()
			}
		}
		s.mu.Unlock()

		var timer *time.Timer
		var fire <-chan time.Time
		if !next.IsZero() {
			if d := s.clock.realDuration(next.Sub(now)); d >= 0 {
				timer = time.NewTimer(max(d, time.Millisecond))
				fire = timer.C
			}
		}
		select {
		case <-ctx.Done():
		case <-s.wakeCh:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

type attemptReq struct {
	m       *message
	url     string
	secrets []string // each signs; the header lists every signature
	id      string
	body    []byte
}

// attempt POSTs one message as Etsy does: webhook-id fixed across
// retries, webhook-timestamp and signature fresh per attempt.
func (s *Sim) attempt(ctx context.Context, a attemptReq) {
	sent := s.clock.now()
	status, errText := 0, ""
	var sigs []string
	var err error
	for _, sec := range a.secrets {
		var sig string
		if sig, err = stdwebhooks.Sign(sec, a.id, sent, a.body); err != nil {
			break
		}
		sigs = append(sigs, sig)
	}
	if err == nil {
		actx, cancel := context.WithTimeout(ctx, s.opts.WebhookTimeout)
		var req *http.Request
		req, err = http.NewRequestWithContext(actx, http.MethodPost, a.url, bytes.NewReader(a.body))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("User-Agent", "Svix-Webhooks/1.0 (etsysim)")
			req.Header.Set(stdwebhooks.HeaderID, a.id)
			req.Header.Set(stdwebhooks.HeaderTimestamp, strconv.FormatInt(sent.Unix(), 10))
			req.Header.Set(stdwebhooks.HeaderSignature, strings.Join(sigs, " "))
			var resp *http.Response
			resp, err = s.opts.HTTPClient.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
				resp.Body.Close()
				status = resp.StatusCode
			}
		}
		cancel()
	}
	if err != nil {
		errText = err.Error()
	}
	if ctx.Err() != nil {
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	m := a.m
	now := s.clock.now()
	m.inflight = false
	m.ep.busy = false
	m.d.Attempts = append(m.d.Attempts, Attempt{At: sent, Timestamp: sent.Unix(), Status: status, Error: errText, Duplicate: m.isDup})
	s.stats.webhookAttempts++
	ok := status >= 200 && status < 300
	switch {
	case m.isDup:
		// The duplicate is a replay of a delivered message; its fate
		// does not change the delivery's.
		m.pending, m.isDup = false, false
	case ok:
		s.stats.webhookSucceeded++
		m.d.State = DeliverySucceeded
		m.pending = false
		if m.dupLeft {
			m.dupLeft = false
			m.pending, m.isDup = true, true
			m.due = now.Add(time.Duration(s.rng.Float64() * float64(5*time.Second)))
		}
	case status == http.StatusGone:
		// Standard Webhooks: 410 means "stop sending"; the sender
		// disables the endpoint.
		m.ep.Disabled = true
		for _, o := range s.hooks.msgs {
			if o.ep == m.ep && (o == m || (o.pending && !o.inflight)) {
				o.pending = false
				if o.d.State == DeliveryPending {
					o.d.State = DeliveryFailed
					s.stats.webhookFailed++
				}
			}
		}
	default:
		m.attempt++
		if m.attempt >= len(RetrySchedule) {
			m.pending = false
			m.d.State = DeliveryFailed
			s.stats.webhookFailed++
			break
		}
		m.due = now.Add(time.Duration(float64(RetrySchedule[m.attempt]) * s.opts.WebhookRetryScale))
	}
	if m.pending {
		m.d.NextAttempt = m.due
	} else {
		m.d.NextAttempt = time.Time{}
	}
	// A held (reorder) message goes out once a later one has.
	if !m.held {
		for _, o := range s.hooks.msgs {
			if o.ep == m.ep && o.held && o.seq < m.seq {
				o.held = false
				o.due = now
			}
		}
	}
	m.held = false
	s.hooks.notify()
	s.wake()
}

// Deliveries lists webhook deliveries matching f, oldest first.
func (s *Sim) Deliveries(f DeliveryFilter) []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Delivery{}
	for _, m := range s.hooks.msgs {
		d := m.d
		if (f.EventType != "" && d.EventType != f.EventType) || (f.ShopID != 0 && d.ShopID != f.ShopID) ||
			(f.State != "" && d.State != f.State) || (f.EndpointID != "" && d.EndpointID != f.EndpointID) {
			continue
		}
		d.Attempts = slices.Clone(d.Attempts)
		d.Faults = slices.Clone(d.Faults)
		out = append(out, d)
	}
	return out
}

// Redeliver sends a message again to every endpoint it was for, with a
// fresh retry schedule, as the portal's "Recover" does. Dropped messages
// are sent too: redelivery is how a test heals an injected loss.
func (s *Sim) Redeliver(messageID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.now()
	found := false
	for _, m := range s.hooks.msgs {
		if m.d.MessageID != messageID || m.ep.Disabled {
			continue
		}
		found = true
		if m.inflight {
			continue
		}
		m.pending, m.isDup, m.held, m.attempt, m.due = true, false, false, 0, now
		m.d.State = DeliveryPending
		m.d.NextAttempt = now
	}
	if !found {
		return fmt.Errorf("redeliver %q: %w", messageID, ErrNotFound)
	}
	s.hooks.notify()
	s.wake()
	return nil
}

// WaitDeliveries blocks until no delivery is due now or in flight —
// retries scheduled later than now do not count — or ctx ends.
func (s *Sim) WaitDeliveries(ctx context.Context) error {
	for {
		s.mu.Lock()
		now := s.clock.now()
		busy := false
		for _, m := range s.hooks.msgs {
			if m.inflight || (m.pending && !m.due.After(now)) {
				busy = true
				break
			}
		}
		changed := s.hooks.changed
		s.mu.Unlock()
		if !busy {
			return nil
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait for webhook deliveries: %w", ctx.Err())
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}
