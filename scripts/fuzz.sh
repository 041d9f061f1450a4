#!/usr/bin/env bash
# make fuzz: run every fuzz target in the module for a short budget.
#
# The targets are found, not listed: `go test -list '^Fuzz' ./...` names
# each package's Fuzz functions, so a new target is fuzzed the day it is
# written. `go test -fuzz` takes one package and one target at a time, hence
# the loop. Every target runs even after one fails; the script then exits 1
# and names the failures (the failing input is written under the package's
# testdata/fuzz/<Target>/, to be committed with the fix).
#
# Environment:
#   GO        the go command (default go)
#   FUZZTIME  budget per target, as for -fuzztime (default 10s)
#   PKGS      packages to search (default ./...)
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10s}
PKGS=${PKGS:-./...}

# -list prints the matching names of a package, then "ok <import path> <time>".
list=$("$GO" test -run '^$' -list '^Fuzz' $PKGS)
targets=$(awk '
  /^Fuzz/  { names[n++] = $1; next }
  /^ok /   { for (i = 0; i < n; i++) print $2, names[i]; n = 0 }
' <<<"$list")

if [ -z "$targets" ]; then
  echo "fuzz: no targets found in $PKGS" >&2
  exit 1
fi

failed=()
count=0
while read -r pkg name; do
  count=$((count + 1))
  echo "fuzz: $pkg $name ($FUZZTIME)"
  if ! "$GO" test "$pkg" -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME"; then
    failed+=("$pkg $name")
  fi
done <<<"$targets"

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${#failed[@]} of $count targets failed:" >&2
  printf '  %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "fuzz: $count targets passed"
