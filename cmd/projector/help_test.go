package main

import (
	"testing"

	"github.com/shopledger/shopledger/service/servicetest"
)

// TestHelpWalksEveryCommand asks the projector and each of its subcommands
// for help: usage on stdout, status 0, nothing read, opened or served.
func TestHelpWalksEveryCommand(t *testing.T) {
	lines := servicetest.HelpLines()
	for name := range subcommands {
		lines = append(lines, []string{name, "--help"}, []string{name, "-h"}, []string{name, "--projection", "sales", "--help"}, []string{"help", name})
	}
	servicetest.CheckHelp(t, "projector", cliMain, lines)
}

func TestUsageErrorsGoToStderrWithStatus2(t *testing.T) {
	servicetest.CheckUsageErrors(t, "projector", cliMain, [][]string{
		{"frobnicate"}, {"--verbose"}, {"rebuild", "--bogus"}, {"rebuild", "extra"},
	})
}
