// Package scheduler owns task placement: given a snapshot of the nodes
// (each with the tasks already on it) and the pending tasks, it decides
// which node each task runs on, or explains, in docker's words, why no
// node can take it.
//
// A node is a candidate for a task when it passes, in order: readiness
// (status READY and availability ACTIVE), the task's placement constraints,
// its CPU and memory reservations, the per-node replica limit of its
// service, and its host ports. Among the candidates the scheduler spreads
// by the service's placement preferences, then picks the node with the
// fewest active tasks of the service, then the fewest active tasks in
// total, then the lowest node ID, so the outcome is deterministic.
//
// The package is pure: it sees only what it is passed and returns
// decisions; it never writes them anywhere. It must not import gRPC,
// raft, manager/store, raftstore or worker/, does no I/O and never reads a
// clock.
package scheduler
