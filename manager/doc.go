// Package manager is the control plane of one manager node: it opens the
// Raft-replicated store, serves the cluster's gRPC services (forwarding
// them to the leader when this manager follows), authorises each call by
// the caller's certificate role, and while it leads runs the leader-only
// loops (liveness, voter reconciliation).
//
// It must not import worker/, node/, overlay/ or cmd/; the daemon wires it.
package manager
