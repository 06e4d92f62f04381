package main

import (
	"testing"

	"github.com/shopledger/shopledger/service/servicetest"
)

// TestHelpNeitherReadsNorServes: query has no subcommands; help in every
// spelling prints usage and exits 0 without reading a setting (so without
// opening the database or a listener).
func TestHelpNeitherReadsNorServes(t *testing.T) {
	servicetest.CheckHelp(t, "query", cliMain, servicetest.HelpLines())
}

func TestUsageErrorsGoToStderrWithStatus2(t *testing.T) {
	servicetest.CheckUsageErrors(t, "query", cliMain, [][]string{{"serve"}, {"--addr", ":80"}})
}
