// Package exec owns the worker's view of task execution: the Executor and
// Controller interfaces a runtime implements, the optional interfaces for
// logs, container status and health, the errors shared by every runtime, and
// Do, the generic state machine that moves a task towards its desired state
// through a Controller.
//
// Runtimes live in sub-packages: exec/docker runs tasks as Docker Engine
// containers, exec/sim simulates them in memory for tests and benchmarks.
//
// It must not import manager/, raftstore/ or node/.
package exec
