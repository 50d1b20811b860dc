#!/usr/bin/env bash
# Rolling-update wall time of 12 replicas on 3 nodes (a manager and 2
# workers of real shoal daemons in network namespaces, Docker executor, no
# race detector), with parallelism 3 and 1, delay 0, monitor 1s, stop grace
# 1s, and where the time goes. Prints RESULT lines.
#   SHOAL_BENCH_ROUNDS  updates per parallelism (default 3)
set -euo pipefail
cd "$(dirname "$0")/../.."
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r), $(go version | cut -d' ' -f3), docker $(docker version --format '{{.Server.Version}}')"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
go test -tags bench -count=1 -timeout 40m -run 'TestBenchRollingUpdate$' -v ./integration/ >"$log" 2>&1 || status=$?
grep -E '^(RESULT|--- )|bench_update_test.go:[0-9]+: ' "$log" || true
if [ "$status" -ne 0 ]; then
  echo "benchmark failed; full output:" >&2
  tail -100 "$log" >&2
fi
exit "$status"
