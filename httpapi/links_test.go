package httpapi_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/httpapi"
	"github.com/shopledger/shopledger/projections"
)

// A sale and a listing change that came by webhook link to the webhook's
// evidence for an auditor, and a seller's answer carries only links a
// seller can follow.
func TestMovementLinksFollowTheWebhookAndTheRole(t *testing.T) {
	t.Parallel()
	w, h := newWorldAPI(t, 56, nil)
	v := firstVariantOf(w, 11)
	const webhookID = "msg_2Hk9"
	evidence := w.append(events.WebhookStream(webhookID), events.New(events.WebhookStream(webhookID), 11, w.at(), events.WebhookReceived{
		WebhookID: webhookID, Timestamp: w.at().Unix(), EtsyEventType: "order.paid", ShopID: 11,
		ResourceURL: "https://openapi.etsy.com/v3/application/shops/11/receipts/119999", ReceivedAt: w.at(),
	})).Events[0].EventID
	// What the fetcher appends for that evidence: the sale, caused by it.
	cause := events.Metadata{CausationID: evidence.String(), CorrelationID: evidence.String(), Source: "webhook"}
	stream := events.ListingStream(v.listing)
	sold := w.append(stream, events.New(stream, 11, w.at(), events.StockSold{ListingID: v.listing, VariantKey: v.key, Quantity: 1,
		ReceiptID: 119999, TransactionID: 1199990}).WithMetadata(cause)).Events[0].EventID
	// And a listing change the same webhook brought, which names it.
	changed := w.append(stream, events.New(stream, 11, w.at(), events.StockAdjusted{ListingID: v.listing, VariantKey: v.key, Delta: 3,
		Reason: events.ReasonEtsyChange, Cause: "webhook:" + webhookID}).WithMetadata(cause)).Events[0].EventID
	w.project()

	movement := func(token string, id ...uuid.UUID) linkedMovement {
		t.Helper()
		page := getJSON[struct {
			Items []linkedMovement `json:"items"`
		}](t, h, token, variantPath(v)+"/history?order=desc&limit=100")
		want := append(id, sold)[0]
		for _, m := range page.Items {
			if m.EventID == want.String() {
				return m
			}
		}
		t.Fatalf("movement of event %s is not in the history", want)
		return linkedMovement{}
	}
	str := func(s string) *string { return &s }
	asAuditor := movement(w.tokens[1].auditor)
	want := httpapi.MovementLinks{Event: str("/v1/events/" + sold.String()), Receipt: str("/v1/sales/119999"), Webhook: str("/v1/events/" + evidence.String())}
	if diff := cmp.Diff(want, asAuditor.Links); diff != "" || asAuditor.WebhookID == nil || *asAuditor.WebhookID != webhookID {
		t.Errorf("auditor's links (-want +got):\n%s\nwebhook_id %v", diff, asAuditor.WebhookID)
	}
	got := do(t, h, call{path: *asAuditor.Links.Webhook, token: w.tokens[1].auditor})
	var d eventDetail
	if err := json.Unmarshal(got.Body.Bytes(), &d); err != nil || got.Code != 200 || d.Event.Type != events.TypeWebhookReceived {
		t.Errorf("following links.webhook: %d %s", got.Code, got.Body)
	}

	asSeller := movement(w.tokens[1].seller)
	if asSeller.Links.Event != nil || asSeller.Links.Webhook != nil || asSeller.WebhookID == nil || *asSeller.WebhookID != webhookID {
		t.Errorf("seller's movement: links %+v, webhook_id %v; want no log links and the webhook id", asSeller.Links, asSeller.WebhookID)
	}

	changeAsAuditor := movement(w.tokens[1].auditor, changed)
	want = httpapi.MovementLinks{Event: str("/v1/events/" + changed.String()), Webhook: str("/v1/events/" + evidence.String())}
	if diff := cmp.Diff(want, changeAsAuditor.Links); diff != "" || changeAsAuditor.WebhookID == nil || *changeAsAuditor.WebhookID != webhookID {
		t.Errorf("auditor's links of the webhook's listing change (-want +got):\n%s\nwebhook_id %v", diff, changeAsAuditor.WebhookID)
	}
	changeAsSeller := movement(w.tokens[1].seller, changed)
	if changeAsSeller.Links.Event != nil || changeAsSeller.Links.Webhook != nil || changeAsSeller.WebhookID == nil || *changeAsSeller.WebhookID != webhookID {
		t.Errorf("seller's listing change: links %+v, webhook_id %v; want no log links and the webhook id", changeAsSeller.Links, changeAsSeller.WebhookID)
	}
	// Every link a seller is given answers the seller.
	page := getJSON[struct {
		Items []linkedMovement `json:"items"`
	}](t, h, w.tokens[1].seller, variantPath(v)+"/history?limit=100")
	for _, m := range page.Items {
		for _, l := range []*string{m.Links.Event, m.Links.Receipt, m.Links.Webhook} {
			if l == nil {
				continue
			}
			if got := do(t, h, call{path: *l, token: w.tokens[1].seller}); got.Code == http.StatusForbidden {
				t.Errorf("seller's link %s answers 403", *l)
			}
		}
	}
}

// linkedMovement is a movement of a history page as the API sends it.
type linkedMovement struct {
	projections.Movement
	Links httpapi.MovementLinks `json:"links"`
}
