// Package ingest turns what Etsy tells us into facts in the log: a webhook
// endpoint that stores verified evidence with group commit, a fetcher that
// follows each webhook's resource_url, and the translation of Etsy's
// receipts and listings into domain events that reconciliation shares.
package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/stdwebhooks"
	"github.com/shopledger/shopledger/telemetry"
)

// MaxWebhookBody is the largest webhook body accepted. Etsy's payload is a
// three-field object; anything near this size is not Etsy.
const MaxWebhookBody = 64 << 10

// WebhookPath is where Etsy delivers webhooks.
const WebhookPath = "/webhooks/etsy"

// EvidenceSource is the metadata source of webhook evidence.
const EvidenceSource = "etsy-webhook"

// WebhookDedupeKey is the natural key of a webhook delivery's evidence:
// Etsy keeps webhook-id across retries.
func WebhookDedupeKey(webhookID string) string { return "etsy-webhook:" + webhookID }

// Appender stores one event durably before returning; *Committer is one.
type Appender interface {
	Append(ctx context.Context, ev events.Event) (duplicate bool, err error)
}

// WebhookConfig configures a WebhookHandler.
type WebhookConfig struct {
	// Secrets are the endpoint's whsec_ signing secrets, current first;
	// any may match so a rotation has no gap.
	Secrets []string
	// Now is the clock timestamps are judged by; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// WebhookHandler is POST /webhooks/etsy: it verifies a delivery on its raw
// bytes, stores it as an etsy.webhook.received event and answers 2xx only
// once that event is committed.
type WebhookHandler struct {
	verifier *stdwebhooks.Verifier
	now      func() time.Time
	log      *slog.Logger
	store    Appender
	results  *prometheus.CounterVec
	// The outcomes of every delivery that gets as far as the store,
	// resolved once rather than looked up by label on each request.
	accepted, duplicate, failedDB prometheus.Counter

	// parse decodes a verified body; a field so tests can prove it never
	// runs before verification.
	parse func([]byte) payloadFields
}

// NewWebhookHandler checks the secrets and registers
// ingest_webhooks_total{result,reason} on reg.
func NewWebhookHandler(store Appender, cfg WebhookConfig, reg prometheus.Registerer) (*WebhookHandler, error) {
	if len(cfg.Secrets) == 0 {
		return nil, errors.New("new webhook handler: no signing secret configured")
	}
	for i, s := range cfg.Secrets {
		if _, err := stdwebhooks.ParseSecret(s); err != nil {
			// The error never includes the secret itself.
			return nil, fmt.Errorf("new webhook handler: secret %d: %w", i+1, err)
		}
	}
	verifier, err := stdwebhooks.NewVerifier(cfg.Secrets)
	if err != nil {
		return nil, fmt.Errorf("new webhook handler: %w", err)
	}
	h := &WebhookHandler{
		verifier: verifier,
		now:      cfg.Now,
		log:      cfg.Logger,
		store:    store,
		parse:    parsePayload,
		results: telemetry.CounterVec("ingest_webhooks_total",
			"Webhook deliveries by result (accepted, duplicate, rejected, failed) and reason.", "result", "reason"),
	}
	h.accepted = h.results.WithLabelValues(resultAccepted, "")
	h.duplicate = h.results.WithLabelValues(resultDuplicate, "")
	h.failedDB = h.results.WithLabelValues(resultFailed, "database")
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if err := telemetry.Register(reg, h.results); err != nil {
		return nil, fmt.Errorf("new webhook handler: %w", err)
	}
	return h, nil
}

// The webhook-* header names as net/http stores them (looking up a
// lowercase name would canonicalise it on every request).
var (
	canonicalWebhookID        = http.CanonicalHeaderKey(stdwebhooks.HeaderID)
	canonicalWebhookTimestamp = http.CanonicalHeaderKey(stdwebhooks.HeaderTimestamp)
)

// Results of a delivery, as counted and logged.
const (
	resultAccepted  = "accepted"
	resultDuplicate = "duplicate"
	resultRejected  = "rejected"
	resultFailed    = "failed"
)

func (h *WebhookHandler) count(result, reason string) {
	h.results.WithLabelValues(result, reason).Inc()
}

// ServeHTTP never redirects and never answers 410: to Etsy's sender a 410
// would disable the endpoint, and a redirect counts as a failure.
func (h *WebhookHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		h.count(resultRejected, "method")
		w.Header().Set("Allow", http.MethodPost)
		writeStatus(w, http.StatusMethodNotAllowed)
		return
	}
	body, err := readBody(w, r)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.count(resultRejected, "too_large")
			writeStatus(w, http.StatusRequestEntityTooLarge)
			return
		}
		h.count(resultRejected, "read")
		writeStatus(w, http.StatusBadRequest)
		return
	}
	now := h.now()
	// Verification runs on the exact bytes received and before anything
	// looks inside them.
	if err := h.verifier.Verify(r.Header, body, now); err != nil {
		status, reason := verifyStatus(err)
		h.count(resultRejected, reason)
		h.log.WarnContext(r.Context(), "webhook rejected", "reason", reason, "status", status, "remote", r.RemoteAddr)
		writeStatus(w, status)
		return
	}
	// Verify found both headers, so each has a first value, and the
	// timestamp is plain decimal seconds.
	id := r.Header[canonicalWebhookID][0]
	ts, _ := strconv.ParseInt(r.Header[canonicalWebhookTimestamp][0], 10, 64)
	p := h.parse(body)
	if strings.ContainsRune(p.EventType, 0) || strings.ContainsRune(p.ResourceURL, 0) {
		// jsonb cannot hold a NUL character: the evidence could never be
		// stored, however often Etsy retried. Refused alone, before it
		// reaches a shared transaction.
		h.count(resultRejected, "unstorable")
		h.log.WarnContext(r.Context(), "webhook rejected", "reason", "unstorable", "webhook_id", id)
		writeStatus(w, http.StatusUnprocessableEntity)
		return
	}
	ev := events.New(events.WebhookStream(id), p.ShopID, time.Unix(ts, 0), events.WebhookReceived{
		WebhookID:     id,
		Timestamp:     ts,
		EtsyEventType: p.EventType,
		ResourceURL:   p.ResourceURL,
		ShopID:        p.ShopID,
		Headers:       storedHeaders(r.Header),
		RawBody:       body,
		ReceivedAt:    now.UTC(),
	}).WithDedupe(WebhookDedupeKey(id))
	ctx, span := telemetry.Tracer().Start(r.Context(), "webhook append",
		trace.WithAttributes(attribute.String("etsy.webhook_id", id), attribute.String("etsy.event_type", p.EventType), attribute.Int64("etsy.shop_id", p.ShopID)))
	defer span.End()
	ev = ev.WithMetadata(events.Metadata{
		CorrelationID: ev.ID.String(),
		Source:        EvidenceSource,
		RequestID:     id,
		TraceParent:   telemetry.TraceParent(ctx),
	})
	dup, err := h.store.Append(ctx, ev)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	if errors.Is(err, ErrUnstorable) {
		h.count(resultRejected, "unstorable")
		h.log.WarnContext(r.Context(), "webhook rejected", "reason", "unstorable", "webhook_id", id, "err", err)
		writeStatus(w, http.StatusUnprocessableEntity)
		return
	}
	if err != nil {
		h.failedDB.Inc()
		h.log.ErrorContext(r.Context(), "webhook not stored", "webhook_id", id, "err", err)
		// Etsy retries on anything but 2xx; 503 says "later".
		w.Header().Set("Retry-After", "5")
		writeStatus(w, http.StatusServiceUnavailable)
		return
	}
	if dup {
		h.duplicate.Inc()
		h.log.DebugContext(r.Context(), "webhook duplicate", "webhook_id", id)
	} else {
		h.accepted.Inc()
		h.log.DebugContext(r.Context(), "webhook accepted", "webhook_id", id, "event_type", p.EventType, "shop_id", p.ShopID)
	}
	writeStatus(w, http.StatusOK)
}

