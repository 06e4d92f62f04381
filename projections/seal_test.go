package projections_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/projections/engine"
	"github.com/shopledger/shopledger/projections/internal/projtest"

	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/projections"
)

func sealedLog(t *testing.T) (*pgtest.Database, int) {
	t.Helper()
	db, s, w := projtest.NewLog(t, 3, 2, 3)
	projtest.AppendAll(t, s, w.Generate(400))
	projs := []engine.Projection{projections.NewSeal()}
	_, stop := projtest.StartRunner(t, db.DB, projs, projtest.FastConfig(), nil)
	projtest.WaitCaughtUp(t, db.DB, projtest.Names(projs), 30*time.Second)
	stop()
	var n int
	if err := db.DB.QueryRow(`SELECT count(*) FROM events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return db, n
}

// asSuperuser changes the log behind the append-only trigger's back, the
// way only an attacker with superuser rights could.
func asSuperuser(t *testing.T, db *sql.DB, stmt string, args ...any) {
	t.Helper()
	for _, s := range []string{`ALTER TABLE events DISABLE TRIGGER events_no_update_delete`} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		if _, err := db.Exec(`ALTER TABLE events ENABLE TRIGGER events_no_update_delete`); err != nil {
			t.Fatal(err)
		}
	}()
	res, err := db.Exec(stmt, args...)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%s changed %d rows, want 1", stmt, n)
	}
}

func TestSealChainsEveryEventInCommitOrder(t *testing.T) {
	db, n := sealedLog(t)
	ctx := context.Background()
	rep, err := projections.VerifySeal(ctx, db.DB)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Sealed != int64(n) || rep.Pending != 0 {
		t.Fatalf("VerifySeal = %+v, want ok with %d sealed and none pending", rep, n)
	}

	// Auditors page by seq: 1..n without gaps, in commit order, each
	// hash chained to the one before and recomputable from the page.
	rows, err := db.DB.Query(`SELECT s.seq, s.prev_hash, s.hash, e.transaction_id::text::numeric, e.position
		FROM event_seal s JOIN events e ON e.position = s.position ORDER BY s.seq`)
	if err != nil {
		t.Fatal(err)
	}
	var prev []byte
	var lastTxn, lastPos int64
	seen := 0
	for rows.Next() {
		var seq, txn, pos int64
		var prevHash, hash []byte
		if err := rows.Scan(&seq, &prevHash, &hash, &txn, &pos); err != nil {
			t.Fatal(err)
		}
		seen++
		if seq != int64(seen) {
			t.Fatalf("seq %d at row %d", seq, seen)
		}
		if string(prevHash) != string(prev) {
			t.Fatalf("seq %d: prev_hash does not link to the previous hash", seq)
		}
		if seen > 1 && (txn < lastTxn || (txn == lastTxn && pos <= lastPos)) {
			t.Fatalf("seq %d: (%d, %d) is not after (%d, %d) in commit order", seq, txn, pos, lastTxn, lastPos)
		}
		prev, lastTxn, lastPos = hash, txn, pos
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if seen != n {
		t.Errorf("sealed %d events, want %d", seen, n)
	}

	// A hash is sha256(prev_hash || event_canonical(seq, event)).
	var seq int64
	var hash, prevHash []byte
	var canonical string
	if err := db.DB.QueryRow(`SELECT s.seq, s.hash, s.prev_hash, event_canonical(s.seq, e) FROM event_seal s
		JOIN events e ON e.position = s.position WHERE s.seq = 7`).Scan(&seq, &hash, &prevHash, &canonical); err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(append(prevHash, canonical...)); string(sum[:]) != string(hash) {
		t.Errorf("seq 7: sha256(prev_hash || canonical) = %x, stored %x", sum, hash)
	}

	// A shop's page holds only that shop's events.
	page, err := reader(db.DB).ListEvents(ctx, projections.EventFilter{Shops: []int64{100}, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range page {
		if e.ShopID != 100 {
			t.Fatalf("shop 100's page holds an event of shop %d", e.ShopID)
		}
	}
	if len(page) == 0 {
		t.Error("shop 100's page is empty")
	}
}

func TestVerifyFindsTamperedLog(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper string
		want   string
	}{
		{"changed payload", `UPDATE events SET data = jsonb_set(data, '{title}', '"forged"') WHERE position = (SELECT position FROM event_seal WHERE seq = 42)`, projections.ProblemHash},
		{"changed business time", `UPDATE events SET occurred_at = occurred_at + interval '1 microsecond' WHERE position = (SELECT position FROM event_seal WHERE seq = 42)`, projections.ProblemHash},
		{"deleted event", `DELETE FROM events WHERE position = (SELECT position FROM event_seal WHERE seq = 42)`, projections.ProblemMissingEvent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, _ := sealedLog(t)
			asSuperuser(t, db.DB, tc.tamper)
			rep, err := projections.VerifySeal(context.Background(), db.DB)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() || rep.First.Kind != tc.want || rep.First.Seq != 42 {
				t.Fatalf("VerifySeal = %+v (first %v), want %s at seq 42", rep, rep.First, tc.want)
			}
			if rep.Sealed != 41 {
				t.Errorf("verified %d rows before the mismatch, want 41", rep.Sealed)
			}
		})
	}
	t.Run("event slipped in behind the seal", func(t *testing.T) {
		db, _ := sealedLog(t)
		// An insert with a forged, old transaction id lands before the
		// sealed head without ever being sealed.
		if _, err := db.DB.Exec(`INSERT INTO events (transaction_id, event_id, stream_id, stream_version, type, schema_version, data, occurred_at)
			VALUES ('3', gen_random_uuid(), 'forged', 1, 'stock.adjusted', 1, '{}', now())`); err != nil {
			t.Fatal(err)
		}
		rep, err := projections.VerifySeal(context.Background(), db.DB)
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK() || rep.First.Kind != projections.ProblemUnsealed {
			t.Fatalf("VerifySeal = %+v (first %v), want %s", rep, rep.First, projections.ProblemUnsealed)
		}
	})
}

// The batch seal (seal_events, migration 00204) writes exactly the rows
// the one-event statement writes, hashes included, and an event missing
// from the log stops it, naming the position, with nothing sealed.
func TestSealBatchMatchesOneByOne(t *testing.T) {
	db, s, w := projtest.NewLog(t, 3, 2, 3)
	projtest.AppendAll(t, s, w.Generate(120))
	var positions []int64
	rows, err := db.DB.Query(`SELECT position FROM events ORDER BY transaction_id, position`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var p int64
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		positions = append(positions, p)
	}
	rows.Close()
	ctx := context.Background()
	seal := func(batch bool) []string {
		tx, err := db.DB.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback() //nolint:errcheck // only ever rolled back
		if batch {
			// Two batches, so the second chains onto the first.
			half := len(positions) / 2
			for _, part := range [][]int64{positions[:half], positions[half:]} {
				if _, err := tx.Exec(`SELECT seal_events($1::bigint[])`, part); err != nil {
					t.Fatal(err)
				}
			}
		} else {
			for _, p := range positions {
				if _, err := tx.Exec(projections.SealOneSQL, p); err != nil {
					t.Fatal(err)
				}
			}
		}
		var out []string
		r, err := tx.Query(`SELECT concat_ws(' ', seq, position, event_id, transaction_id, shop_id, encode(prev_hash, 'hex'), encode(hash, 'hex'))
			FROM event_seal ORDER BY seq`)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		for r.Next() {
			var line string
			if err := r.Scan(&line); err != nil {
				t.Fatal(err)
			}
			out = append(out, line)
		}
		return out
	}
	one, batch := seal(false), seal(true)
	if len(one) != len(positions) || len(batch) != len(positions) {
		t.Fatalf("sealed %d one by one and %d in batches, want %d", len(one), len(batch), len(positions))
	}
	for i := range one {
		if one[i] != batch[i] {
			t.Fatalf("seal %d differs:\n one by one: %s\n batch:      %s", i+1, one[i], batch[i])
		}
	}

	last := positions[len(positions)-1]
	for _, bad := range [][]int64{
		{positions[0], last + 1000, positions[1]}, // missing in the middle
		{positions[0], positions[1], last + 1000}, // missing at the end
	} {
		_, err := db.DB.Exec(`SELECT seal_events($1::bigint[])`, bad)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("no event at position %d", last+1000)) {
			t.Errorf("seal_events(%v) = %v, want it to name the missing position", bad, err)
		}
	}
	var sealed int
	if err := db.DB.QueryRow(`SELECT count(*) FROM event_seal`).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if sealed != 0 {
		t.Errorf("%d events sealed by failed batches", sealed)
	}
}
