package eventstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/pgtest"
)

// A Group reads like the watermill subscribers do and moves its offset
// only from where it was read.
func TestGroupReadsWithoutTransactionAndAdvancesFromItsOffset(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	store := eventstore.New(db.DB)
	// One transaction, so the three become visible together.
	if _, err := store.Append(ctx, "listing-1", eventstore.Any, adjusted(1, 1), adjusted(1, 2), adjusted(1, 3)); err != nil {
		t.Fatal(err)
	}
	g := eventstore.NewGroup(db.DB, "group-test", 2)
	if err := g.Init(ctx); err != nil {
		t.Fatal(err)
	}
	// Other tests of the cluster may hold transactions open, which keeps
	// new events invisible to every reader for a while.
	var from eventstore.Cursor
	var batch []eventstore.GroupMessage
	for deadline := time.Now().Add(time.Minute); len(batch) < 2 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var err error
		if from, batch, err = g.Read(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if from != (eventstore.Cursor{}) || len(batch) != 2 || batch[0].Type != "stock.adjusted" || batch[0].SchemaVersion < 1 {
		t.Fatalf("Read = %v, %+v; want the log's start and its first 2 events", from, batch)
	}

	advance := func(from, to eventstore.Cursor) error {
		tx, err := db.DB.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback() //nolint:errcheck // no-op after commit
		if err := g.AdvanceIn(ctx, tx, from, to); err != nil {
			return err
		}
		return tx.Commit()
	}
	if err := advance(from, batch[1].Cursor); err != nil {
		t.Fatal(err)
	}
	// A second reader that read the same batch finds the offset moved.
	if err := advance(from, batch[0].Cursor); !errors.Is(err, eventstore.ErrGroupMoved) {
		t.Errorf("advancing from a stale offset: err = %v, want ErrGroupMoved", err)
	}
	at, rest, err := g.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if at != batch[1].Cursor || len(rest) != 1 || !rest[0].Cursor.After(at) {
		t.Errorf("after advancing: Read = %v, %d events; want %v and the one event left", at, len(rest), batch[1].Cursor)
	}
}
