package main

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/pigeonpost/pigeonpost/internal/testkit/smtpsink"
)

// The sink accepts and discards messages while counting them: the downstream
// relay of `make bench`, and a ceiling target (-starttls -user -pass) that
// costs next to nothing per message. Its stats file has the format of
// /work/shared/bench/sink's, so -sink-stats reads either.

type sinkOptions struct {
	addr, addrFile, statsFile string
	starttls                  bool
	user, pass                string
	cert, key                 string
	ledger                    string // -ledger: the ledger sink, which records each message's id
}

// sinkServer is what runSink needs of a sink: smtpsink's, or the ledger sink.
type sinkServer interface {
	Addr() string
	Stats() smtpsink.Stats
	Errors() <-chan error
	Shutdown(ctx context.Context) error
}

// snapshot is the stats file's content.
func snapshot(st smtpsink.Stats, start time.Time) map[string]any {
	return map[string]any{
		"name": "smtpload-sink", "pid": os.Getpid(), "uptime_s": time.Since(start).Seconds(),
		"connections": st.Connections, "sessions": st.Sessions,
		"messages": st.Messages, "bytes": st.Bytes, "rcpts": st.Rcpts,
		"auth_ok": st.AuthOK, "auth_fail": st.AuthFail,
		"mail_rejected_unauthenticated": st.Rejected, "data_errors": st.DataErrors,
	}
}

// writeFileAtomic writes b to path through a rename, so readers never see a
// partial file.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// newSink starts a sink: the shared one (internal/testkit/smtpsink) in
// discard mode, which keeps nothing and takes no lock per message.
func newSink(opt sinkOptions) (*smtpsink.Server, error) {
	o := smtpsink.Options{
		Addr: opt.addr, Domain: "sink.bench.test", MaxRecipients: 1000, Discard: true,
		TLS: opt.starttls, CertValidity: 365 * 24 * time.Hour,
	}
	if opt.starttls && opt.cert != "" {
		cert, err := tls.LoadX509KeyPair(opt.cert, opt.key)
		if err != nil {
			return nil, err
		}
		o.Cert = &cert
	}
	if opt.user != "" {
		o.Auth = func(username, password string) bool {
			return username == opt.user && subtle.ConstantTimeCompare([]byte(password), []byte(opt.pass)) == 1
		}
		o.AuthRequired = true
	}
	return smtpsink.Start(o)
}

// runSink serves until SIGTERM or SIGINT, then prints its totals.
func runSink(opt sinkOptions) error {
	var srv sinkServer
	var ledger *ledgerSink
	var err error
	if opt.ledger != "" {
		if opt.starttls || opt.user != "" {
			return errors.New("-ledger takes neither -starttls nor -user")
		}
		ledger, err = startLedgerSink(opt.addr, opt.ledger)
		srv = ledger
	} else {
		srv, err = newSink(opt)
	}
	if err != nil {
		return err
	}
	start := time.Now()
	writeStats := func() {
		if ledger != nil {
			_ = ledger.Flush() // the ledger first: it never lags the count
		}
		if opt.statsFile != "" {
			b, _ := json.Marshal(snapshot(srv.Stats(), start))
			_ = writeFileAtomic(opt.statsFile, append(b, '\n'))
		}
	}
	writeStats()
	if opt.addrFile != "" {
		if err := writeFileAtomic(opt.addrFile, []byte(srv.Addr()+"\n")); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "smtpload sink: pid %d listening on %s starttls=%v auth=%v\n", os.Getpid(), srv.Addr(), opt.starttls, opt.user != "")

	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			writeStats()
		case err := <-srv.Errors():
			if errors.Is(err, smtp.ErrServerClosed) {
				return nil
			}
			return err
		case <-sig:
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = srv.Shutdown(ctx) // closes the sink, also when ctx ends first
			cancel()
			writeStats()
			b, _ := json.Marshal(snapshot(srv.Stats(), start))
			fmt.Fprintf(os.Stderr, "smtpload sink totals %s\n", b)
			return nil
		}
	}
}
