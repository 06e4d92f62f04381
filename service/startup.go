package service

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/shopledger/shopledger/telemetry"
)

// TelemetryConfig reads the error-reporting and tracing settings every
// serving binary shares.
func TelemetryConfig(env *Env) telemetry.Config {
	return telemetry.Config{
		SentryDSN:    env.String("SHOPLEDGER_SENTRY_DSN", ""),
		Environment:  env.String("SHOPLEDGER_SENTRY_ENVIRONMENT", "production"),
		OTLPEndpoint: env.String("SHOPLEDGER_OTLP_ENDPOINT", ""),
		SampleRatio:  env.Float("SHOPLEDGER_TRACE_SAMPLE_RATIO", 1),
	}
}

// TelemetryUsage is the usage lines of the settings TelemetryConfig and
// the log level read, each name padded to width so that they line up
// with the binary's other settings.
func TelemetryUsage(width int) string {
	var b strings.Builder
	for _, l := range [][2]string{
		{"SHOPLEDGER_LOG_LEVEL", "debug, info, warn or error (default info)"},
		{"SHOPLEDGER_SENTRY_DSN", "report errors and panics to this Sentry DSN (default none)"},
		{"SHOPLEDGER_SENTRY_ENVIRONMENT", "Sentry environment (default production)"},
		{"SHOPLEDGER_OTLP_ENDPOINT", "export traces over OTLP/HTTP to this base URL (default none)"},
		{"SHOPLEDGER_TRACE_SAMPLE_RATIO", "share of new traces recorded, 0 to 1 (default 1)"},
	} {
		fmt.Fprintf(&b, "  %-*s%s\n", width, l[0], l[1])
	}
	return b.String()
}

// StartTelemetry builds the logger of the named binary (JSON on stderr at
// level) and starts its error reporting and tracing. The caller closes
// the Telemetry and defers its Recover.
func StartTelemetry(ctx context.Context, name, level string, cfg telemetry.Config) (*telemetry.Telemetry, *slog.Logger, error) {
	logger := NewLogger(level, os.Stderr).With("service", name)
	tel, logger, err := telemetry.Start(ctx, cfg, name, Version, logger)
	if err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	return tel, logger, nil
}

// AnswerHelp prints the usage a help request asks for ("help [command]",
// or -h, -help or --help among the flags) and reports whether it did.
// usageOf gives the usage of the command args name, else the binary's.
func AnswerHelp(args []string, stdout io.Writer, usageOf func(args []string) string) bool {
	switch {
	case len(args) > 0 && args[0] == "help":
		fmt.Fprint(stdout, usageOf(args[1:]))
	case HelpRequested(args):
		fmt.Fprint(stdout, usageOf(args))
	default:
		return false
	}
	return true
}

// Subcommand is a one-shot command of a binary, run by Run.
type Subcommand[R any] struct {
	Usage func() string
	Run   R
}

// Subcommands is every subcommand of a binary, by name: dispatch and help
// both read it.
type Subcommands[R any] map[string]Subcommand[R]

// UsageOf is the usage of the subcommand args name, else main.
func (s Subcommands[R]) UsageOf(args []string, main string) string {
	if len(args) > 0 {
		if sub, ok := s[args[0]]; ok {
			return sub.Usage()
		}
	}
	return main
}

// FlagUsage is a command's usage text followed by each of its flags
// described.
func FlagUsage(text string, fs *flag.FlagSet) string {
	var b strings.Builder
	b.WriteString(text)
	fs.SetOutput(&b)
	fs.PrintDefaults()
	return b.String()
}
