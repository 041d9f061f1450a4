#!/usr/bin/env bash
# make e2e: prove pigeonpost with the clients users run.
#
# Builds bin/pigeonpost, the e2e driver, the net/smtp client and the Go
# webhook signature check, then runs the driver, which starts redis-server
# (unix socket, appendonly), a loopback DNS server, a downstream SMTP sink and
# `pigeonpost serve` on 127.0.0.1, verifies a sending domain through the REST
# API and sends with every client in e2e/clients (curl drives the sends API),
# then runs the signature checks of docs/webhooks on a webhook the gateway
# sent. One line per client and check, then "N passed, M failed".
# Exit status non-zero on any failure. Install the clients with e2e/install.sh.
#
#   e2e/run.sh [--only NAME]     e.g. --only nodemailer
#   E2E_PIGEONPOST=/path/to/pigeonpost e2e/run.sh   test that binary instead of building bin/pigeonpost
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in go make; do
  command -v "$tool" >/dev/null || { echo "FAIL setup: $tool is not on PATH"; echo "0 passed, 1 failed"; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pigeonpost-e2e.XXXXXX")
driver_pid=
status=1

# Everything the driver starts (redis-server, pigeonpost, each client) is in
# its process group: whatever happens, nothing outlives this script.
cleanup() {
  trap - EXIT INT TERM
  if [ -n "$driver_pid" ]; then
    if kill -0 "$driver_pid" 2>/dev/null; then
      kill -TERM -- "-$driver_pid" 2>/dev/null || true   # the driver stops its servers cleanly
      for _ in $(seq 1 300); do kill -0 "$driver_pid" 2>/dev/null || break; sleep 0.1; done
    fi
    kill -KILL -- "-$driver_pid" 2>/dev/null || true     # anything left in the group
  fi
  if [ "$status" = 0 ] || [ ! -d "$tmp/run" ]; then
    rm -rf "$tmp"
  else
    rm -rf "$tmp/bin" # keep the logs, transcripts and mail of a failed run
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'status=130; cleanup' INT
trap 'status=143; cleanup' TERM

build() {
  "$@" || { echo "FAIL setup: $* failed"; echo "0 passed, 1 failed"; exit 1; }
}
pigeonpost=${E2E_PIGEONPOST:-bin/pigeonpost}
[ -n "${E2E_PIGEONPOST:-}" ] || build make --no-print-directory build
build go build -o "$tmp/bin/e2e-driver" ./e2e/driver
build go build -o "$tmp/bin/netsmtp" ./e2e/clients
build go build -o "$tmp/bin/verify-go" ./docs/webhooks

set -m # the driver gets a process group of its own (its pid), for cleanup
"$tmp/bin/e2e-driver" --root . --pigeonpost "$pigeonpost" --netsmtp "$tmp/bin/netsmtp" --verifygo "$tmp/bin/verify-go" --work "$tmp/run" "$@" &
driver_pid=$!
set +m
set +e
wait "$driver_pid"
status=$?
set -e
