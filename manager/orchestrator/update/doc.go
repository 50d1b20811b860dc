// Package update is the rolling updater: the leader-only loop that brings
// the tasks of replicated and global services to their service's current
// task spec after it changed, and rolls a failed update back.
//
// It owns:
//
//   - replacing outdated tasks — runnable tasks whose spec differs from the
//     service's (spec version and content) — slot by slot (replicated) or
//     node by node (global), at most `parallelism` slots in flight, each
//     worker waiting `delay` after a slot before taking the next one;
//   - the order of each replacement: stop-first shuts the old task down and
//     creates the new one in the same command, the new one waiting in READY
//     until the old one has stopped (its stop grace period plus 10 s at
//     most, or at once when its node is down); start-first creates the new
//     task beside the old one and shuts the old one down once the new one
//     is RUNNING;
//   - watching the new tasks: one that ends by itself before it runs or
//     within `monitor` after it started, or that is not RUNNING
//     `task_timeout` after it was made (2 min unless set), is a failure.
//     When failures exceed `max_failure_ratio` of the slots the update
//     covers, the failure action is taken: pause, continue, or roll back to
//     the previous spec (a rollback that fails pauses);
//   - the service's UpdateStatus (UPDATING, PAUSED, COMPLETED,
//     ROLLBACK_STARTED, ROLLBACK_PAUSED, ROLLBACK_COMPLETED), written with
//     the service's version so a concurrent change of the service wins;
//   - starting READY replacements whose predecessor has stopped, whatever
//     the state of the update.
//
// The replicated and global orchestrators fill vacant slots and restart
// failed tasks with the current spec; they leave tasks of older specs
// running and let the updater replace them (see restart.Replaced and
// restart.Settle). A failed new task is never replaced by the updater: it
// is the restart policy's, through those orchestrators. Jobs are never
// updated here: every change of a job starts a new run.
//
// Everything the updater decides is rebuilt from the store when it starts
// (a new leader resumes an update where the last one left it): the update
// in progress is the service's UpdateStatus and spec version; the tasks it
// made are those of the current spec version created since the status's
// started_at. Time comes from Config.Now and Config.After, task IDs from
// Config.NewID, and every write goes through Config.Proposer, many actions
// per command. Like its parent package, it must not import raft, gRPC,
// worker/, node/ or raftstore/, nor the replicated or global orchestrators.
package update
