package stockedits_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsymap"
)

func itoa(i int) string { return strconv.Itoa(i) }

func sleepShort() { time.Sleep(10 * time.Millisecond) }

func mustTokens(t *testing.T, e *env) etsy.TokenSource {
	t.Helper()
	ts, err := e.store.ForShop(context.Background(), e.shop.ShopID)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// webhookCause is what the fetcher passes for an inventory webhook.
func webhookCause() etsymap.Cause {
	id := uuid.New()
	return etsymap.Cause{EventID: id, CorrelationID: id.String(), Source: etsymap.SourceWebhook, Ref: "webhook:test", EtsyEvent: etsy.EventInventoryUpdated}
}
