package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/projections"
)

type eventDetail struct {
	Event    eventstore.LoggedEvent   `json:"event"`
	CausedBy []eventstore.LoggedEvent `json:"caused_by"`
	Caused   []eventstore.LoggedEvent `json:"caused"`
}

func ids(evs []eventstore.LoggedEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.EventID)
	}
	slices.Sort(out)
	return out
}

func TestEventCausationBothWays(t *testing.T) {
	t.Parallel()
	w, h := newWorldAPI(t, 50, nil)
	tok := w.tokens[1].auditor
	// From the log: each sale.recorded of seller 1 and everything that
	// follows from it through metadata.causation_id (stock.sold, then the
	// alerts those sales raised), computed here from the log itself.
	children := map[string][]string{}
	var roots []string
	for _, r := range w.log() {
		if r.Metadata.CausationID != "" && w.owner[r.ShopID] == 1 {
			children[r.Metadata.CausationID] = append(children[r.Metadata.CausationID], r.ID.String())
		}
		if _, ok := r.Data.(events.SaleRecorded); ok && w.owner[r.ShopID] == 1 {
			roots = append(roots, r.ID.String())
		}
	}
	caused := map[string][]string{}
	for _, root := range roots {
		queue := append([]string{}, children[root]...)
		for len(queue) > 0 {
			id := queue[0]
			queue = queue[1:]
			caused[root] = append(caused[root], id)
			queue = append(queue, children[id]...)
		}
	}
	for cause, effects := range caused {
		got := do(t, h, call{path: "/v1/events/" + cause, token: tok})
		if got.Code != http.StatusOK {
			t.Fatalf("GET event %s = %d %s", cause, got.Code, got.Body)
		}
		var d eventDetail
		if err := json.Unmarshal(got.Body.Bytes(), &d); err != nil {
			t.Fatal(err)
		}
		slices.Sort(effects)
		if !slices.Equal(ids(d.Caused), effects) {
			t.Errorf("event %s caused %v, log says %v", cause, ids(d.Caused), effects)
		}
		if d.Event.Type != events.TypeSaleRecorded || d.Event.Seq == 0 || d.Event.Hash == "" {
			t.Errorf("event %s = %+v, want a sealed sale.recorded", cause, d.Event)
		}
		for _, effect := range children[cause] {
			got := do(t, h, call{path: "/v1/events/" + effect, token: tok})
			var d eventDetail
			if err := json.Unmarshal(got.Body.Bytes(), &d); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(d.CausedBy), []string{cause}) || d.Event.Metadata.CausationID != cause {
				t.Errorf("event %s caused by %v, want [%s]", effect, ids(d.CausedBy), cause)
			}
			// One level further down, the chain up names both ancestors,
			// oldest first.
			for _, grandchild := range children[effect] {
				got := do(t, h, call{path: "/v1/events/" + grandchild, token: tok})
				var d eventDetail
				if err := json.Unmarshal(got.Body.Bytes(), &d); err != nil {
					t.Fatal(err)
				}
				var up []string
				for _, e := range d.CausedBy {
					up = append(up, e.EventID)
				}
				if !slices.Equal(up, []string{cause, effect}) {
					t.Errorf("event %s caused by %v, want [%s %s]", grandchild, up, cause, effect)
				}
			}
		}
	}
}

