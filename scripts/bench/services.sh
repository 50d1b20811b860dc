#!/usr/bin/env bash
# Rescheduling after a node's death (a worker, and the leader) and service
# convergence against the `docker run` floor, on clusters of real shoal
# daemons in network namespaces with the Docker executor (no race
# detector). Prints RESULT lines.
#   SHOAL_BENCH_ROUNDS  kills per case (default 3)
set -euo pipefail
cd "$(dirname "$0")/../.."
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r), $(go version | cut -d' ' -f3), docker $(docker version --format '{{.Server.Version}}')"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
go test -tags bench -count=1 -timeout 40m -run 'TestBench(Reschedule|Convergence)$' -v ./integration/ >"$log" 2>&1 || status=$?
grep -E '^(RESULT|--- )|bench_services_test.go:[0-9]+: ' "$log" || true
if [ "$status" -ne 0 ]; then
  echo "benchmark failed; full output:" >&2
  tail -100 "$log" >&2
fi
exit "$status"
