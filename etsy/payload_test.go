package etsy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/etsy"
)

func TestParseWebhookPayload(t *testing.T) {
	tests := []struct {
		name string
		body string
		want etsy.WebhookPayload
	}{
		{
			name: "etsy sample, shop_id number",
			body: `{"event_type":"order.paid","resource_url":"https://openapi.etsy.com/v3/application/shops/12345/receipts/54321","shop_id":42}`,
			want: etsy.WebhookPayload{EventType: "order.paid", ResourceURL: "https://openapi.etsy.com/v3/application/shops/12345/receipts/54321", ShopID: 42},
		},
		{
			name: "shop_id string",
			body: `{"event_type":"order.shipped","resource_url":"https://api.etsy.com/v3/application/shops/7/receipts/9","shop_id":"7"}`,
			want: etsy.WebhookPayload{EventType: "order.shipped", ResourceURL: "https://api.etsy.com/v3/application/shops/7/receipts/9", ShopID: 7},
		},
		{
			name: "unknown fields and future event",
			body: `{"event_type":"shop.teleported","resource_url":"x","shop_id":1,"extra":{"a":[1,2]},"when":1}`,
			want: etsy.WebhookPayload{EventType: "shop.teleported", ResourceURL: "x", ShopID: 1},
		},
		{
			name: "no resource_url",
			body: `{"event_type":"listing.deleted","shop_id":3}`,
			want: etsy.WebhookPayload{EventType: "listing.deleted", ShopID: 3},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := etsy.ParseWebhookPayload([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseWebhookPayload (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseWebhookPayloadErrors(t *testing.T) {
	for _, body := range []string{
		``,
		`null`,
		`[]`,
		`"order.paid"`,
		`{"event_type":"","shop_id":1}`,
		`{"shop_id":1}`,
		`{"event_type":"order.paid"}`,
		`{"event_type":"order.paid","shop_id":null}`,
		`{"event_type":"order.paid","shop_id":1.5}`,
		`{"event_type":"order.paid","shop_id":"abc"}`,
		`{"event_type":"order.paid","shop_id":-4}`,
		`{"event_type":"order.paid","shop_id":99999999999999999999}`,
		`{"event_type":"order.paid","shop_id":1} {}`,
		// The obsolete nested shape has no top-level shop_id.
		`{"event_type":"ORDER_PAID","event_id":"e1","created_at":1,"data":{"shop_id":1,"receipt_id":2}}`,
	} {
		if _, err := etsy.ParseWebhookPayload([]byte(body)); !errors.Is(err, etsy.ErrInvalidPayload) {
			t.Errorf("ParseWebhookPayload(%q) = %v, want ErrInvalidPayload", body, err)
		}
	}
}

func FuzzParseWebhookPayload(f *testing.F) {
	f.Add([]byte(`{"event_type":"order.paid","resource_url":"https://openapi.etsy.com/v3/application/shops/12345/receipts/54321","shop_id":42}`))
	f.Add([]byte(`{"event_type":"x","shop_id":"42"}`))
	f.Add([]byte(`{"event_type":"x","shop_id":"4\u0032"}`))
	f.Add([]byte(`{"event_type":"ORDER_PAID","data":{}}`))
	f.Add([]byte(`{`))
	f.Add([]byte(`{"shop_id":1e3,"event_type":"a"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := etsy.ParseWebhookPayload(body)
		if err != nil {
			if !errors.Is(err, etsy.ErrInvalidPayload) {
				t.Fatalf("error %v is not ErrInvalidPayload", err)
			}
			return
		}
		if p.EventType == "" || p.ShopID <= 0 {
			t.Fatalf("accepted payload without event type or shop: %+v", p)
		}
		// What we accepted survives a round trip through our own encoding.
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		q, err := etsy.ParseWebhookPayload(again)
		if err != nil {
			t.Fatalf("re-parse %s: %v", again, err)
		}
		if diff := cmp.Diff(p, q); diff != "" {
			t.Fatalf("round trip (-want +got):\n%s", diff)
		}
	})
}

// stdParseWebhookPayload is ParseWebhookPayload as it was written over
// encoding/json's Decoder, the reference the faster decoder must match.
func stdParseWebhookPayload(body []byte) (etsy.WebhookPayload, bool) {
	var raw struct {
		EventType   *string         `json:"event_type"`
		ResourceURL *string         `json:"resource_url"`
		ShopID      json.RawMessage `json:"shop_id"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil || dec.More() || raw.EventType == nil || *raw.EventType == "" {
		return etsy.WebhookPayload{}, false
	}
	text := string(raw.ShopID)
	if len(raw.ShopID) > 0 && raw.ShopID[0] == '"' {
		if err := json.Unmarshal(raw.ShopID, &text); err != nil {
			return etsy.WebhookPayload{}, false
		}
	}
	id, err := strconv.ParseInt(text, 10, 64)
	if err != nil || id <= 0 {
		return etsy.WebhookPayload{}, false
	}
	p := etsy.WebhookPayload{EventType: *raw.EventType, ShopID: id}
	if raw.ResourceURL != nil {
		p.ResourceURL = *raw.ResourceURL
	}
	return p, true
}

// The fast decoder accepts exactly what encoding/json's did, with the same
// fields: odd shapes, escapes, invalid UTF-8, duplicate keys, trailing data.
func FuzzParseWebhookPayloadMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`{"event_type":"order.paid","resource_url":"https://openapi.etsy.com/v3/application/shops/12345/receipts/54321","shop_id":42}`,
		`{"event_type":"x","shop_id":"42"}`, `{"event_type":"x","shop_id":"4\u0032"}`, `{"event_type":"ORDER_PAID","data":{}}`,
		`{`, `{"shop_id":1e3,"event_type":"a"}`, ` {"event_type":"a","shop_id":1} `, `{"event_type":"a","shop_id":1}}`,
		`{"event_type":"a","shop_id":1} x`, `{"event_type":"a","shop_id":1}]`, `{"Event_Type":"a","SHOP_ID":1}`,
		`{"event_type":"a","event_type":"b","shop_id":1}`, "{\"event_type\":\"\xff\",\"shop_id\":1}", `{"event_type":"\ud800","shop_id":1}`,
		`{"event_type":"a","shop_id":null}`, `{"event_type":null,"shop_id":1}`, `null`, `[]`, `{"event_type":"a","shop_id":1,"x":[1,{"y":"z"}]}`,
		`{"event_type":"a","shop_id":01}`, `{"event_type":"a","shop_id":-1}`, `{"event_type":"a","shop_id":9223372036854775808}`,
		`{"event_type":"a","resource_url":7,"shop_id":1}`, `{"event_type":"a","shop_id":1}{"event_type":"b"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		want, ok := stdParseWebhookPayload(body)
		got, err := etsy.ParseWebhookPayload(body)
		if ok != (err == nil) || got != want {
			t.Fatalf("ParseWebhookPayload(%q) = %+v, %v; encoding/json gives %+v, ok %v", body, got, err, want, ok)
		}
	})
}
