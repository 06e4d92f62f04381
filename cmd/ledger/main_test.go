package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/service"
)

func TestMigrateIsIdempotent(t *testing.T) {
	db := pgtest.New(t)
	env := service.MapEnv(map[string]string{"SHOPLEDGER_DATABASE_URL": db.URL})
	for i := 0; i < 2; i++ {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"migrate"}, env, &out); err != nil {
			t.Fatalf("migrate #%d: %v", i+1, err)
		}
	}
	var triggers int
	if err := db.DB.QueryRow(`SELECT count(*) FROM pg_trigger WHERE tgrelid = 'events'::regclass AND NOT tgisinternal`).Scan(&triggers); err != nil {
		t.Fatal(err)
	}
	if triggers != 3 {
		t.Errorf("events has %d triggers, want 3 (row and truncate guards, appender announcement)", triggers)
	}
}

// Statistics taken of an empty log make the planner cost appends' lookups
// as if the log stayed empty until autovacuum analyzes it again, so a
// fresh install's first webhooks would be slow: migrating a new database
// leaves its empty events table never analyzed (reltuples -1).
func TestMigrateLeavesAnEmptyLogUnanalyzed(t *testing.T) {
	db := pgtest.NewEmpty(t)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"migrate"}, service.MapEnv(map[string]string{"SHOPLEDGER_DATABASE_URL": db.URL}), &out); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out.String())
	}
	var reltuples float64
	if err := db.DB.QueryRow(`SELECT reltuples FROM pg_class WHERE oid = 'events'::regclass`).Scan(&reltuples); err != nil {
		t.Fatal(err)
	}
	if reltuples >= 0 {
		t.Errorf("events has reltuples %v after migrating a new database, want -1 (never analyzed)", reltuples)
	}
}

func TestUnknownCommandIsUsageError(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"frobnicate"}, service.MapEnv(nil), &out)
	if !errors.Is(err, errUsage) {
		t.Errorf("err = %v, want usage error", err)
	}
}

func TestRefusesNonDurableDatabaseUnlessAllowed(t *testing.T) {
	db := pgtest.New(t)
	// The server is durable; this URL turns synchronous_commit off for
	// every session ledger opens, as a careless role setting would.
	nonDurable := db.URL + "&synchronous_commit=off"
	if !strings.Contains(db.URL, "?") {
		nonDurable = db.URL + "?synchronous_commit=off"
	}
	var out bytes.Buffer
	err := run(context.Background(), []string{"migrate"}, service.MapEnv(map[string]string{"SHOPLEDGER_DATABASE_URL": nonDurable}), &out)
	if !errors.Is(err, service.ErrNotDurable) {
		t.Fatalf("migrate on a non-durable database: err = %v, want ErrNotDurable", err)
	}
	env := service.MapEnv(map[string]string{
		"SHOPLEDGER_DATABASE_URL":              nonDurable,
		"SHOPLEDGER_ALLOW_NONDURABLE_DATABASE": "true",
	})
	if err := run(context.Background(), []string{"migrate"}, env, &out); err != nil {
		t.Fatalf("migrate with SHOPLEDGER_ALLOW_NONDURABLE_DATABASE=true: %v", err)
	}
}
