package service_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/service"
)

// Services refuse the schema owner's (here the superuser's) URL with a
// message naming their own role, start as their own role, and start as a
// privileged one only with the development override.
func TestServicesRefuseARoleThatCouldRewriteTheLog(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()

	_, _, err := service.OpenDB(ctx, db.URL, 2, nil, service.AsService(false))
	if !errors.Is(err, service.ErrPrivilegedRole) || !strings.Contains(err.Error(), "shopledger_ingest") || !strings.Contains(err.Error(), service.AllowPrivilegedEnv) {
		t.Fatalf("OpenDB as the superuser = %v, want ErrPrivilegedRole naming the service roles and the override", err)
	}
	sdb, pool, err := service.OpenDB(ctx, db.URL, 2, nil, service.AsService(true))
	if err != nil {
		t.Fatalf("OpenDB as the superuser with the override: %v", err)
	}
	sdb.Close()
	pool.Close()
	for _, role := range []string{pgtest.IngestRole, pgtest.ProjectorRole, pgtest.QueryRole} {
		sdb, pool, err := service.OpenDB(ctx, db.RoleURL(role), 2, nil, service.AsService(false))
		if err != nil {
			t.Fatalf("OpenDB as %s: %v", role, err)
		}
		sdb.Close()
		pool.Close()
	}
}

// No service role can change history, or switch off what
// prevents it.
func TestServiceRolesCannotRewriteTheLog(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	if _, err := db.DB.ExecContext(ctx, `INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, data, occurred_at)
		VALUES (gen_random_uuid(), 'receipt-1', 1, 'sale.paid', 1, '{"receipt_id": 1}', now())`); err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{pgtest.IngestRole, pgtest.ProjectorRole, pgtest.QueryRole} {
		conn, err := pgx.Connect(ctx, db.RoleURL(role))
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{
			`UPDATE events SET data = '{}'`,
			`DELETE FROM events`,
			`TRUNCATE events`,
			`ALTER TABLE events DISABLE TRIGGER events_no_update_delete`,
			`UPDATE event_seal SET hash = '\x00'`,
			`DELETE FROM seal_anchors`,
			`DROP TABLE products`,
		} {
			_, err := conn.Exec(ctx, q)
			if err == nil || !(strings.Contains(err.Error(), "42501") || strings.Contains(err.Error(), "must be owner")) {
				t.Errorf("%s: %s = %v, want a permission error", role, q, err)
			}
		}
		conn.Close(ctx)
	}
}
