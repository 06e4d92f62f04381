package main

import (
	"testing"

	"github.com/shopledger/shopledger/service/servicetest"
)

// TestHelpWalksEveryCommand asks ingest and each of its subcommands for
// help: usage on stdout, status 0, nothing read, opened or served.
func TestHelpWalksEveryCommand(t *testing.T) {
	lines := servicetest.HelpLines()
	for name := range subcommands {
		lines = append(lines, []string{name, "--help"}, []string{name, "-h"}, []string{name, "--shop", "1", "--help"}, []string{"help", name})
	}
	servicetest.CheckHelp(t, "ingest", cliMain, lines)
}

func TestUsageErrorsGoToStderrWithStatus2(t *testing.T) {
	servicetest.CheckUsageErrors(t, "ingest", cliMain, [][]string{
		{"frobnicate"}, {"--verbose"}, {"reconcile", "--bogus"}, {"reconcile", "extra"}, {"reconcile", "--products-only", "--sales-only"},
	})
}
