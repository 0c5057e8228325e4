#!/usr/bin/env bash
# Runs every Go fuzz target of the module for $FUZZTIME each (go test -fuzz
# takes one target at a time). A crash fails the run and leaves the input
# under the package's testdata/fuzz for `go test` to replay.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-4s}
status=0
for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
    echo "fuzz $pkg $target ($fuzztime)"
    if ! go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg" >/tmp/deploybot-fuzz.log 2>&1; then
      cat /tmp/deploybot-fuzz.log
      status=1
    fi
  done
done
exit $status
