// Package integration runs real shoal binaries as hosts in network
// namespaces and checks the cluster's behaviour end to end: formation,
// failover, partitions, trust, role changes and recovery, and services on
// overlay networks with the Docker executor (real packets between tasks,
// DNS, VIPs and the routing mesh).
//
// The tests need root, iproute2, util-linux (nsenter) and nftables; they
// start every daemon with nsenter in its own namespace and clean up after
// themselves. It must not import manager/, worker/ or raftstore/ beyond the
// API types: it tests the binary from the outside.
package integration
