package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/pigeonpost/pigeonpost/config"
	"github.com/pigeonpost/pigeonpost/internal/redisclient"
	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/account"
	"github.com/pigeonpost/pigeonpost/pipeline/deliver"
	"github.com/pigeonpost/pigeonpost/pipeline/reputation"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// admin runs the accounts, keys and domains subcommands against the
// server's Redis.
func admin(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	cfgPath := fs.String("config", "", "YAML configuration file")
	accountName := fs.String("account", "default", "account name")
	name := fs.String("name", "", "key name")
	mode := fs.String("mode", store.ModeLive, "key mode: live or test")
	permission := fs.String("permission", store.PermissionFull, "key permission: full or sending")
	test := fs.Bool("test", false, "accounts create: make the first key a test-mode key")
	if len(args) < 2 {
		return errUsage
	}
	verb := args[1]
	if err := fs.Parse(args[2:]); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath, getenv)
	if err != nil {
		return err
	}
	if cfg.Redis.URL == "" && len(cfg.Redis.Addrs) == 0 {
		return errors.New("redis.url is empty: the embedded Redis lives inside the serve process; set redis.url (or PIGEONPOST_REDIS_URL) to the server's Redis")
	}
	rdb, err := redisclient.Open(cfg.Redis)
	if err != nil {
		return err
	}
	defer rdb.Close()
	st := store.New(rdb, time.Now)
	st.SetShards(cfg.Redis.Shards)
	quiet := slog.New(slog.DiscardHandler)
	// The pipeline is here only to tell running servers about the changes
	// made (a verified domain), as the REST API would.
	changes := pipeline.New(st, nil, pipeline.Options{Hostname: cfg.SMTP.Hostname, Logger: quiet})
	svc := account.New(st, changes, account.Options{
		DKIMSelector: cfg.Domains.DKIMSelector, SPFInclude: cfg.Domains.SPFInclude,
		Resolver: &deliver.Resolver{Addr: cfg.DNS.Resolver, Timeout: 5 * time.Second},
	})
	// An operator acts as a full-permission key of the named account.
	operator := func() (*store.Key, error) {
		id, err := st.AccountByName(ctx, *accountName)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("no account named %q", *accountName)
		}
		return &store.Key{AccountID: id, Permission: store.PermissionFull, Mode: store.ModeLive}, err
	}

	switch args[0] + " " + verb {
	case "accounts create":
		if fs.NArg() != 1 {
			return errors.New("usage: pigeonpost accounts create NAME [--test]")
		}
		m := store.ModeLive
		if *test {
			m = store.ModeTest
		}
		_, secret, err := svc.CreateAccount(ctx, fs.Arg(0), m)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "account %s created; its first API key (shown once):\n%s\n", fs.Arg(0), secret)
		return nil
	case "accounts limit":
		if fs.NArg() != 2 {
			return errors.New("usage: pigeonpost accounts limit NAME EMAILS_PER_MONTH (0: limits.monthly_emails)")
		}
		id, err := svc.AccountID(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		n, err := strconv.ParseInt(fs.Arg(1), 10, 64)
		if err != nil {
			return fmt.Errorf("EMAILS_PER_MONTH: %q is not a number", fs.Arg(1))
		}
		if err := svc.SetMonthlyLimit(ctx, id, n); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "account %s: monthly limit %d\n", fs.Arg(0), n)
		return nil
	case "accounts pause", "accounts resume", "accounts reputation":
		if fs.NArg() != 1 {
			return fmt.Errorf("usage: pigeonpost accounts %s NAME", verb)
		}
		id, err := svc.AccountID(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		guard := reputation.New(st, reputationOptions(cfg, quiet))
		changed := false
		switch verb {
		case "pause":
			if changed, err = guard.Pause(ctx, id); err == nil && !changed {
				fmt.Fprintf(stdout, "account %s was paused already\n", fs.Arg(0))
			}
		case "resume":
			if changed, err = guard.Resume(ctx, id); err == nil && !changed {
				fmt.Fprintf(stdout, "account %s was not paused\n", fs.Arg(0))
			}
		}
		if err != nil {
			return err
		}
		state, err := guard.State(ctx, id)
		if err != nil {
			return err
		}
		printReputation(stdout, fs.Arg(0), state)
		return nil
	case "keys create":
		op, err := operator()
		if err != nil {
			return err
		}
		_, secret, err := svc.CreateKey(ctx, op, account.KeyRequest{Name: *name, Mode: *mode, Permission: *permission})
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, secret)
		return nil
	case "domains add", "domains verify":
		op, err := operator()
		if err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return fmt.Errorf("usage: pigeonpost domains %s --account NAME DOMAIN", verb)
		}
		d, err := st.DomainByName(ctx, op.AccountID, fs.Arg(0))
		if verb == "add" || errors.Is(err, store.ErrNotFound) {
			if verb == "verify" {
				return fmt.Errorf("no domain %q in account %q", fs.Arg(0), *accountName)
			}
			if d, err = svc.AddDomain(ctx, op, fs.Arg(0)); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		if verb == "verify" {
			if d, err = svc.VerifyDomain(ctx, op, d.ID); err != nil {
				return err
			}
		}
		printDomain(stdout, d)
		return nil
	case "domains list":
		op, err := operator()
		if err != nil {
			return err
		}
		ds, err := svc.Domains(ctx, op)
		if err != nil {
			return err
		}
		for _, d := range ds {
			printDomain(stdout, d)
		}
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", args[0]+" "+verb, usage)
}

func printDomain(w io.Writer, d *store.Domain) {
	fmt.Fprintf(w, "%s  %s  %s\n", d.ID, d.Name, d.Status)
	for _, r := range d.DNSRecords {
		fmt.Fprintf(w, "  %-4s %-45s %-9s %s\n", r.Type, r.Name, r.Status, r.Value)
	}
}

// printReputation writes an account's reputation as the CLI shows it.
func printReputation(w io.Writer, name string, s *reputation.State) {
	if p := s.Pause; p != nil {
		fmt.Fprintf(w, "account %s: paused since %s (%s)", name, p.At.Format(time.RFC3339), p.Reason)
		if p.Reason != reputation.ReasonManual {
			fmt.Fprintf(w, ": %s", reputation.NewWindow(p.Figures, p.Hours))
		}
		fmt.Fprintf(w, "; %d emails held back\n", s.Held)
	} else {
		fmt.Fprintf(w, "account %s: sending\n", name)
	}
	fmt.Fprintf(w, "last %s\n", s.Window)
}
