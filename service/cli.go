package service

import (
	"errors"
	"fmt"
	"io"
)

// HelpRequested reports whether a command line asks for help: -h, -help
// or --help anywhere among its flags (a "--" ends them). Binaries check it
// before they read any setting or open anything, so that help always
// works, even on a machine with nothing configured.
func HelpRequested(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// ExitStatus turns a command's outcome into its exit status: 0; 1 for a
// failure, reported on stderr after the binary's name; 2 for a usage error
// (one wrapping usageErr), reported the same way and followed by the usage
// concerned, which is only rendered then.
func ExitStatus(name string, err, usageErr error, stderr io.Writer, usage func() string) int {
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	if errors.Is(err, usageErr) {
		fmt.Fprintf(stderr, "\n%s", usage())
		return 2
	}
	return 1
}
