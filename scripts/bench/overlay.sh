#!/usr/bin/env bash
# Overlay control-plane latencies on three real shoal daemons in network
# namespaces with the Docker executor (no race detector): from a scale-up
# to the new task's first answer through the service VIP, from a
# scale-down to the removed task's last answer, and from a node's death
# (kill -9) to its task's address leaving DNS answers everywhere. Prints
# RESULT lines. The data plane's throughput is measured by
# `go test -tags bench -run TestBenchDataPlane ./overlay/`.
#   SHOAL_BENCH_ROUNDS  rounds per measurement (default 5)
set -euo pipefail
cd "$(dirname "$0")/../.."
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r), $(go version | cut -d' ' -f3), docker $(docker version --format '{{.Server.Version}}')"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
go test -tags bench -count=1 -timeout 30m -run 'TestBenchOverlay$' -v ./integration/ >"$log" 2>&1 || status=$?
grep -E '^(RESULT|--- )|bench_overlay_test.go:[0-9]+: ' "$log" || true
if [ "$status" -ne 0 ]; then
  echo "benchmark failed; full output:" >&2
  tail -100 "$log" >&2
fi
exit "$status"
