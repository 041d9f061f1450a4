package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
	"testing"
)

// BenchmarkServeProfile runs the real `pigeonpost serve` in the test binary
// so that the server can be profiled with the test flags while an external
// load generator drives it (or set http.admin_listen for net/http/pprof). It is
// skipped unless PIGEONPOST_PROFILE_CONFIG names a configuration file; it
// serves until SIGTERM or SIGINT, then the profiles are written. bench/run.sh
// does all of this with BENCH_PROFILE=DIR:
//
//	go test -c -o pigeonpost.test ./cmd/pigeonpost
//	PIGEONPOST_PROFILE_CONFIG=bench.yaml PIGEONPOST_PROFILE_READY=ready.json \
//	  ./pigeonpost.test -test.run '^$' -test.bench BenchmarkServeProfile -test.benchtime 1x \
//	  -test.cpuprofile cpu.pprof -test.memprofile mem.pprof
//	# … run cmd/smtpload against it, then kill -TERM its PID
//	go tool pprof -top pigeonpost.test cpu.pprof
func BenchmarkServeProfile(b *testing.B) {
	cfg := os.Getenv("PIGEONPOST_PROFILE_CONFIG")
	if cfg == "" {
		b.Skip("PIGEONPOST_PROFILE_CONFIG is not set: nothing to profile (see bench/run.sh, BENCH_PROFILE)")
	}
	args := []string{"serve", "--config", cfg}
	if ready := os.Getenv("PIGEONPOST_PROFILE_READY"); ready != "" {
		args = append(args, "--ready-file", ready)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	for b.Loop() {
		if err := run(ctx, args, io.Discard, os.Getenv); err != nil {
			b.Fatal(err)
		}
		if ctx.Err() != nil {
			break // stopped: do not serve again
		}
	}
}
