// Command pigeonpost is the SMTP relay gateway. This package is wiring only:
// configuration in, components out. Subcommands: serve, deliver, accounts, keys, domains.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/pigeonpost/pigeonpost/config"
)

// version is set with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "pigeonpost:", err)
		os.Exit(1)
	}
}

const usage = `usage: pigeonpost <command> [flags]

commands:
  serve     [--config FILE] [--dev] [--ready-file FILE]  run the gateway
  deliver   [--config FILE] [--ready-file FILE]          deliver what other processes queued: delivery and
                                                         webhook workers, /healthz and /metrics; no SMTP or REST
  accounts  create NAME [--test]                          create an account, print its first key
  accounts  limit NAME EMAILS_PER_MONTH                   set its monthly limit (0: limits.monthly_emails)
  accounts  reputation NAME                               show its bounce and complaint rates, and any pause
  accounts  pause NAME | resume NAME                      pause its sending, or lift a pause (queued mail resumes)
  keys      create --account NAME --name NAME [--mode live|test] [--permission full|sending]
  domains   add|list|verify --account NAME [DOMAIN]
  version

Every command reads --config FILE and PIGEONPOST_* environment variables.`

// errUsage is printed as is: the usage text ends with a sentence.
var errUsage = errors.New(strings.TrimSuffix(usage, "."))

func run(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		return errUsage
	}
	switch args[0] {
	case "serve", "deliver":
		fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
		cfgPath := fs.String("config", "", "YAML configuration file")
		dev := new(bool)
		if args[0] == "serve" {
			dev = fs.Bool("dev", false, "create a test key and print a ready-to-paste swaks command")
		}
		readyFile := fs.String("ready-file", "", "write the bound addresses to this file once listening")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		cfg, err := config.Load(*cfgPath, getenv)
		if err != nil {
			return err
		}
		logger := newLogger(cfg.Log, os.Stderr)
		redis.SetLogger(redisLogger{logger})
		return serve(ctx, cfg, logger, serveOptions{dev: *dev, readyFile: *readyFile, stdout: stdout, deliverOnly: args[0] == "deliver"})
	case "accounts", "keys", "domains":
		return admin(ctx, args, stdout, getenv)
	case "version":
		fmt.Fprintln(stdout, "pigeonpost", version)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", args[0], usage)
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// redisLogger sends go-redis's own messages (reconnects) to slog.
type redisLogger struct{ l *slog.Logger }

func (r redisLogger) Printf(_ context.Context, format string, v ...any) {
	r.l.Warn("redis client: " + fmt.Sprintf(format, v...))
}
