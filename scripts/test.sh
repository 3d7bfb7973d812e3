#!/usr/bin/env bash
# The test command: formatting, vet, then every package with the race
# detector.
# Store and provider-contract tests talk to real servers when they are up
# (PostgreSQL, MariaDB, Redis, NATS, stripe-mock) and skip with a message when
# they are not; set PAYMUX_REQUIRE_SERVICES=1 to make a missing server fail.
set -euo pipefail
cd "$(dirname "$0")/.."
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "gofmt -w these files:" >&2
	echo "$unformatted" >&2
	exit 1
fi
go vet ./...
go test -race -count=1 -timeout 18m "$@" ./...
