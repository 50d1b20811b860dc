// Package restart is the restart supervisor the replicated, global and job
// orchestrators share. It decides, for a slot (a replica number, or a node
// for global modes) whose task has stopped, whether a replacement is made
// and when it may start, following the task's restart policy; it counts
// restarts per slot for max_attempts; and it raises delayed replacements
// from READY to RUNNING when their delay has passed.
//
// The supervisor holds no goroutine and writes nothing itself: the
// orchestrator that owns a service calls it during its own pass and
// commits what it queued. Like its parent package, it must not import
// raft, gRPC, worker/, node/ or raftstore/.
package restart

import (
	"time"

	"github.com/shoal-project/shoal/manager/orchestrator"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// DefaultDelay is the restart delay when a policy sets none.
const DefaultDelay = 5 * time.Second

// Cause is why a task stopped, or must be stopped.
type Cause int

// Causes.
const (
	// CauseNone: the task is fine.
	CauseNone Cause = iota
	// CauseExited: the task stopped by itself (completed, failed,
	// rejected, orphaned, or shut down while still wanted). The restart
	// policy decides, after its delay.
	CauseExited
	// CauseNodeLost: the task's node is DOWN or gone. This counts as a
	// failure; the policy decides, with no delay.
	CauseNodeLost
	// CauseEvicted: the task was stopped while healthy — its node was
	// drained, it no longer fits its node, or another writer shut it
	// down. It is replaced at once, whatever the policy, and the
	// replacement is not a restart attempt.
	CauseEvicted
)

func (c Cause) String() string {
	switch c {
	case CauseNone:
		return "none"
	case CauseExited:
		return "exited"
	case CauseNodeLost:
		return "node lost"
	case CauseEvicted:
		return "evicted"
	}
	return "unknown"
}

// Check returns why a runnable task t must be stopped, given its node n
// (nil when the node is gone). A drained node evicts its tasks; global
// orchestrators check drained nodes themselves before asking.
func Check(t *shoalpb.Task, n *shoalpb.Node) Cause {
	switch {
	case orchestrator.HasStopped(t):
		return CauseExited
	case t.GetNodeId() == "":
		return CauseNone
	case orchestrator.IsDown(n):
		return CauseNodeLost
	case orchestrator.IsDrained(n):
		return CauseEvicted
	}
	return CauseNone
}

// StoppedCause infers why a task the managers no longer want running had
// been stopped, from what the store still shows of it: it ended by itself,
// its node was lost before it could report, or it was asked to stop.
func StoppedCause(t *shoalpb.Task, n *shoalpb.Node) Cause {
	switch {
	case orchestrator.EndedByItself(t):
		return CauseExited
	case !orchestrator.HasStopped(t) && t.GetNodeId() != "" && orchestrator.IsDown(n):
		return CauseNodeLost
	}
	return CauseEvicted
}

// Delay returns the restart delay of policy p.
func Delay(p *shoalpb.RestartPolicy) time.Duration {
	if p == nil || p.DelayNs == nil {
		return DefaultDelay
	}
	return time.Duration(max(0, *p.DelayNs))
}

// SlotKey names a slot: a replica number of a service (replicated modes),
// or a node (global modes).
type SlotKey struct {
	ServiceID string
	Slot      uint64
	NodeID    string
}

// KeyOf returns the slot t belongs to.
func KeyOf(t *shoalpb.Task) SlotKey {
	if t.GetSlot() != 0 {
		return SlotKey{ServiceID: t.GetServiceId(), Slot: t.Slot}
	}
	return SlotKey{ServiceID: t.GetServiceId(), NodeID: t.GetNodeId()}
}

// generation identifies one version of a service: a restart history and
// a decision to give up on a slot hold only within it.
type generation struct{ spec, iteration uint64 }

func serviceGen(svc *shoalpb.Service) generation {
	g := generation{spec: svc.GetSpecVersion()}
	if orchestrator.ModeOf(svc).IsJob() {
		g.iteration = orchestrator.JobIteration(svc)
	}
	return g
}

func taskGen(t *shoalpb.Task, job bool) generation {
	g := generation{spec: t.GetSpecVersion()}
	if job {
		g.iteration = t.GetJobIteration()
	}
	return g
}

// Action is what to do with a slot that has no runnable task.
type Action int

// Actions.
const (
	// Fill: make a fresh task, to run at once. Not a restart attempt.
	Fill Action = iota
	// Restart: make a replacement per the restart policy; it waits in
	// READY for Decision.Delay, and counts as an attempt.
	Restart
	// Hold: leave the slot empty. The restart policy gave up on it (or,
	// for a job, the slot completed); the slot counts as served until
	// the service changes.
	Hold
)

// Decision is the supervisor's answer for a vacant slot.
type Decision struct {
	Action Action
	Delay  time.Duration
	// Reason explains a Restart or a Hold, for logs.
	Reason string
}

type slotState struct {
	gen      generation
	seeded   bool
	restarts []time.Time // when replacements were made, oldest first
	declined bool        // the policy gave up on the slot for gen
}

type delayedStart struct {
	due       time.Time
	serviceID string
}

// Supervisor keeps the per-slot restart history of the services one
// orchestrator owns, and their delayed starts. It is used from that
// orchestrator's loop only and is not safe for concurrent use.
type Supervisor struct {
	slots   map[SlotKey]*slotState
	delayed map[string]delayedStart
}

// New returns a supervisor with no history.
func New() *Supervisor {
	return &Supervisor{slots: map[SlotKey]*slotState{}, delayed: map[string]delayedStart{}}
}
