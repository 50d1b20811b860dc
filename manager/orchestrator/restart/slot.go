package restart

import (
	"time"

	"github.com/shoal-project/shoal/manager/orchestrator"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Settle goes through the runnable tasks among tasks (one slot's): each
// for which check returns a cause is shut down and its cause recorded in
// causes; of the others one is kept (orchestrator.Better) and the rest
// shut down. It returns the task kept, or nil, and times the kept task's
// delayed start if it waits in READY.
//
// Two cases are the rolling updater's and left to it: a task of an older
// spec running beside a newer one that has not reached RUNNING yet is a
// start-first replacement in progress, so the best such older task is
// kept running too until the newer one runs; and a replacement waiting in
// READY for the task it replaces to stop (WaitingReplacement) is started
// by the updater, not timed here.
func (s *Supervisor) Settle(b *orchestrator.Batch, tasks []*shoalpb.Task, check func(*shoalpb.Task) Cause, causes map[string]Cause, now time.Time) (keep *shoalpb.Task) {
	var dropped []*shoalpb.Task
	for _, t := range tasks {
		if !orchestrator.IsRunnable(t) {
			continue
		}
		if cause := check(t); cause != CauseNone {
			b.Shutdown(t, now)
			causes[t.Id] = cause
			continue
		}
		if keep == nil {
			keep = t
			continue
		}
		var drop *shoalpb.Task
		keep, drop = orchestrator.Better(keep, t)
		dropped = append(dropped, drop)
	}
	if keep == nil {
		return nil
	}
	var spare *shoalpb.Task
	if keep.GetStatus().GetState() < shoalpb.TaskState_TASK_STATE_RUNNING {
		for _, d := range dropped {
			if d.GetSpecVersion() >= keep.GetSpecVersion() {
				continue
			}
			if spare == nil {
				spare = d
			} else {
				spare, _ = orchestrator.Better(spare, d)
			}
		}
	}
	for _, d := range dropped {
		if d != spare {
			b.Shutdown(d, now)
		}
	}
	if !WaitingReplacement(keep, tasks) {
		s.Track(keep)
	}
	return keep
}

// CauseOfLast returns why the newest task of history stopped: the cause
// recorded in causes when this pass stopped it, or else StoppedCause.
func CauseOfLast(history []*shoalpb.Task, causes map[string]Cause, nodes orchestrator.Nodes) Cause {
	if len(history) == 0 {
		return CauseNone
	}
	last := history[len(history)-1]
	if c, ok := causes[last.Id]; ok {
		return c
	}
	return StoppedCause(last, nodes[last.NodeId])
}

// Refill decides for slot key of svc, which has no runnable task and whose
// tasks are history (oldest first), and queues what the decision asks;
// newTask makes the slot's new task.
func (s *Supervisor) Refill(b *orchestrator.Batch, svc *shoalpb.Service, key SlotKey, history []*shoalpb.Task, cause Cause, newTask func() *shoalpb.Task, now time.Time) Decision {
	d := s.Decide(svc, key, history, cause, now)
	if d.Action != Hold {
		s.Apply(b, svc, key, d, newTask(), now)
	}
	return d
}
