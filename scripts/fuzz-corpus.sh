#!/usr/bin/env bash
# Runs every fuzz target of a package for a while and copies what the fuzzer
# found interesting into the package's testdata/fuzz, the checked-in seed
# corpus that plain `go test` replays.
#   scripts/fuzz-corpus.sh ./providers/stripe 20s
set -euo pipefail
pkg=${1:-.}
time=${2:-15s}
cache=$(go env GOCACHE)/fuzz
modpath=$(go list "$pkg")
for target in $(go test -list 'Fuzz.*' "$pkg" | grep '^Fuzz'); do
  echo "== $target"
  go test -run XXX -fuzz "^$target\$" -fuzztime "$time" "$pkg" | tail -2
  src="$cache/$modpath/$target"
  dst="$(go list -f '{{.Dir}}' "$pkg")/testdata/fuzz/$target"
  mkdir -p "$dst"
  if [ -d "$src" ]; then
    # Keep the corpus small: the 40 smallest inputs.
    ls -S -r "$src" | head -40 | while read -r f; do cp "$src/$f" "$dst/$f"; done
  fi
done
