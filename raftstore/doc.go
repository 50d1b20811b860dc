// Package raftstore owns Shoal's Raft consensus layer: it wires
// github.com/hashicorp/raft to durable storage (a raft-boltdb log and stable
// store with fsync enabled, plus a file snapshot store), adapts an
// application StateMachine to raft's FSM interfaces, and exposes the small
// set of operations managers need: proposing commands (Apply), observing and
// verifying leadership, managing voters, forcing a new single-node cluster
// after quorum loss, and an in-memory cluster kit for tests.
//
// The replicated state itself is defined elsewhere; raftstore only sees it
// through the StateMachine interface and treats commands and snapshots as
// opaque bytes. The network transport is supplied by the caller (production
// builds one with NewNetworkTransport over a TLS stream layer).
//
// Dependency rule: this package sits below the rest of the daemon. It must
// not import manager/, worker/, node/, overlay/, gRPC or generated proto
// packages; those layers depend on raftstore, never the other way round.
//
// # Files on disk
//
// A node keeps everything under Config.Dir:
//
//	<Dir>/raft.db      bbolt database holding the raft log and stable store
//	<Dir>/snapshots/   file snapshot store (Config.RetainSnapshots kept)
//
// raftstore never deletes or rewrites raft.db on its own; a database that
// cannot be opened or read is reported as an error naming the file.
//
// # Snapshot format
//
// Snapshots written through this package start with a 16-byte header (an
// 8-byte magic string followed by the big-endian index of the last command
// applied to the state machine) and continue with whatever the
// StateMachine's snapshot writer produced. The header lets AppliedIndex and
// WaitApplied stay accurate across restores.
package raftstore
