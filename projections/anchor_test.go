package projections_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/shopledger/shopledger/projections/internal/projtest"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/projections"
)

func testSealKeys(t *testing.T, spec string) *projections.SealKeys {
	t.Helper()
	k, err := projections.ParseSealKeys(spec)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var sealKeySpec = "s1:" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))

// A database superuser rewrites an event and re-seals the chain after it,
// so that the chain alone verifies. The signed heads catch it; rewriting
// them too is caught by their signatures, which need the key the database
// never held.
func TestSignedSealHeadsCatchARewrittenAndResealedLog(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	s := eventstore.New(db.DB)
	for i := int64(1); i <= 12; i++ {
		if _, err := s.Append(ctx, events.ListingStream(i), eventstore.Any, adjustedEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	sealAll := `SELECT seal_events(ARRAY(SELECT e.position FROM events e
		WHERE NOT EXISTS (SELECT 1 FROM event_seal s WHERE s.position = e.position)
		ORDER BY e.transaction_id, e.position))`
	if _, err := db.DB.Exec(sealAll); err != nil {
		t.Fatal(err)
	}
	keys := testSealKeys(t, sealKeySpec)
	head, fresh, err := projections.Anchor(ctx, db.DB, keys)
	if err != nil || !fresh || head.Seq != 12 {
		t.Fatalf("Anchor = %+v, %v, %v; want a new anchor at seq 12", head, fresh, err)
	}
	if _, again, err := projections.Anchor(ctx, db.DB, keys); err != nil || again {
		t.Fatalf("second Anchor at the same head = %v, %v; want nothing new", again, err)
	}
	rep, err := projections.VerifySealWith(ctx, db.DB, keys)
	if err != nil || !rep.OK() || rep.Anchors != 1 || rep.AnchorsVerified != 1 || rep.AnchoredSeq != 12 {
		t.Fatalf("verify before tampering = %+v, %v", rep, err)
	}

	// Rewrite the event at seq 5 and re-seal from there.
	tamper := []string{
		`ALTER TABLE events DISABLE TRIGGER events_no_update_delete`,
		`UPDATE events SET data = jsonb_set(data, '{delta}', '999') WHERE position = (SELECT position FROM event_seal WHERE seq = 5)`,
		`ALTER TABLE events ENABLE TRIGGER events_no_update_delete`,
		`ALTER TABLE event_seal DISABLE TRIGGER event_seal_no_update_delete`,
		`DELETE FROM event_seal WHERE seq >= 5`,
		`ALTER TABLE event_seal ENABLE TRIGGER event_seal_no_update_delete`,
		sealAll,
	}
	for _, q := range tamper {
		if _, err := db.DB.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	rep, err = projections.VerifySeal(ctx, db.DB)
	if err != nil || rep.OK() || rep.First.Kind != projections.ProblemAnchor || rep.First.Seq != 12 {
		t.Fatalf("verify after re-sealing = %+v, %v; want an anchor mismatch at seq 12", rep, err)
	}

	// Forge the anchor to the new head as well.
	forge := []string{
		`ALTER TABLE seal_anchors DISABLE TRIGGER seal_anchors_no_update_delete`,
		`UPDATE seal_anchors SET hash = (SELECT hash FROM event_seal WHERE seq = 12) WHERE seq = 12`,
		`ALTER TABLE seal_anchors ENABLE TRIGGER seal_anchors_no_update_delete`,
	}
	for _, q := range forge {
		if _, err := db.DB.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if rep, err := projections.VerifySeal(ctx, db.DB); err != nil || !rep.OK() {
		t.Fatalf("without the keys a forged anchor passes (documented); got %+v, %v", rep, err)
	}
	rep, err = projections.VerifySealWith(ctx, db.DB, keys)
	if err != nil || rep.OK() || rep.First.Kind != projections.ProblemAnchorSignature {
		t.Fatalf("verify with the keys after forging = %+v, %v; want a signature failure", rep, err)
	}
	other := testSealKeys(t, "s2:"+base64.StdEncoding.EncodeToString([]byte(strings.Repeat("z", 32))))
	if rep, _ := projections.VerifySealWith(ctx, db.DB, other); rep.OK() || !strings.Contains(rep.First.Detail, `"s1"`) {
		t.Errorf("verify with keys lacking s1 = %+v; want the unknown key named", rep)
	}
}

func TestParseSealKeysRefusesBadSpecsWithoutEchoingKeys(t *testing.T) {
	short := base64.StdEncoding.EncodeToString([]byte("too-short-secret"))
	for _, spec := range []string{"", "nokey", "bad id:" + short, "s1:" + short, "s1:!!!", sealKeySpec + "," + sealKeySpec} {
		_, err := projections.ParseSealKeys(spec)
		if !errors.Is(err, projections.ErrSealKeys) {
			t.Errorf("ParseSealKeys(%q) = %v, want ErrSealKeys", spec, err)
		}
		if err != nil && strings.Contains(err.Error(), short) {
			t.Errorf("error %q echoes key material", err)
		}
	}
}

func adjustedEvent(listing int64) events.Event {
	return events.New(events.ListingStream(listing), 7, projtest.T0, events.StockAdjusted{
		ListingID: listing, VariantKey: "sku:A", Delta: 1, Reason: events.ReasonRestock,
	})
}
