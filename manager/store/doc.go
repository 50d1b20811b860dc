// Package store owns the managers' in-memory cluster state: a go-memdb
// database of cluster objects, the deterministic application of replicated
// commands to it, snapshots of it, and change events for the components that
// react to it.
//
// The store is fed by whatever replicates commands (raftstore in production,
// a LocalProposer in tests); it must not import raft, gRPC or anything under
// worker/, node/ or cmd/. Apply is deterministic: it never reads the clock,
// random numbers or the network — IDs and timestamps arrive in the command.
//
// Objects handed out by the store are shared and must be treated as
// read-only; clone them (proto.Clone) before changing anything.
package store
