package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/pgtest"
)

// A log restored from a cluster whose transaction counter ran far ahead:
// unadopted, it is refused and its events are invisible; adopted, every
// restored event is visible at once in its original order and every new
// append orders after all of them, for plain readers and consumer groups.
func TestAdoptedLogKeepsItsOrderAndNewAppendsFollow(t *testing.T) {
	db := newConsumedDB(t)
	s := eventstore.New(db.DB)
	ctx := context.Background()

	var current uint64
	if err := db.DB.QueryRowContext(ctx, `SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint`).Scan(&current); err != nil {
		t.Fatal(err)
	}
	// Ids as another cluster assigned them, inserted out of their order.
	far := current + 5_000_000
	restored := []uint64{far + 30, far + 10, far + 20, far + 10}
	for i, id := range restored {
		_, err := db.DB.ExecContext(ctx, `INSERT INTO events (transaction_id, event_id, stream_id, stream_version, type, schema_version, data, occurred_at)
			VALUES ($1::text::xid8, gen_random_uuid(), $2, 1, 'sale.paid', 1, '{"receipt_id": 1}', now())`,
			strconv.FormatUint(id, 10), fmt.Sprintf("receipt-%d", i))
		if err != nil {
			t.Fatal(err)
		}
	}

	err := eventstore.CheckOrder(ctx, db.DB)
	if !errors.Is(err, eventstore.ErrLogOutOfOrder) {
		t.Fatalf("CheckOrder before adopting = %v, want ErrLogOutOfOrder", err)
	}
	if recs, err := s.ReadAll(ctx, eventstore.Cursor{}, 100); err != nil || len(recs) != 0 {
		t.Fatalf("before adopting ReadAll = %d events, %v; want none visible", len(recs), err)
	}

	raised, err := eventstore.Adopt(ctx, db.DB)
	if err != nil || raised <= 0 {
		t.Fatalf("Adopt = %d, %v; want a raised shift", raised, err)
	}
	if err := eventstore.CheckOrder(ctx, db.DB); err != nil {
		t.Fatalf("CheckOrder after adopting: %v", err)
	}
	if again, err := eventstore.Adopt(ctx, db.DB); err != nil || again != 0 {
		t.Errorf("second Adopt = %d, %v; want 0 (already in order)", again, err)
	}

	if _, err := s.Append(ctx, "listing-9", eventstore.NoStream, adjusted(9, 1)); err != nil {
		t.Fatal(err)
	}
	// Transactions elsewhere in the cluster may hold the horizon below the
	// new append for a moment.
	var recs []events.Record
	for deadline := time.Now().Add(10 * time.Second); len(recs) < 5 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if recs, err = s.ReadAll(ctx, eventstore.Cursor{}, 100); err != nil {
			t.Fatal(err)
		}
	}
	var got []uint64
	for _, r := range recs {
		got = append(got, r.TransactionID)
	}
	if len(got) != 5 {
		t.Fatalf("ReadAll after adopting = %v, want the 4 restored and the new event", got)
	}
	if diff := cmp.Diff([]uint64{far + 10, far + 10, far + 20, far + 30}, got[:4]); diff != "" {
		t.Errorf("restored order (-want +got):\n%s", diff)
	}
	if got[4] <= far+30 {
		t.Errorf("new append's log id %d does not order after the restored %d", got[4], far+30)
	}

	positions := consume(t, db.DB, "adopted", 5, 10*time.Second)
	want := make([]int64, len(recs))
	for i, r := range recs {
		want[i] = r.Position
	}
	if diff := cmp.Diff(want, positions); diff != "" {
		t.Errorf("consumer order (-want +got):\n%s", diff)
	}
}

// An offset restored from another cluster is as unorderable as an event.
func TestCheckOrderNamesTheTableAheadOfTheCluster(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	if _, err := db.DB.ExecContext(ctx, `INSERT INTO event_offsets (consumer_group, offset_acked, last_processed_transaction_id)
		VALUES ('products', 3, '987654321987')`); err != nil {
		t.Fatal(err)
	}
	err := eventstore.CheckOrder(ctx, db.DB)
	if !errors.Is(err, eventstore.ErrLogOutOfOrder) {
		t.Fatalf("CheckOrder = %v, want ErrLogOutOfOrder", err)
	}
	for _, want := range []string{"event_offsets", "987654321987", "ledger migrate"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("CheckOrder error %q does not name %q", err, want)
		}
	}
}
