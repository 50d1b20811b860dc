// Package netdb is the overlay endpoint table that nodes share over gossip.
//
// It owns the per-node replica of every endpoint (a task's attachment to an
// overlay network: IP, MAC, the VTEP of the node it runs on, its service and
// task names, aliases, the service VIP and, on the ingress network, the
// ports the service publishes), the rules that make replicas
// converge, and the change events the data plane, DNS and load balancing
// consume. It does not program the kernel and it does not decide
// allocations: the managers' Raft store stays the source of truth for IPs,
// MACs and VIPs; netdb only spreads where endpoints live and whether they
// are alive.
//
// # Model
//
// An entry is keyed by (network ID, endpoint ID) and owned by the node that
// published it. Every write carries a version from the node's Lamport clock,
// which never runs behind the wall clock in milliseconds, so a restarted node
// (whose clock restarts empty) still writes newer versions than before. A
// replica keeps, per key, the write with the highest version; ties go to a
// deletion, then to the greater owner ID, then to the greater encoded value,
// so every replica picks the same winner.
//
// Deletions are tombstones. A tombstone travels with its remaining lifetime
// (Config.TombstoneTTL when it is written) and is dropped when that runs
// out, so it cannot bounce between replicas forever.
//
// A node stores only the networks it has joined (JoinNetwork) and announces
// its joined networks to everyone. Updates for other networks are relayed
// but not stored.
//
// Ownership is authoritative: a node is the only judge of its own entries.
// If it hears of an entry it owns with a newer version than its own (for
// example one written before it restarted), it writes its own truth again
// with a newer version: its current value, or a tombstone when it no longer
// has the endpoint. When a node merges another node's full state, the
// entries of that node which the state leaves out (and which are not newer
// than the state) are stale and become tombstones.
//
// An entry is visible (returned by Endpoints, reported to subscribers) while
// it is not deleted and its owner is alive in the local gossip view. When
// gossip declares the owner dead (memberlist NotifyLeave), its entries stay
// visible for Config.DeadGrace and are then reported deleted; they come back
// if the owner comes back. Entries of owners that have been dead or unknown
// for TombstoneTTL are dropped.
//
// # Dissemination
//
//   - Incremental: every write is queued on a memberlist
//     TransmitLimitedQueue and piggybacks on gossip (Delegate.GetBroadcasts).
//     memberlist broadcasts cannot be addressed, so every node relays each
//     update once; only members of the update's network store it.
//   - Anti-entropy: memberlist's periodic push/pull carries this node's
//     full state (Delegate.LocalState / MergeRemoteState).
//   - Network join: a node that joins a network asks one member of that
//     network for its copy over a reliable stream (Transport), so it does
//     not wait for the next push/pull.
//
// Messages are protobuf wire format (google.golang.org/protobuf/encoding/protowire)
// behind a one-byte format version and a one-byte message type; see wire.go.
//
// # Wiring
//
// What the daemon calls, and when:
//
//  1. At start, before gossip: db, _ := netdb.New(netdb.Config{NodeID: id}).
//  2. Start gossip with node/gossip Config.Delegate = db.Delegate() and
//     Config.Events = db.Events(), then db.SetTransport(g).
//  3. Before gossip joins the cluster (and again for every task attached
//     later): JoinNetwork for each network with a local task (and the
//     ingress network), then Publish each local endpoint. Publishing
//     before joining gossip keeps a restarted node from briefly
//     announcing that it has no endpoints.
//  4. For each joined network, Subscribe and apply the snapshot, then
//     every event: the data plane programs other nodes' endpoints
//     (Endpoint.NodeID != id); the DNS tables take all of them, this
//     node's included.
//  5. When a task's attachment goes: Withdraw; when the last local task
//     leaves a network: LeaveNetwork (which also withdraws what is left).
//  6. At stop: leave or shut down gossip, then Close.
//
// A node sees a network's endpoints only once it has joined the network.
//
// This package must not import manager/, worker/, node/, raftstore/ or
// gRPC: it is fed through its API and memberlist's delegate interfaces.
package netdb
