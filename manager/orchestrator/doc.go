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
// taskreaper.New(cfg).Run and constraintenforcer.New(cfg).Run under one
// context, cancelled when it stops leading. Each starts with a full pass,
// so nothing is carried over between terms but the store.
//
// Task states: a new task starts with observed state PENDING and desired
// state RUNNING. NEW is reserved for a network allocator that does not exist
// yet; once it does, tasks will start NEW and the allocator will move them
// to PENDING. The scheduler assigns PENDING tasks to nodes (global tasks are
// created with their node set; the scheduler checks it still fits).
//
// This package and its subpackages must not import raft, gRPC, worker/,
// node/ or raftstore/: they are tested on a store with no replication.
package orchestrator
