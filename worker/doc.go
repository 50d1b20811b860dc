// Package worker is the node agent: it keeps the node's session with the
// managers (heartbeats to the leader, failing over between managers) and
// reports what the managers want of the node. Task execution lives beside it
// in worker/exec.
//
// It must not import manager/, raftstore/ or node/.
package worker
