// Command etsysim runs a local, in-memory Etsy: the Open API v3 endpoints
// shopledger uses, OAuth with PKCE, rate limits, signed webhook delivery
// with fault injection, a scenario engine and a control API under /_sim/.
// Run it with --help for the flags.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(cliMain(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

var errUsage = errors.New("usage")

// cliMain runs a command line and turns its outcome into the exit status:
// 0, 1 for a failure, or 2 for a usage error, which it explains on stderr
// followed by the usage.
func cliMain(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	err := run(ctx, args, getenv, stdout)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "etsysim: %v\n", err)
	if errors.Is(err, errUsage) {
		fmt.Fprintln(stderr)
		fs := flags(&config{})
		fs.SetOutput(stderr)
		fs.Usage()
		return 2
	}
	return 1
}
