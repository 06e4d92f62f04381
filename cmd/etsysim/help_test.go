package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestHelpExitsZeroAndUsageErrorsTwo: etsysim has no subcommands; help in
// every spelling prints usage on stdout with status 0 and reads nothing,
// and a bad command line gets status 2 with the usage on stderr.
func TestHelpExitsZeroAndUsageErrorsTwo(t *testing.T) {
	env := func(name string) string {
		t.Errorf("help read %s", name)
		return ""
	}
	for _, args := range [][]string{{"--help"}, {"-h"}, {"-help"}, {"help"}, {"--seed", "3", "--help"}} {
		var stdout, stderr bytes.Buffer
		if code := cliMain(context.Background(), args, env, &stdout, &stderr); code != 0 || stderr.Len() > 0 {
			t.Errorf("etsysim %s: status %d, stderr %q", strings.Join(args, " "), code, stderr.String())
		}
		if !strings.Contains(stdout.String(), "etsysim runs a local Etsy") {
			t.Errorf("etsysim %s printed %q", strings.Join(args, " "), stdout.String())
		}
	}
	for _, args := range [][]string{{"--bogus"}, {"serve"}, {"--seed", "x"}} {
		var stdout, stderr bytes.Buffer
		code := cliMain(context.Background(), args, noEnv, &stdout, &stderr)
		if code != 2 || stdout.Len() > 0 || !strings.Contains(stderr.String(), "etsysim runs a local Etsy") {
			t.Errorf("etsysim %s: status %d, stdout %q, stderr %q", strings.Join(args, " "), code, stdout.String(), stderr.String())
		}
	}
}