// verifyStatus maps stdwebhooks.Verify's errors to the answer and metric reason:
// a request that cannot be a valid delivery is 400, one that fails
// authentication (wrong signature, stale timestamp) is 401.
func verifyStatus(err error) (int, string) {
	switch {
	case errors.Is(err, stdwebhooks.ErrMissingHeader):
		return http.StatusBadRequest, "missing_header"
	case errors.Is(err, stdwebhooks.ErrInvalidHeader):
		return http.StatusBadRequest, "invalid_header"
	case errors.Is(err, stdwebhooks.ErrInvalidTimestamp):
		return http.StatusBadRequest, "invalid_timestamp"
	case errors.Is(err, stdwebhooks.ErrTimestampExpired):
		return http.StatusUnauthorized, "expired"
	case errors.Is(err, stdwebhooks.ErrNoMatchingSignature):
		return http.StatusUnauthorized, "signature"
	default:
		// A secret that stopped decoding is our fault, not the sender's.
		return http.StatusInternalServerError, "config"
	}
}

// readBody reads the whole body through http.MaxBytesReader, into one
// buffer of the announced length when there is one (io.ReadAll would grow
// its own from 512 bytes).
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, MaxWebhookBody)
	if r.ContentLength < 0 || r.ContentLength > MaxWebhookBody {
		return io.ReadAll(body)
	}
	// One byte more than announced, so reading to EOF needs no growth.
	buf := make([]byte, 0, r.ContentLength+1)
	for {
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
	}
}

