package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestHelpNeitherReadsNorServes: query has no subcommands; help in every
// spelling prints usage and exits 0 without reading a setting (so without
// opening the database or a listener).
func TestHelpNeitherReadsNorServes(t *testing.T) {
	env := func(name string) string {
		t.Errorf("help read %s", name)
		return ""
	}
	for _, args := range [][]string{{"--help"}, {"-h"}, {"-help"}, {"help"}} {
		var stdout, stderr bytes.Buffer
		if code := cliMain(context.Background(), args, env, &stdout, &stderr); code != 0 || stderr.Len() > 0 {
			t.Errorf("query %s: status %d, stderr %q", args[0], code, stderr.String())
		}
		if !strings.HasPrefix(stdout.String(), "query\n") {
			t.Errorf("query %s printed %q", args[0], stdout.String())
		}
	}
}

func TestUsageErrorsGoToStderrWithStatus2(t *testing.T) {
	for _, args := range [][]string{{"serve"}, {"--addr", ":80"}} {
		var stdout, stderr bytes.Buffer
		code := cliMain(context.Background(), args, func(string) string { return "" }, &stdout, &stderr)
		if code != 2 || stdout.Len() > 0 || !strings.Contains(stderr.String(), "\nquery\n") {
			t.Errorf("query %s: status %d, stdout %q, stderr %q", strings.Join(args, " "), code, stdout.String(), stderr.String())
		}
	}
}
