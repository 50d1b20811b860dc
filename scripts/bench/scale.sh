#!/usr/bin/env bash
# Control-plane scale: a 3-manager cluster of real shoal daemons in network
# namespaces and one process hosting many simulated worker nodes (real
# certificates, heartbeats, assignment streams and status reports over the
# simulated executor); measures a replicated service from its creation
# until every task runs. Prints RESULT lines.
#   SHOAL_BENCH_NODES  simulated nodes (default 1000)
#   SHOAL_BENCH_TASKS  replicas (default 20000)
set -euo pipefail
cd "$(dirname "$0")/../.."
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r), $(go version | cut -d' ' -f3)"
echo "nodes=${SHOAL_BENCH_NODES:-1000} tasks=${SHOAL_BENCH_TASKS:-20000}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
go test -tags bench -count=1 -timeout 30m -run 'TestBenchControlPlaneScale$' -v ./integration/ >"$log" 2>&1 || status=$?
grep -E '^(RESULT|--- )|bench_scale_test.go:[0-9]+: ' "$log" || true
if [ "$status" -ne 0 ]; then
  echo "benchmark failed; full output:" >&2
  tail -100 "$log" >&2
fi
exit "$status"
