#!/usr/bin/env bash
# make vuln: govulncheck over the module and its Go toolchain.
#
# govulncheck reads its database from vuln.go.dev. Where that site cannot be
# reached (a sandbox that reaches only the Go module proxy), the database is
# built from the golang.org/x/vulndb module, fetched through the proxy: the
# OSV entries the site is published from, indexed by that module's own
# cmd/indexdb. A finding (exit 3) fails at once; only a failure to read the
# database leads to the fallback. GOVULNCHECK_FLAGS (e.g. -db file:///path)
# skips both.
set -euo pipefail
GO=${GO:-go}
tool=golang.org/x/vuln/cmd/govulncheck@v1.10.0

# Installed, not `go run`: go run exits 1 whatever the tool's status, and
# the status tells a finding (3) from an unreadable database (1).
bin=$(mktemp -d "${TMPDIR:-/tmp}/govulncheck.XXXXXX")
db=
trap 'rm -rf "$bin" ${db:+"$db"}' EXIT
GOBIN=$bin "$GO" install "$tool"

if [ -n "${GOVULNCHECK_FLAGS:-}" ]; then
  # shellcheck disable=SC2086 # the flags are words
  "$bin/govulncheck" $GOVULNCHECK_FLAGS ./...
  exit
fi

rc=0
"$bin/govulncheck" ./... || rc=$?
if [ "$rc" -ne 1 ]; then
  exit "$rc" # 0: clean; 3: vulnerabilities found
fi

echo "vuln: vuln.go.dev unreachable; building the database from golang.org/x/vulndb through the module proxy" >&2
info=$("$GO" mod download -json golang.org/x/vulndb@latest)
dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p' <<<"$info")
version=$(sed -n 's/^[[:space:]]*"Version": "\(.*\)",*$/\1/p' <<<"$info")
db=$(mktemp -d "${TMPDIR:-/tmp}/vulndb.XXXXXX")
"$GO" run "golang.org/x/vulndb/cmd/indexdb@$version" -vulns "$dir/data/osv" -out "$db"
echo "vuln: database golang.org/x/vulndb@$version" >&2
"$bin/govulncheck" -db "file://$db" ./...
