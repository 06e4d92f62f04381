package deploy_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/projections"
)

// TestBaseBackupUnitSupportsPointInTimeRecovery runs the base backup
// unit's command (scripts/basebackup, as systemd would start it) on a
// cluster archiving its WAL, then again keeping one backup: the older
// backup and the WAL before the newer one go, and the newer backup still
// recovers the log to a moment after it, with its seal intact.
func TestBaseBackupUnitSupportsPointInTimeRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two clusters")
	}
	var unit unitFile
	for _, u := range readUnits(t) {
		if u.name == "shopledger-basebackup.service" {
			unit = u
		}
	}
	if unit.name == "" || len(unit.settings["ExecStart"]) != 1 {
		t.Fatal("no shopledger-basebackup.service with one ExecStart")
	}
	ctx := context.Background()
	src, db := pgtest.NewArchivingLedger(t)

	// The unit's command line with systemd's specifiers and the installed
	// paths pointed at this test's folders and the repository's script.
	state := filepath.Join(src.Dir(), "state")
	backups := filepath.Join(state, unit.settings["StateDirectory"][0])
	// A copy the cluster's owner can read wherever the checkout is (a
	// root-only folder when CI runs as root).
	script, err := os.ReadFile(filepath.Join(repoRoot(t), "scripts", "basebackup"))
	if err != nil {
		t.Fatal(err)
	}
	installed := filepath.Join(src.Dir(), "shopledger-basebackup")
	if err := os.WriteFile(installed, script, 0o755); err != nil {
		t.Fatal(err)
	}
	expand := strings.NewReplacer("%S", state, "/usr/local/bin/shopledger-basebackup", installed,
		"/srv/wal-archive", src.ArchiveDir())
	args := splitUnitCommand(t, expand.Replace(unit.settings["ExecStart"][0]))
	env := []string{"SHOPLEDGER_DATABASE_URL=" + src.URL("postgres")}
	run := func(args []string) {
		t.Helper()
		if out, err := src.RunAsOwner(5*time.Minute, env, "/bin/bash", args...); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	pgtest.AppendAndSeal(t, db, 1, 10)
	run(args) // as the timer runs it: keeps four
	pgtest.AppendAndSeal(t, db, 100, 10)
	time.Sleep(1100 * time.Millisecond) // backups are named by the second
	keepOne := slices.Clone(args)
	if i := slices.Index(keepOne, "--keep"); i < 0 || i+1 >= len(keepOne) {
		t.Fatalf("the unit's command %q sets no --keep", args)
	} else {
		keepOne[i+1] = "1"
	}
	run(keepOne)
	kept, err := filepath.Glob(filepath.Join(backups, "base-*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) != 1 {
		t.Fatalf("backups after a run keeping one: %q", kept)
	}
	start, err := os.ReadFile(filepath.Join(kept[0], ".wal-start"))
	if err != nil {
		t.Fatal(err)
	}
	archived, err := filepath.Glob(filepath.Join(src.ArchiveDir(), "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range archived {
		if b := filepath.Base(f); len(b) >= 24 && b[:24] < strings.TrimSpace(string(start)) {
			t.Errorf("archived %s is older than the kept backup's start %s and still there", b, start)
		}
	}

	var target string
	if err := db.QueryRowContext(ctx, `SELECT clock_timestamp()::text`).Scan(&target); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	pgtest.AppendAndSeal(t, db, 200, 10)
	src.ArchiveWAL()

	rdb, n := pgtest.RecoverLedger(t, kept[0], src.ArchiveDir(), target)
	if n != 20 {
		t.Errorf("the log recovered to %s holds %d events, want the 20 committed before it", target, n)
	}
	rep, err := projections.VerifySeal(ctx, rdb)
	if err != nil || !rep.OK() || rep.Sealed != 20 {
		t.Errorf("verify after recovery = %+v, %v; want 20 sealed events and an intact chain", rep, err)
	}
}
