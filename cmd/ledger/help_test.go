package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/shopledger/shopledger/service"
)

// noEnv fails the test on any lookup: help must need no setting.
func noEnv(t *testing.T) func(string) string {
	return func(name string) string {
		t.Errorf("help read %s", name)
		return ""
	}
}

// TestHelpWalksEveryCommand asks every command and subcommand in the
// registry for help, in every spelling, with no environment at all: each
// answers with its usage on stdout and status 0, and nothing on stderr.
func TestHelpWalksEveryCommand(t *testing.T) {
	lines := [][]string{{"--help"}, {"-h"}, {"help"}}
	for name, cmd := range commands {
		if cmd.usage == "" {
			t.Errorf("%s has no usage text", name)
		}
		if (cmd.run == nil) == (cmd.subs == nil) {
			t.Errorf("%s must either run or have subcommands", name)
		}
		lines = append(lines, []string{name, "--help"}, []string{name, "-h"}, []string{name, "-help"}, []string{"help", name})
		for _, sub := range cmd.subNames() {
			lines = append(lines,
				[]string{name, sub, "--help"}, []string{name, sub, "-h"},
				// Flags before the help flag, as a user types them.
				[]string{name, sub, "--shop", "7", "--help"})
		}
	}
	for _, args := range lines {
		var stdout, stderr bytes.Buffer
		code := cliMain(context.Background(), args, noEnv(t), &stdout, &stderr)
		if code != 0 || stderr.Len() > 0 {
			t.Errorf("ledger %s: status %d, stderr %q; want 0 and nothing", strings.Join(args, " "), code, stderr.String())
		}
		if !strings.Contains(stdout.String(), "ledger ") {
			t.Errorf("ledger %s printed no usage: %q", strings.Join(args, " "), stdout.String())
		}
	}
}

// TestUsageErrorsGoToStderrWithStatus2 covers unknown commands,
// subcommands and flags, and missing subcommands. The database named is
// one nothing listens on: a usage error is found before connecting.
func TestUsageErrorsGoToStderrWithStatus2(t *testing.T) {
	env := service.MapEnv(map[string]string{"SHOPLEDGER_DATABASE_URL": "postgres://nobody@127.0.0.1:1/none?connect_timeout=1"})
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"tokens"},
		{"tokens", "frob"},
		{"tokens", "create", "--bogus"},
		{"thresholds", "sett"},
		{"alert-channels", "add", "--rotate"},
		{"keys", "generate", "extra"},
		{"migrate", "--nope"},
		{"verify", "now"},
	} {
		var stdout, stderr bytes.Buffer
		code := cliMain(context.Background(), args, env, &stdout, &stderr)
		if code != 2 {
			t.Errorf("ledger %s: status %d, want 2", strings.Join(args, " "), code)
		}
		if stdout.Len() > 0 {
			t.Errorf("ledger %s wrote to stdout: %q", strings.Join(args, " "), stdout.String())
		}
		if !strings.Contains(stderr.String(), "ledger ") || !strings.Contains(stderr.String(), "\nledger ") {
			t.Errorf("ledger %s: stderr lacks the error and usage: %q", strings.Join(args, " "), stderr.String())
		}
	}
}
