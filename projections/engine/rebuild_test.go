package engine_test

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

	"github.com/shopledger/shopledger/projections/engine"
	"github.com/shopledger/shopledger/projections/internal/projtest"

	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/projections"
)

// digest is an ordered hash of a table's rows as text: equal digests mean
// byte-for-byte equal contents.
func digest(t *testing.T, db *sql.DB, table string) string {
	t.Helper()
	var d sql.NullString
	if err := db.QueryRow(`SELECT md5(string_agg(x::text, E'\n' ORDER BY x::text)) FROM ` + table + ` x`).Scan(&d); err != nil {
		t.Fatal(err)
	}
	return d.String
}

// TestRebuildEqualsLive applies a generated log live while a rebuild swaps
// fresh tables in underneath the running projector, then checks that the
// live read models equal a rebuild from zero row for row, and that two
// rebuilds from zero are byte-for-byte identical (determinism).
func TestRebuildEqualsLive(t *testing.T) {
	db, s, w := projtest.NewLog(t, 1, 3, 4)
	ctx := context.Background()
	projtest.AppendAll(t, s, w.Generate(1500))

	projs := projections.Default()
	_, stop := projtest.StartRunner(t, db.DB, projs, projtest.FastConfig(), nil)
	targets, tables := projtest.Rebuildable(t)

	// Appends keep flowing from two writers while the rebuild swaps.
	more := w.Generate(3000)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := i; j < len(more); j += 2 {
				if _, err := s.Append(ctx, more[j].Stream, eventstore.Any, more[j].Events...); err != nil {
					t.Errorf("append: %v", err)
					return
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	rep, err := engine.Rebuild(ctx, db.Pool, targets, engine.RebuildOptions{}, projtest.Logger(t))
	if err != nil {
		t.Fatalf("rebuild while live: %v", err)
	}
	if rep.Events == 0 {
		t.Fatal("rebuild read no events")
	}
	wg.Wait()
	projtest.AppendAll(t, s, w.Generate(500))
	projtest.WaitCaughtUp(t, db.DB, projtest.Names(projs), 60*time.Second)
	stop()

	// Nothing appends now, so a rebuild from zero reads every event of
	// its types (projtest.RebuildShadow runs it again when the horizon
	// held it back for a moment).
	rebuildAll := func() { projtest.RebuildShadow(t, db.Pool, db.DB, targets) }
	rebuildAll()
	projtest.RequireSameTables(t, db.DB, tables, engine.ShadowSuffix)

	first := map[string]string{}
	for _, table := range tables {
		first[table] = digest(t, db.DB, table+engine.ShadowSuffix)
	}
	rebuildAll()
	for _, table := range tables {
		if got := digest(t, db.DB, table+engine.ShadowSuffix); got != first[table] {
			t.Errorf("%s: two rebuilds from zero differ (digest %s, then %s)", table, first[table], got)
		}
	}
}

// TestRebuildKeepsSchema checks that a swapped-in table keeps the live
// table's indexes, constraint names and grants, so a second rebuild and
// the application role see the same schema.
func TestRebuildKeepsSchema(t *testing.T) {
	db, s, w := projtest.NewLog(t, 2, 1, 2)
	ctx := context.Background()
	projtest.AppendAll(t, s, w.Generate(200))
	targets, tables := projtest.Rebuildable(t)
	schema := func() string {
		var out string
		err := db.DB.QueryRow(`SELECT string_agg(x, E'\n' ORDER BY x) FROM (
			SELECT tablename || ': ' || indexname || ' ' || indexdef AS x FROM pg_indexes WHERE tablename = ANY($1)
			UNION ALL SELECT conrelid::regclass::text || ': ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid::regclass::text = ANY($1)
			UNION ALL SELECT table_name || ': grant ' || grantee || ' ' || privilege_type FROM information_schema.role_table_grants WHERE table_name = ANY($1)
		) s`, tables).Scan(&out)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := schema()
	for range 2 {
		if _, err := engine.Rebuild(ctx, db.Pool, targets, engine.RebuildOptions{}, projtest.Logger(t)); err != nil {
			t.Fatal(err)
		}
	}
	if after := schema(); after != before {
		t.Errorf("schema after rebuilds differs:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
