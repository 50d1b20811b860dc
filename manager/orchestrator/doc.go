// Package orchestrator holds what the managers' orchestration loops share:
// their configuration, how a task is made from a service, the task and node
// predicates of the Swarm task model, batched writes through the store's
// Proposer, and the event loop every component runs.
//
// The loops live in subpackages, one concern each:
//
//	replicated          replicated services: one runnable task per slot
//	global              global services: one runnable task per eligible node
//	jobs                replicated and global jobs: tasks run to completion
//	restart             the restart supervisor those three share
//	update              rolling updates and rollbacks of replicated and
//	                    global services
//	taskreaper          task history retention; tasks of removed services
//	constraintenforcer  tasks whose node no longer fits them
//
// Every loop runs only on the leader. It reads the store (manager/store),
// subscribes to its events, reconciles what changed in batches, and writes
// only through a store.Proposer, many tasks per command. Decisions depend
// only on the store, the events seen and the clock: time comes from
// Config.Now and Config.After, task IDs from Config.NewID. Propose must return once the
// command is applied to the local store, so the next pass reads its result.
//
// Wiring: when a manager becomes leader it builds one Config and runs
// replicated.New(cfg).Run, global.New(cfg).Run, jobs.New(cfg).Run,
// taskreaper.New(cfg).Run, constraintenforcer.New(cfg).Run and
// update.New(cfg).Run under one context, cancelled when it stops leading.
// Each starts with a full pass, so nothing is carried over between terms
// but the store.
//
// Task states: a new task starts with desired state RUNNING and observed
// state PENDING, or NEW when its spec joins networks or publishes ports:
// the network allocator (manager/allocator) then gives it its attachments
// and moves it to PENDING. The scheduler assigns PENDING tasks to nodes
// (global tasks are created with their node set; the scheduler checks it
// still fits).
//
// Start-up order: a service whose spec depends on other services (compose's
// depends_on) gets its first tasks only once they are ready
// (DependencyReady); replicated, global and jobs hold it back through a
// DependencyGate, which has it reconciled again on any change that may
// make a dependency ready. A service that has tasks is never held back.
//
// This package and its subpackages must not import raft, gRPC, worker/,
// node/ or raftstore/: they are tested on a store with no replication.
package orchestrator
