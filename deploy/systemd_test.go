package deploy_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/service/servicetest"
)

// unitFile is one file of deploy/systemd: its name and its settings, each
// key with every value it is given, in order.
type unitFile struct {
	name     string
	text     string
	settings map[string][]string
}

func readUnits(t *testing.T) []unitFile {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(repoRoot(t), "deploy", "systemd", "shopledger-*"))
	if err != nil {
		t.Fatal(err)
	}
	var units []unitFile
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		u := unitFile{name: filepath.Base(p), text: string(raw), settings: map[string][]string{}}
		for _, line := range strings.Split(u.text, "\n") {
			line = strings.TrimSpace(line)
			if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: %q is not key=value", u.name, line)
			}
			u.settings[k] = append(u.settings[k], v)
		}
		units = append(units, u)
	}
	if len(units) == 0 {
		t.Fatal("no units in deploy/systemd")
	}
	return units
}

var (
	// execBinary matches the shopledger binaries a unit runs.
	execBinary = regexp.MustCompile(`/usr/local/bin/([a-z-]+)`)
	// execCommand matches a binary with its subcommand and first flag, as
	// far as the coverage test tells units apart by them.
	execCommand = regexp.MustCompile(`/usr/local/bin/([a-z-]+( [a-z]+)?( --out)?)`)
)

