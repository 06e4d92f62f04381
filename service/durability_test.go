package service_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"testing"

	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/service"
)

func TestDurabilityCheckPassesOnTheTestServer(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	d, err := service.ReadDurability(ctx, db.DB)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Check(); err != nil {
		t.Fatalf("the test server must be durable (fsync and synchronous_commit on): %v", err)
	}
	if err := service.CheckDurability(ctx, db.DB, false, nil); err != nil {
		t.Fatal(err)
	}
}

// A real session with synchronous_commit off is refused: the same setting
// made in the server's config, for the role or in the URL reaches every
// session the same way.
func TestDurabilityCheckRefusesSynchronousCommitOff(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	conn, err := db.DB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SET synchronous_commit = off`); err != nil {
		t.Fatal(err)
	}
	err = service.CheckDurability(ctx, conn, false, nil)
	if !errors.Is(err, service.ErrNotDurable) {
		t.Fatalf("err = %v, want ErrNotDurable", err)
	}
	for _, want := range []string{"synchronous_commit=off", service.AllowNonDurableEnv} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}

	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	if err := service.CheckDurability(ctx, conn, true, logger); err != nil {
		t.Fatalf("with the escape hatch: %v", err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "synchronous_commit=off") {
		t.Errorf("the escape hatch must warn; logged %q", logs.String())
	}
}

func TestDurabilityLevels(t *testing.T) {
	for _, tc := range []struct {
		fsync, commit string
		durable       bool
	}{
		{"on", "on", true},
		{"on", "remote_apply", true},
		{"on", "remote_write", false},
		{"on", "local", false},
		{"on", "off", false},
		{"off", "on", false},
	} {
		err := service.Durability{Fsync: tc.fsync, SynchronousCommit: tc.commit}.Check()
		if got := err == nil; got != tc.durable {
			t.Errorf("fsync=%s synchronous_commit=%s: err = %v, want durable %t", tc.fsync, tc.commit, err, tc.durable)
		}
		if err != nil && !errors.Is(err, service.ErrNotDurable) {
			t.Errorf("fsync=%s synchronous_commit=%s: err = %v, want ErrNotDurable", tc.fsync, tc.commit, err)
		}
	}
}

// OpenDB, where every binary opens its database, refuses before
// migrating: a URL that turns synchronous_commit off for its sessions is
// the real server's answer, not a fake.
func TestOpenDBRefusesNonDurableSessions(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	u, err := url.Parse(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("synchronous_commit", "off")
	u.RawQuery = q.Encode()

	_, _, err = service.OpenDB(ctx, u.String(), 2, nil)
	if !errors.Is(err, service.ErrNotDurable) {
		t.Fatalf("OpenDB = %v, want ErrNotDurable", err)
	}

	sdb, pool, err := service.OpenDB(ctx, u.String(), 2, slog.New(slog.DiscardHandler), service.AllowNonDurable(true))
	if err != nil {
		t.Fatalf("OpenDB with AllowNonDurable: %v", err)
	}
	sdb.Close()
	pool.Close()

	sdb, pool, err = service.OpenDB(ctx, db.URL, 2, nil)
	if err != nil {
		t.Fatalf("OpenDB on the durable server: %v", err)
	}
	sdb.Close()
	pool.Close()
}
