package restart

import (
	"cmp"

	"github.com/shoal-project/shoal/manager/orchestrator"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// The rolling updater (manager/orchestrator/update) replaces a slot's task
// made from an older spec with one made from the current spec, in the same
// slot, while the old one may still run:
//
//   - stop-first: the old task is shut down and its replacement created in
//     one command; the replacement waits in READY until the old task has
//     stopped, and the updater, not the supervisor, starts it;
//   - start-first: the replacement is created beside the old task, which
//     keeps running until the replacement is RUNNING.
//
// Replaced, HoldsContainer and WaitingReplacement let the orchestrators
// recognise both, so they leave them to the updater.

// Replaced returns the task t replaces in its slot, or nil: the newest
// other task of slot made no later than t, when it is of an older spec
// version. A restart made by the supervisor follows a task of its own
// spec version, so it never replaces anything in this sense.
func Replaced(t *shoalpb.Task, slot []*shoalpb.Task) *shoalpb.Task {
	var prev *shoalpb.Task
	for _, o := range slot {
		if o.GetId() == t.GetId() || compareMade(o, t) > 0 {
			continue
		}
		if prev == nil || compareMade(o, prev) > 0 {
			prev = o
		}
	}
	if prev == nil || prev.GetSpecVersion() >= t.GetSpecVersion() {
		return nil
	}
	return prev
}

// compareMade orders tasks by creation time, then spec version (a
// replacement made in the same instant as its predecessor still comes
// after it), then ID.
func compareMade(a, b *shoalpb.Task) int {
	if c := cmp.Compare(a.GetMeta().GetCreatedAt(), b.GetMeta().GetCreatedAt()); c != 0 {
		return c
	}
	if c := cmp.Compare(a.GetSpecVersion(), b.GetSpecVersion()); c != 0 {
		return c
	}
	return cmp.Compare(a.GetId(), b.GetId())
}

// HoldsContainer reports whether t may still have a container on its
// node: it was placed there, the node got it (ASSIGNED or later), and it
// has not reported stopping.
func HoldsContainer(t *shoalpb.Task) bool {
	return t.GetNodeId() != "" && t.GetStatus().GetState() >= shoalpb.TaskState_TASK_STATE_ASSIGNED && !orchestrator.HasStopped(t)
}

// WaitingReplacement reports whether t is a replacement made by the
// rolling updater waiting in READY (its Replaced task is of an older
// spec). The updater starts it once the task it replaces has stopped and
// t is prepared; the supervisor never times it.
func WaitingReplacement(t *shoalpb.Task, slot []*shoalpb.Task) bool {
	if t.GetDesiredState() != shoalpb.TaskState_TASK_STATE_READY || orchestrator.HasStopped(t) {
		return false
	}
	return Replaced(t, slot) != nil
}
