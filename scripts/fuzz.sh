#!/usr/bin/env bash
# make fuzz: run every fuzz target in the module for a short budget.
#
# The targets are found, not listed: every `func FuzzX(f *testing.F)` of
# every package's test files, so a new target is fuzzed the day it is
# written. `go test -fuzz` takes one package and one target at a time, hence
# the loop. Every target runs even after one fails; the script then exits 1
# and names the failures (the failing input is written under the package's
# testdata/fuzz/<Target>/, to be committed with the fix, and printed).
# The corpus a run grows goes to the Go build cache (go env GOCACHE), not
# into the tree: a passing run leaves `git status` clean.
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

# Each package's fuzz targets, found in its test files: `go test -list`
# would say the same but compiles every test binary first, a minute or two
# of a short CI budget.
targets=$("$GO" list -f '{{.ImportPath}} {{.Dir}}' $PKGS | while read -r pkg dir; do
  for f in "$dir"/*_test.go; do
    [ -e "$f" ] || continue
    sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)([A-Za-z_]* \*testing\.F).*/\1/p' "$f" | sed "s|^|$pkg |"
  done
done)

if [ -z "$targets" ]; then
  echo "fuzz: no targets found in $PKGS" >&2
  exit 1
fi

# fuzz_one runs one target and says whether it failed. Go 1.26's fuzzing
# coordinator can fail a target at the -fuzztime deadline with a bare
# "context deadline exceeded" and no input written (go.dev/issue/75804,
# fixed in Go 1.27): such a run, and only such a run, is tried once more.
# A run that writes a failing input fails at once.
fuzz_one() {
  local pkg=$1 name=$2 log
  log=$(mktemp)
  for try in 1 2; do
    local before after
    before=$(git status --porcelain --untracked-files=all -- '*testdata/fuzz/*')
    if "$GO" test "$pkg" -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" 2>&1 | tee "$log"; [ "${PIPESTATUS[0]}" -eq 0 ]; then
      rm -f "$log"
      return 0
    fi
    after=$(git status --porcelain --untracked-files=all -- '*testdata/fuzz/*')
    if [ "$try" -eq 2 ] || [ "$before" != "$after" ] || ! grep -q '^    context deadline exceeded$' "$log"; then
      break
    fi
    echo "fuzz: $name failed with no input at the deadline (go.dev/issue/75804): once more"
  done
  rm -f "$log"
  return 1
}

failed=()
count=0
while read -r pkg name; do
  count=$((count + 1))
  echo "fuzz: $pkg $name ($FUZZTIME)"
  if ! fuzz_one "$pkg" "$name"; then
    failed+=("$pkg $name")
  fi
done <<<"$targets"

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${#failed[@]} of $count targets failed:" >&2
  printf '  %s\n' "${failed[@]}" >&2
  # The failing inputs, new files under testdata/fuzz/, are printed too:
  # where the run leaves no tree behind (CI), the log is all there is.
  git status --porcelain --untracked-files=all -- '*testdata/fuzz/*' | sed -n 's/^?? //p' | while read -r f; do
    echo "fuzz: failing input $f:" >&2
    head -c 4096 "$f" >&2
    echo >&2
  done
  exit 1
fi
echo "fuzz: $count targets passed"
