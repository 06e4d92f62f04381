package ingest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsy/etsysim"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/ingest"
	"github.com/shopledger/shopledger/service/servicetest"
)

type parkedRow struct {
	EventID       string
	SchemaVersion int
	Attempts      int
}

func parkedRows(t *testing.T, p *pipeline) []parkedRow {
	t.Helper()
	rows, err := p.db.DB.Query(`SELECT event_id::text, schema_version, attempts FROM ingest_parked_evidence ORDER BY position`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []parkedRow
	for rows.Next() {
		var r parkedRow
		if err := rows.Scan(&r.EventID, &r.SchemaVersion, &r.Attempts); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// Evidence a running binary cannot decode (written by a newer one during
// a rolling deploy) is parked where operators see it, not acknowledged
// and forgotten, and the fetcher moves on; a fetcher that can decode it
// handles it when it starts.
func TestUndecodableEvidenceIsParkedAndRetriedOnStart(t *testing.T) {
	t.Parallel()
	e, p, shop, l := listingPipeline(t, ingest.FetcherConfig{SettleWindow: -1})
	order, err := e.sim.CreateOrder(shop.ShopID, etsysim.OrderSpec{Items: []etsysim.OrderItem{{ListingID: l.ListingID, SKU: "RED", Quantity: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	// Evidence of a schema version no binary here knows.
	future := uuid.New()
	if _, err := p.db.DB.Exec(`INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, data, shop_id, occurred_at, dedupe_key)
		VALUES ($1, 'etsy-webhook-msg_future', 1, $2, 99, '{"webhook_id":"msg_future"}', $3, now(), 'etsy-webhook:msg_future')`,
		future, events.TypeWebhookReceived, shop.ShopID); err != nil {
		t.Fatal(err)
	}
	// Evidence the running binary cannot decode, but the next one can.
	newer := p.deliver(t, "msg_newer", etsy.EventOrderPaid, e.receiptURL(shop.ShopID, order.ReceiptID), shop.ShopID)
	// Evidence behind both, which must not wait for them.
	p.deliver(t, "msg_after", etsy.EventOrderPaid, e.receiptURL(shop.ShopID+1, 1), shop.ShopID+1)

	ingest.SetDecode(p.fetcher, func(m *message.Message) (events.Record, error) {
		if m.UUID == newer.ID.String() {
			return events.Record{}, fmt.Errorf("decode %q version 2: written by a newer binary", events.TypeWebhookReceived)
		}
		return eventstore.RecordFromMessage(m)
	})
	stop := p.run(t)
	waitFor(t, func() bool { return len(fetchFailures(t, p, "msg_after")) == 1 })
	stop()
	want := []parkedRow{{future.String(), 99, 1}, {newer.ID.String(), 1, 1}}
	if diff := cmp.Diff(want, parkedRows(t, p)); diff != "" {
		t.Errorf("parked evidence (-want +got):\n%s", diff)
	}
	if got := servicetest.Metric(t, p.reg, "ingest_fetch_total", map[string]string{"outcome": ingest.OutcomeParked}); got != 2 {
		t.Errorf("parked outcomes = %v, want 2", got)
	}
	if got := servicetest.Metric(t, p.reg, "ingest_fetcher_parked_evidence", nil); got != 2 {
		t.Errorf("ingest_fetcher_parked_evidence = %v, want 2", got)
	}
	if n := len(streamOf(t, p.store, events.ReceiptStream(order.ReceiptID))); n != 0 {
		t.Fatalf("the parked order was followed anyway (%d receipt events)", n)
	}

	// The upgraded binary starts: it follows what it can decode now and
	// leaves the rest parked, one more attempt counted.
	upgraded := newPipelineOn(t, p, e, ingest.FetcherConfig{SettleWindow: -1})
	upgraded.run(t)
	waitFor(t, func() bool { return len(streamOf(t, p.store, events.ReceiptStream(order.ReceiptID))) >= 2 })
	waitFor(t, func() bool { return len(parkedRows(t, p)) == 1 })
	if diff := cmp.Diff([]parkedRow{{future.String(), 99, 2}}, parkedRows(t, p)); diff != "" {
		t.Errorf("parked evidence after the upgrade (-want +got):\n%s", diff)
	}
	waitFor(t, func() bool {
		return servicetest.Metric(t, upgraded.reg, "ingest_fetch_total", map[string]string{"outcome": ingest.OutcomeUnparked}) == 1 &&
			servicetest.Metric(t, upgraded.reg, "ingest_fetcher_parked_evidence", nil) == 1
	})
	// Nothing is followed twice: the offset had moved past all three.
	time.Sleep(200 * time.Millisecond)
	if got := len(fetchFailures(t, p, "msg_after")); got != 1 {
		t.Errorf("%d fetch failures of msg_after, want 1", got)
	}
}
