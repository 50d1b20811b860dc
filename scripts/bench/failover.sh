#!/usr/bin/env bash
# Leader failover (Shoal's default Raft timing against hashicorp/raft's
# default 1 s timing, in the same run) and the Raft write rate with 1 and 64
# clients, on 3-manager clusters of real shoal daemons in network
# namespaces, built without the race detector. Prints RESULT lines.
#   SHOAL_BENCH_KILLS   leader kills per timing (default 7)
#   SHOAL_BENCH_SECONDS seconds per write-rate run (default 10)
set -euo pipefail
cd "$(dirname "$0")/../.."
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r), $(go version | cut -d' ' -f3)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
go test -tags bench -count=1 -timeout 40m -run 'TestBench(Failover|RaftWrites)$' -v ./integration/ >"$log" 2>&1 || status=$?
grep -E '^(RESULT|--- )|bench_test.go:[0-9]+: ' "$log" || true
if [ "$status" -ne 0 ]; then
  echo "benchmark failed; full output:" >&2
  tail -100 "$log" >&2
fi
exit "$status"