func TestEventPagesFiltersAndExport(t *testing.T) {
	t.Parallel()
	w, h := newWorldAPI(t, 51, nil)
	tok := w.tokens[1].auditor
	mine := w.shops[1]

	sold := rowsOf(t, h, tok, "/v1/events?type=stock.sold&limit=3")
	var wantSold int
	if err := w.db.DB.QueryRow(`SELECT count(*) FROM events WHERE type = 'stock.sold' AND shop_id = ANY($1)`, mine).Scan(&wantSold); err != nil {
		t.Fatal(err)
	}
	if len(sold) != wantSold {
		t.Errorf("type filter: %d events, want %d", len(sold), wantSold)
	}
	for _, e := range sold {
		if e["type"] != events.TypeStockSold {
			t.Errorf("type filter let through %v", e["type"])
		}
	}
	stream := events.ShopStream(mine[1])
	for _, e := range rowsOf(t, h, tok, "/v1/events?stream="+stream) {
		if e["stream_id"] != stream {
			t.Errorf("stream filter let through %v", e["stream_id"])
		}
	}

	all := exportRows(t, h, tok, "/v1/events/export")
	for i := 1; i < len(all); i++ {
		if all[i]["seq"].(float64) <= all[i-1]["seq"].(float64) {
			t.Fatalf("export not in seq order at line %d", i)
		}
	}
	lo, hi := int64(all[2]["seq"].(float64)), int64(all[len(all)-3]["seq"].(float64))
	part := exportRows(t, h, tok, fmt.Sprintf("/v1/events/export?after_seq=%d&to_seq=%d", lo, hi))
	var want int
	if err := w.db.DB.QueryRow(`SELECT count(*) FROM event_seal WHERE shop_id = ANY($1) AND seq > $2 AND seq <= $3`, mine, lo, hi).Scan(&want); err != nil {
		t.Fatal(err)
	}
	if len(part) != want || int64(part[0]["seq"].(float64)) <= lo || int64(part[len(part)-1]["seq"].(float64)) != hi {
		t.Errorf("export (%d, %d]: %d lines from seq %v to %v, want %d", lo, hi, len(part), part[0]["seq"], part[len(part)-1]["seq"], want)
	}
}

func TestChainStatusFindsATamperedEvent(t *testing.T) {
	t.Parallel()
	w, h := newWorldAPI(t, 52, nil)
	tok := w.tokens[1].auditor
	status := func() projections.ChainStatus {
		t.Helper()
		got := do(t, h, call{path: "/v1/chain", token: tok})
		if got.Code != http.StatusOK {
			t.Fatalf("GET /v1/chain = %d %s", got.Code, got.Body)
		}
		var st projections.ChainStatus
		if err := json.Unmarshal(got.Body.Bytes(), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	var sealed, total int64
	if err := w.db.DB.QueryRow(`SELECT count(*) FILTER (WHERE shop_id = ANY($1)), count(*) FROM event_seal`, w.shops[1]).Scan(&sealed, &total); err != nil {
		t.Fatal(err)
	}
	st := status()
	if !st.Valid || st.Checked != sealed || st.SealedThrough != total || st.FirstMismatchSeq != nil || st.Unsealed != 0 {
		t.Fatalf("untouched chain: %+v; want valid, %d checked, sealed through %d", st, sealed, total)
	}
	// Change one of seller 1's events behind the log's back, as only a
	// superuser could.
	var seq, pos int64
	if err := w.db.DB.QueryRow(`SELECT seq, position FROM event_seal WHERE shop_id = ANY($1) ORDER BY seq OFFSET 3 LIMIT 1`, w.shops[1]).Scan(&seq, &pos); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`ALTER TABLE events DISABLE TRIGGER events_no_update_delete`,
		fmt.Sprintf(`UPDATE events SET data = data || '{"tampered": true}' WHERE position = %d`, pos),
		`ALTER TABLE events ENABLE TRIGGER events_no_update_delete`,
	} {
		if _, err := w.db.DB.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	st = status()
	if st.Valid || st.FirstMismatchSeq == nil || *st.FirstMismatchSeq != seq {
		t.Errorf("after tampering with seq %d: %+v, want invalid at %d", seq, st, seq)
	}
	// The other seller's part of the chain still verifies.
	got := do(t, h, call{path: "/v1/chain", token: w.tokens[2].auditor})
	var other projections.ChainStatus
	if err := json.Unmarshal(got.Body.Bytes(), &other); err != nil {
		t.Fatal(err)
	}
	if !other.Valid {
		t.Errorf("seller 2's chain: %+v, want valid", other)
	}
}
