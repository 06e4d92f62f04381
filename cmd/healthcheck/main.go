// Command healthcheck asks a shopledger binary's /healthz whether it is up
// and exits 0 if it answers 200, 1 otherwise. The container image has no
// shell or curl, so its HEALTHCHECK runs this.
//
//	healthcheck [URL]    default: $SHOPLEDGER_HEALTHCHECK_URL, else query's /healthz
//	healthcheck --version
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/shopledger/shopledger/service"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "healthcheck: %v\n", err)
		os.Exit(1)
	}
}

// defaultURL is query's /healthz at its default address.
const defaultURL = "http://127.0.0.1:8080/healthz"

// timeout stays below the image's HEALTHCHECK --timeout, so a hung server
// is reported by this command rather than killed by the runtime.
const timeout = 2 * time.Second

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	target := service.NewEnv(getenv).String("SHOPLEDGER_HEALTHCHECK_URL", defaultURL)
	switch {
	case len(args) == 1 && args[0] == "--version":
		fmt.Fprintf(stdout, "shopledger %s\n", service.Version)
		return nil
	case len(args) == 1 && (args[0] == "-h" || args[0] == "--help"):
		fmt.Fprintln(stdout, "usage: healthcheck [URL] | --version\nURL defaults to $SHOPLEDGER_HEALTHCHECK_URL, else "+defaultURL)
		return nil
	case len(args) == 1:
		target = args[0]
	case len(args) > 1:
		return errors.New("usage: healthcheck [URL] | --version")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", target, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", target, resp.Status)
	}
	return nil
}
