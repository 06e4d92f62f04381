// Command inbox is a mail sink for a development machine: an SMTP server
// that keeps every message in memory and a page that lists them, so that
// the e-mails the system sends under make run (verification and reset
// links, invitations, low-stock alerts) can be read in a browser. It
// delivers nothing anywhere; never point production at it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/shopledger/shopledger/inbox"
	"github.com/shopledger/shopledger/service"
)

func main() {
	os.Exit(service.ExitStatus("inbox", run(context.Background(), os.Args[1:], os.Getenv, os.Stdout), errUsage, os.Stderr, func() string { return usage }))
}

var errUsage = errors.New("usage")

const usage = `inbox

A local mail sink for development: SMTP on SHOPLEDGER_INBOX_SMTP_ADDR
(default 127.0.0.1:2525), the messages listed at / on SHOPLEDGER_INBOX_ADDR
(default 127.0.0.1:8025). Messages live in memory only; it delivers
nothing. It takes no arguments.

Environment:
  SHOPLEDGER_INBOX_SMTP_ADDR   SMTP listener (default 127.0.0.1:2525)
  SHOPLEDGER_INBOX_ADDR        the page listing the messages (default 127.0.0.1:8025)
  SHOPLEDGER_INBOX_MAX         messages kept, oldest dropped first (default 500)
  SHOPLEDGER_LOG_LEVEL         debug, info, warn or error (default info)
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if service.AnswerHelp(args, stdout, func([]string) string { return usage }) {
		return nil
	}
	if len(args) > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, args[0])
	}
	env := service.NewEnv(getenv)
	smtpAddr := env.String("SHOPLEDGER_INBOX_SMTP_ADDR", "127.0.0.1:2525")
	addr := env.String("SHOPLEDGER_INBOX_ADDR", "127.0.0.1:8025")
	max := env.Int("SHOPLEDGER_INBOX_MAX", 500)
	level := env.String("SHOPLEDGER_LOG_LEVEL", "info")
	if err := env.Err(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := service.NewLogger(level, os.Stderr).With("service", "inbox")

	box := inbox.New(int(max), logger)
	bound, err := box.Start(smtpAddr)
	if err != nil {
		return err
	}
	defer box.Close()
	fmt.Fprintf(stdout, "inbox smtp listening on %s\n", bound)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", service.Healthz)
	mux.Handle("GET /{$}", box.Handler())
	return service.ServeAll(ctx, stdout, logger, service.Listener{Addr: addr, Handler: mux, Banner: "inbox listening on"})
}
