GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# GOVULNCHECK_FLAGS: e.g. -db file:///path/to/vulndb; scripts/vuln.sh pins govulncheck
GOVULNCHECK_FLAGS ?=
FUZZTIME ?= 10s

.PHONY: run build test test-cluster lint vuln fuzz chaos

## run: build and start a dev server (SMTP 127.0.0.1:2587, HTTP :8080, embedded Redis)
run: build
	./bin/pigeonpost serve --dev --config config/dev.yaml

## build: write bin/pigeonpost
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/pigeonpost ./cmd/pigeonpost

## test: every test, with the race detector (integration tests use redis-server when on PATH);
## with redis-server, the store's tests once more on a 3-master Redis Cluster (test-cluster)
test:
	$(GO) test -race -timeout 20m ./...
	@if command -v redis-server >/dev/null; then $(MAKE) --no-print-directory test-cluster; \
	else echo "make test: no redis-server: the Redis Cluster pass (test-cluster) skipped"; fi

## test-cluster: the store's tests on a real 3-master Redis Cluster on loopback (every key, script
## and MULTI in one slot, checked); needs redis-server
test-cluster:
	PIGEONPOST_TEST_REDIS=cluster $(GO) test -race -count=1 -timeout 10m ./pipeline/store/

## lint: gofmt, go vet, staticcheck
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## vuln: govulncheck against the Go vulnerability database (the module's deps and its Go toolchain)
vuln:
	GO="$(GO)" GOVULNCHECK_FLAGS="$(GOVULNCHECK_FLAGS)" ./scripts/vuln.sh

## chaos: the kill, restart and Redis fault tests against a real redis-server, printing the ledgers
## (acked= lost= dup= max_delay=); CHAOS_ACKS sets the length of the chaos run (default 400)
CHAOS_ACKS ?= 400
chaos:
	log=$$(mktemp); PIGEONPOST_REQUIRE_REDIS=1 PIGEONPOST_CHAOS_ACKS=$(CHAOS_ACKS) $(GO) test -count=1 \
		-run 'Ledger|Killed|RedisRefusesWrites|RedisDown|RedisRestart|PoisonMessage' -v ./cmd/pigeonpost > $$log 2>&1; \
		status=$$?; grep -E 'ledger:|^(--- |ok|FAIL)' $$log; rm -f $$log; exit $$status

## fuzz: run every fuzz target of every package for FUZZTIME each (default 10s); see scripts/fuzz.sh
fuzz:
	GO="$(GO)" FUZZTIME="$(FUZZTIME)" ./scripts/fuzz.sh

.PHONY: bench
## bench: load pigeonpost end to end on loopback (redis-server, sink, DNS; see bench/run.sh); BENCH_SHORT=1 for a short run
bench: build
	./bench/run.sh

.PHONY: scale
## scale: one gateway on one Redis beside 3 gateways on a 3+3 Redis Cluster (workload a, SCALE_DURATION
## each, default 20s), then kill -9 a gateway and a Redis master mid-run: msgs/s, CPU per message, and
## acked= delivered= lost= dup= (see bench/scale.sh; fails when an acknowledged message is lost)
scale: build
	./bench/scale.sh

.PHONY: e2e
## e2e: the real stack on loopback with every client users run (swaks, smtplib, Nodemailer, mail gem, Symfony Mailer, PHPMailer, net/smtp) and the dashboard in chromium; install them with e2e/install.sh
e2e:
	./e2e/run.sh
