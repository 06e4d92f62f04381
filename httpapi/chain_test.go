package httpapi_test

import (
	"database/sql"
	"fmt"
	"net/http"
	"testing"

	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/httpapi"
	"github.com/shopledger/shopledger/projections"
)

// /v1/chain walks the seal a bounded step per request and reports what it
// has verified; once caught up it reports what re-hashing the caller's
// whole chain reports, and it still finds a change to the caller's recent
// events at once.
func TestChainStatusWalksTheSealInBoundedSteps(t *testing.T) {
	t.Parallel()
	w, _ := newWorldAPI(t, 55, nil)
	const step, window = 25, 10
	newStore := func() *projections.Reader {
		return projections.NewReader(w.db.DB, projections.ReaderConfig{DefaultThreshold: domain.DefaultLowStockThreshold, ChainStep: step, ChainWindow: window})
	}
	apiOver := func(st *projections.Reader) http.Handler {
		h, _ := newAPI(t, w.db, apiOpts{mod: func(c *httpapi.Config) { c.Data.Events = st }})
		return h
	}
	tok := w.tokens[1].auditor
	mine := w.shops[1]
	status := func(h http.Handler) projections.ChainStatus {
		t.Helper()
		return getJSON[projections.ChainStatus](t, h, tok, "/v1/chain")
	}
	// fullCheck is what re-hashing every one of the caller's sealed events
	// says: the count and the first seq that does not verify.
	fullCheck := func() (int64, *int64) {
		t.Helper()
		var n int64
		var first sql.NullInt64
		if err := w.db.DB.QueryRow(`
			SELECT count(*), min(s.seq) FILTER (WHERE
			        CASE WHEN s.seq = 1 THEN '\x'::bytea ELSE p.hash END IS DISTINCT FROM s.prev_hash
			     OR e.position IS NULL
			     OR s.hash IS DISTINCT FROM sha256(s.prev_hash || convert_to(event_canonical(s.seq, e), 'UTF8')))
			FROM event_seal s
			LEFT JOIN event_seal p ON p.seq = s.seq - 1
			LEFT JOIN events e ON e.position = s.position AND e.event_id = s.event_id
			WHERE s.shop_id = ANY($1)`, mine).Scan(&n, &first); err != nil {
			t.Fatal(err)
		}
		if !first.Valid {
			return n, nil
		}
		return n, &first.Int64
	}

	h := apiOver(newStore())
	var sealed int64
	if err := w.db.DB.QueryRow(`SELECT max(seq) FROM event_seal`).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	var st projections.ChainStatus
	for prev, requests := int64(0), 0; ; requests++ {
		st = status(h)
		if st.VerifiedThrough-prev > step || st.VerifiedThrough < prev {
			t.Fatalf("one request walked from %d to %d, more than %d", prev, st.VerifiedThrough, step)
		}
		var mineSoFar int64
		if err := w.db.DB.QueryRow(`SELECT count(*) FROM event_seal WHERE shop_id = ANY($1) AND seq <= $2`, mine, st.VerifiedThrough).Scan(&mineSoFar); err != nil {
			t.Fatal(err)
		}
		if st.Checked != mineSoFar || !st.Valid || st.SealedThrough != sealed {
			t.Fatalf("after walking to %d: %+v; want %d checked, valid, sealed through %d", st.VerifiedThrough, st, mineSoFar, sealed)
		}
		if st.VerifiedThrough == sealed {
			if requests < int(sealed/step)-1 {
				t.Errorf("walked %d sealed events in %d requests", sealed, requests+1)
			}
			break
		}
		prev = st.VerifiedThrough
	}
	n, first := fullCheck()
	if st.Checked != n || first != nil || st.Unsealed != 0 {
		t.Errorf("caught up: %+v; re-hashing everything says %d checked, first mismatch %v", st, n, first)
	}

	tamper := func(seq int64) {
		t.Helper()
		for _, q := range []string{
			`ALTER TABLE events DISABLE TRIGGER events_no_update_delete`,
			fmt.Sprintf(`UPDATE events SET data = data || '{"tampered": true}' WHERE position = (SELECT position FROM event_seal WHERE seq = %d)`, seq),
			`ALTER TABLE events ENABLE TRIGGER events_no_update_delete`,
		} {
			if _, err := w.db.DB.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
	}
	var oldSeq, recentSeq int64
	if err := w.db.DB.QueryRow(`SELECT min(seq), max(seq) FROM event_seal WHERE shop_id = ANY($1)`, mine).Scan(&oldSeq, &recentSeq); err != nil {
		t.Fatal(err)
	}
	// A change to one of the newest events shows on the next request.
	tamper(recentSeq)
	if st := status(h); st.Valid || st.FirstMismatchSeq == nil || *st.FirstMismatchSeq != recentSeq {
		t.Errorf("after changing seq %d: %+v, want invalid there", recentSeq, st)
	}
	// An old one, already walked, is found by the next walk: a restarted
	// service, as ledger verify would.
	tamper(oldSeq)
	fresh := apiOver(newStore())
	for range sealed/step + 2 {
		st = status(fresh)
	}
	n, first = fullCheck()
	if first == nil || *first != oldSeq || st.FirstMismatchSeq == nil || *st.FirstMismatchSeq != *first || st.Checked != n {
		t.Errorf("fresh walk after changing seq %d: %+v; re-hashing everything says first mismatch %v", oldSeq, st, first)
	}
	// The other seller's chain is untouched.
	if other := getJSON[projections.ChainStatus](t, fresh, w.tokens[2].auditor, "/v1/chain"); !other.Valid {
		t.Errorf("seller 2's chain: %+v, want valid", other)
	}
}
