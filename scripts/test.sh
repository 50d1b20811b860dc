#!/usr/bin/env bash
# The whole test suite: generated code, formatting, vet, and every test
# (unit and multi-host integration) under the race detector. Needs root
# (integration tests make network namespaces), protoc, iproute2, nftables.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/check-generated.sh

unformatted=$(gofmt -l $(git ls-files '*.go' | grep -v '\.pb\.go$'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi

go vet ./...

go test -race -count=1 -timeout 30m ./... "$@"