// TestUnitsPassSystemdAnalyzeVerify runs systemd-analyze verify on copies of
// the units whose /usr/local/bin paths point at stand-ins in a temporary
// folder: verify insists that every command exists.
func TestUnitsPassSystemdAnalyzeVerify(t *testing.T) {
	analyze := servicetest.NeedTool(t, "systemd-analyze", "it comes with Debian's systemd package")
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, u := range readUnits(t) {
		for _, m := range execBinary.FindAllStringSubmatch(u.text, -1) {
			if err := os.WriteFile(filepath.Join(bin, m[1]), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		p := filepath.Join(dir, u.name)
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(u.text, "/usr/local/bin/", bin+"/")), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, analyze, append([]string{"verify", "--man=no"}, files...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// verify exits 0 on unknown keys and unknown system call groups but
	// prints them; any complaint about our units is a failure. Lines about
	// the host's own units are not ours to fix.
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		switch {
		case line == "":
		case strings.Contains(line, "shopledger"):
			t.Errorf("systemd-analyze verify: %s", line)
		default:
			t.Logf("systemd-analyze verify (not about our units): %s", line)
		}
	}
}

// TestUnitsAreSandboxed checks that every service keeps the sandbox
// settings a reviewer would otherwise have to check by eye.
func TestUnitsAreSandboxed(t *testing.T) {
	want := map[string]string{
		"DynamicUser":             "yes",
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"CapabilityBoundingSet":   "",
		"RestrictSUIDSGID":        "yes",
		"SystemCallArchitectures": "native",
	}
	// The long-running services connect as their own database role, set
	// in a file of their own read after the shared one; the operator's
	// oneshots use the shared file's owner role.
	services := map[string]string{
		"shopledger-ingest.service":    "ingest",
		"shopledger-projector.service": "projector",
		"shopledger-query.service":     "query",
	}
	for _, u := range readUnits(t) {
		if !strings.HasSuffix(u.name, ".service") {
			continue
		}
		wantEnv := []string{"/etc/shopledger/shopledger.env"}
		if svc, ok := services[u.name]; ok {
			wantEnv = append(wantEnv, "/etc/shopledger/"+svc+".env")
		}
		if got := u.settings["EnvironmentFile"]; !slices.Equal(got, wantEnv) {
			t.Errorf("%s: EnvironmentFile=%q, want %q", u.name, got, wantEnv)
		}
		for k, v := range want {
			if got := u.settings[k]; !slices.Equal(got, []string{v}) {
				t.Errorf("%s: %s=%q, want %s=%s", u.name, k, got, k, v)
			}
		}
		if got := u.settings["SystemCallFilter"]; len(got) == 0 || got[0] != "@system-service" {
			t.Errorf("%s: SystemCallFilter=%q, want @system-service first", u.name, got)
		}
		for _, k := range []string{"User", "AmbientCapabilities"} {
			if v := u.settings[k]; len(v) > 0 && v[0] != "" {
				t.Errorf("%s: %s=%q: the units run as a dynamic user with no capabilities", u.name, k, v)
			}
		}
	}
}

// TestUnitsCoverEveryLongRunningBinary compares the units with the compose
// file: each binary compose keeps running has a unit of its own, and the
// migration and backup have theirs.
func TestUnitsCoverEveryLongRunningBinary(t *testing.T) {
	var c composeFile
	if err := yaml.Unmarshal(readCompose(t), &c); err != nil {
		t.Fatal(err)
	}
	bins := scanBinaries(t)
	var want []string
	for _, svc := range sortedKeys(c.Services) {
		s := c.Services[svc]
		if len(s.Command) == 1 && bins[s.Command[0]] != nil {
			want = append(want, "shopledger-"+s.Command[0]+".service "+s.Command[0])
		}
	}
	want = append(want, "shopledger-backup.service ledger backup --out", "shopledger-migrate.service ledger migrate",
		"shopledger-basebackup.service shopledger-basebackup")
	slices.Sort(want)

	var got []string
	units := map[string]unitFile{}
	for _, u := range readUnits(t) {
		units[u.name] = u
		for _, exe := range u.settings["ExecStart"] {
			if m := execCommand.FindStringSubmatch(exe); m != nil {
				got = append(got, u.name+" "+m[1])
			}
		}
	}
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("units and what they run (-want +got):\n%s", diff)
	}

	migrate := units["shopledger-migrate.service"]
	if !slices.Equal(migrate.settings["Type"], []string{"oneshot"}) {
		t.Errorf("shopledger-migrate.service: Type=%q, want oneshot", migrate.settings["Type"])
	}
	for _, name := range sortedKeys(units) {
		u := units[name]
		if len(u.settings["Restart"]) == 0 {
			continue
		}
		if !strings.Contains(strings.Join(u.settings["Requires"], " "), "shopledger-migrate.service") ||
			!strings.Contains(strings.Join(u.settings["After"], " "), "shopledger-migrate.service") {
			t.Errorf("%s: starts without waiting for shopledger-migrate.service", name)
		}
	}
	for _, name := range []string{"shopledger-backup.timer", "shopledger-basebackup.timer"} {
		timer, ok := units[name]
		if !ok {
			t.Fatalf("no %s", name)
		}
		if len(timer.settings["OnCalendar"]) == 0 || !slices.Equal(timer.settings["Persistent"], []string{"true"}) {
			t.Errorf("%s: OnCalendar=%q Persistent=%q, want a calendar and Persistent=true",
				name, timer.settings["OnCalendar"], timer.settings["Persistent"])
		}
	}
}

// TestUnitFilesNameOnlyVariablesTheBinariesRead holds the units and the
// example EnvironmentFile to the code, as the compose test does.
func TestUnitFilesNameOnlyVariablesTheBinariesRead(t *testing.T) {
	bins := scanBinaries(t)
	paths, err := filepath.Glob(filepath.Join(repoRoot(t), "deploy", "systemd", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range mentionedVar.FindAllString(string(raw), -1) {
			if !anyBinaryReads(bins, name) {
				t.Errorf("%s names %s, which no binary reads", filepath.Base(p), name)
			}
		}
	}
}

// TestBackupUnitWritesABackup runs the backup service's commands as
// systemd would, with its escapes undone and %S pointing at a temporary
// folder, against a test database: the file it names must appear, and the
// clean-up command must run.
func TestBackupUnitWritesABackup(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ledger; skipped with -short")
	}
	sh := servicetest.NeedTool(t, "sh", "a POSIX shell")
	db := pgtest.New(t)
	var unit unitFile
	for _, u := range readUnits(t) {
		if u.name == "shopledger-backup.service" {
			unit = u
		}
	}
	if unit.name == "" {
		t.Fatal("no shopledger-backup.service")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// Built as scripts/image builds it, so that after the image test the
	// packages come from the build cache and only the link is left.
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin+string(filepath.Separator), "./cmd/ledger")
	build.Dir = repoRoot(t)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/ledger: %v\n%s", err, out)
	}
	state := filepath.Join(dir, "state")
	backups := filepath.Join(state, unit.settings["StateDirectory"][0])
	if err := os.MkdirAll(backups, 0o700); err != nil {
		t.Fatal(err)
	}
	// systemd's own expansion: specifiers and $$.
	expand := strings.NewReplacer("%S", state, "%%", "%", "$$", "$", "/usr/local/bin/", bin+"/")
	env := append(os.Environ(), "SHOPLEDGER_DATABASE_URL="+db.URL)
	for _, key := range []string{"ExecStart", "ExecStartPost"} {
		for _, line := range unit.settings[key] {
			args := splitUnitCommand(t, expand.Replace(line))
			if args[0] == "/bin/sh" {
				args[0] = sh
			}
			cmd := exec.CommandContext(ctx, args[0], args[1:]...)
			cmd.Env = env
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s=%s: %v\n%s", key, line, err, out.String())
			}
		}
	}
	got, err := filepath.Glob(filepath.Join(backups, "shopledger-*.slbak"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("backups after one run: %q, want one shopledger-<time>.slbak", got)
	}
	if fi, err := os.Stat(got[0]); err != nil || fi.Size() == 0 {
		t.Errorf("backup %s: %v, size %d", got[0], err, fi.Size())
	}
}

// splitUnitCommand splits an Exec line into words the way systemd does for
// the forms the units use: whitespace, and single or double quotes.
func splitUnitCommand(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		t.Fatalf("unclosed quote in %q", line)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}
