// Command etsysim runs a local, in-memory Etsy: the Open API v3 endpoints
// shopledger uses, OAuth with PKCE, rate limits, signed webhook delivery
// with fault injection, a scenario engine and a control API under /_sim/.
// Run it with --help for the flags.
package main

import (
	"context"
	"fmt"
	"os"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "etsysim: %v\n", err)
		os.Exit(1)
	}
}
