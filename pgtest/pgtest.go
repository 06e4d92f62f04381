// Package pgtest gives each test a fresh, migrated PostgreSQL database,
// cloned from a template database so that it takes milliseconds.
//
// The server comes from SHOPLEDGER_TEST_DATABASE_URL (scripts/pg-ensure
// prints one), else 127.0.0.1:5432 as postgres. When no server answers the
// test is skipped, except under CI=true where it fails: in CI a missing
// database is a failure, never a skip.
package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopledger/shopledger/migrations"
	"github.com/shopledger/shopledger/service"
)

const defaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// AdminURL is the URL of the server's maintenance database.
func AdminURL() string {
	if u := os.Getenv("SHOPLEDGER_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return defaultURL
}

// Database is one test's database.
type Database struct {
	Name string
	URL  string
	DB   *sql.DB
	Pool *pgxpool.Pool
}

// NewEmpty creates a database without any migration for t (the
// cluster's roles exist already) and drops it when t ends: for tests that
// migrate it themselves, as an upgrade does.
func NewEmpty(t testing.TB) *Database {
	t.Helper()
	return create(t, time.Minute, false)
}

// New creates a migrated database for t and drops it when t ends.
func New(t testing.TB) *Database {
	t.Helper()
	return create(t, 2*time.Minute, true)
}

// create creates a database for t, a copy of the migrated template or
// empty, and drops it when t ends.
func create(t testing.TB, timeout time.Duration, migrated bool) *Database {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		unavailable(t, err)
		return nil
	}
	defer admin.Close(ctx)

	name := "t_" + randomHex(8)
	stmt := `CREATE DATABASE ` + name
	if migrated {
		templateOnce.Do(func() { templateName, templateErr = ensureTemplate(ctx) })
		if templateErr != nil {
			t.Fatalf("pgtest: template: %v", templateErr)
		}
		stmt += ` TEMPLATE ` + templateName
	}
	if _, err := admin.Exec(ctx, stmt); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	return opened(ctx, t, name)
}

// opened opens the database name for t and drops it when t ends.
func opened(ctx context.Context, t testing.TB, name string) *Database {
	t.Helper()
	dbURL := withDatabase(AdminURL(), name)
	db, pool, err := service.OpenDB(ctx, dbURL, 20, nil, service.SkipChecks())
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		db.Close()
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, AdminURL())
		if err != nil {
			t.Logf("pgtest: drop %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, name)); err != nil {
			t.Logf("pgtest: drop %s: %v", name, err)
		}
	})
	return &Database{Name: name, URL: dbURL, DB: db, Pool: pool}
}

// Open opens url again with its own pool of at most maxConns connections,
// as a second process would, and closes it when the test ends.
func Open(t testing.TB, url string, maxConns int32) *sql.DB {
	t.Helper()
	db, pool, err := service.OpenDB(context.Background(), url, maxConns, nil, service.SkipChecks())
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		db.Close()
		pool.Close()
	})
	return db
}

func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("pgtest: PostgreSQL unreachable at %s under CI=true: %v", redact(AdminURL()), err)
	}
	t.Skipf("pgtest: PostgreSQL unreachable (%v); run scripts/pg-ensure or set SHOPLEDGER_TEST_DATABASE_URL", err)
}

// ensureTemplate creates, once per schema, a migrated template database.
// Its name carries a hash of the migration files, so a changed schema gets a
// new template and concurrent test binaries agree on the name.
func ensureTemplate(ctx context.Context) (string, error) {
	sum, err := schemaHash()
	if err != nil {
		return "", err
	}
	name := "shopledger_tmpl_" + sum[:16]

	conn, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	// Test binaries of several packages run at once: serialise creation.
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(7316001)`); err != nil {
		return "", err
	}
	defer conn.Exec(context.Background(), `SELECT pg_advisory_unlock(7316001)`) //nolint:errcheck

	var ready bool
	err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1 AND datistemplate)`, name).Scan(&ready)
	if err != nil {
		return "", err
	}
	if ready {
		return name, nil
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, name)); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s`, name)); err != nil {
		return "", err
	}
	db, pool, err := service.OpenDB(ctx, withDatabase(AdminURL(), name), 2, nil, service.SkipChecks(), service.Migrate())
	if err != nil {
		return "", err
	}
	db.Close()
	pool.Close()
	if _, err := conn.Exec(ctx, fmt.Sprintf(`ALTER DATABASE %s WITH IS_TEMPLATE true`, name)); err != nil {
		return "", err
	}
	return name, nil
}

func schemaHash() (string, error) {
	h := sha256.New()
	var names []string
	err := fs.WalkDir(migrations.FS(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			names = append(names, path)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := fs.ReadFile(migrations.FS(), n)
		if err != nil {
			return "", err
		}
		h.Write([]byte(n))
		h.Write(b)
	}
	h.Write([]byte(migrations.RuntimeRoles()))
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Runtime login roles of the services, created by the migrations.
const (
	IngestRole    = "shopledger_ingest"
	ProjectorRole = "shopledger_projector"
	QueryRole     = "shopledger_query"
)

// RoleURL is the database's URL for logging in as role (trust
// authentication, as on the test server): services run as their own
// runtime role, never as the superuser that owns the schema.
func (d *Database) RoleURL(role string) string { return WithUser(d.URL, role) }

// WithUser returns raw with its user replaced by role and no password.
func WithUser(raw, role string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.User = url.User(role)
	return u.String()
}

func withDatabase(raw, name string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Path = "/" + name
	return u.String()
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable url)"
	}
	return u.Redacted()
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
