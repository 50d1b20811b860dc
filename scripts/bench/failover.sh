#!/usr/bin/env bash
# Leader failover and Raft write rate on a 3-manager cluster of real shoal
# daemons in network namespaces (no race detector). Prints RESULT lines.
#   SHOAL_BENCH_KILLS   leader kills (default 7)
#   SHOAL_BENCH_SECONDS seconds per write-rate run (default 10)
set -euo pipefail
cd "$(dirname "$0")/../.."
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r), $(go version | cut -d' ' -f3)"
go test -tags bench -count=1 -timeout 30m -run 'TestBench(Failover|RaftWrites)$' -v ./integration/ 2>&1 | grep -E '^(RESULT|--- |FAIL|ok|\s+bench_test.go)' || true
