package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// noEnv fails the test on any lookup: help must need no setting.
func noEnv(t *testing.T) func(string) string {
	return func(name string) string {
		t.Errorf("help read %s", name)
		return ""
	}
}

// TestHelpWalksEveryCommand asks ingest and each of its subcommands for
// help: usage on stdout, status 0, nothing read, opened or served.
func TestHelpWalksEveryCommand(t *testing.T) {
	lines := [][]string{{"--help"}, {"-h"}, {"-help"}, {"help"}}
	for name := range subcommands {
		lines = append(lines, []string{name, "--help"}, []string{name, "-h"}, []string{name, "--shop", "1", "--help"}, []string{"help", name})
	}
	for _, args := range lines {
		var stdout, stderr bytes.Buffer
		code := cliMain(context.Background(), args, noEnv(t), &stdout, &stderr)
		if code != 0 || stderr.Len() > 0 {
			t.Errorf("ingest %s: status %d, stderr %q; want 0 and nothing", strings.Join(args, " "), code, stderr.String())
		}
		if !strings.Contains(stdout.String(), "ingest ") {
			t.Errorf("ingest %s printed no usage: %q", strings.Join(args, " "), stdout.String())
		}
	}
}

func TestUsageErrorsGoToStderrWithStatus2(t *testing.T) {
	for _, args := range [][]string{{"frobnicate"}, {"--verbose"}, {"reconcile", "--bogus"}, {"reconcile", "extra"}, {"reconcile", "--products-only", "--sales-only"}} {
		var stdout, stderr bytes.Buffer
		code := cliMain(context.Background(), args, func(string) string { return "" }, &stdout, &stderr)
		if code != 2 || stdout.Len() > 0 || !strings.Contains(stderr.String(), "\ningest ") {
			t.Errorf("ingest %s: status %d, stdout %q, stderr %q; want 2, nothing, the error and usage",
				strings.Join(args, " "), code, stdout.String(), stderr.String())
		}
	}
}