// Header values shared by every answer; net/http only reads them.
var (
	textPlain = []string{"text/plain; charset=utf-8"}
	noStore   = []string{"no-store"}
)

func writeStatus(w http.ResponseWriter, status int) {
	h := w.Header()
	h["Content-Type"] = textPlain
	h["Cache-Control"] = noStore
	w.WriteHeader(status)
	_, _ = io.WriteString(w, statusLine(status))
}

// statusLine is the answer's body: its status text and a newline.
func statusLine(status int) string {
	switch status {
	case http.StatusOK:
		return "OK\n"
	case http.StatusServiceUnavailable:
		return "Service Unavailable\n"
	}
	return http.StatusText(status) + "\n"
}

// payloadFields is what the evidence records from a verified body.
type payloadFields struct {
	EventType   string
	ResourceURL string
	ShopID      int64
}

// parsePayload reads Etsy's flat payload and, failing that, whatever
// event_type a body carries (the old nested ORDER_PAID form, a future
// shape). A verified body is evidence whatever it holds, so nothing here
// rejects it.
func parsePayload(body []byte) payloadFields {
	if p, err := etsy.ParseWebhookPayload(body); err == nil {
		return payloadFields(p)
	}
	var loose struct {
		EventType   any `json:"event_type"`
		ResourceURL any `json:"resource_url"`
	}
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&loose); err != nil {
		return payloadFields{}
	}
	var p payloadFields
	if s, ok := loose.EventType.(string); ok {
		p.EventType = s
	}
	if s, ok := loose.ResourceURL.(string); ok {
		p.ResourceURL = s
	}
	return p
}

// storedHeaders keeps the delivery's headers for the evidence, with the
// values of anything credential-like replaced. The webhook-* headers are
// kept as verification read them, so that the stored body verifies again
// later from the stored headers alone: webhook-signature lines joined with
// the space that separates signatures within a line (", " would glue a
// comma to the signature before it), and webhook-id and webhook-timestamp
// as their first line, the one verified and recorded in the evidence.
func storedHeaders(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for name, vals := range h {
		key := strings.ToLower(name)
		switch {
		case sensitiveHeader(key):
			out[key] = "[redacted]"
		case key == stdwebhooks.HeaderSignature:
			out[key] = strings.Join(vals, " ")
		case (key == stdwebhooks.HeaderID || key == stdwebhooks.HeaderTimestamp) && len(vals) > 0:
			out[key] = vals[0]
		default:
			out[key] = strings.Join(vals, ", ")
		}
	}
	return out
}

func sensitiveHeader(name string) bool {
	switch name {
	case stdwebhooks.HeaderID, stdwebhooks.HeaderTimestamp, stdwebhooks.HeaderSignature:
		return false
	case "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key":
		return true
	}
	for _, s := range []string{"secret", "token", "auth", "key", "password", "session"} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}
