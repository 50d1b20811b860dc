package restart

import (
	"slices"
	"time"

	"github.com/shoal-project/shoal/manager/orchestrator"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Decide says what to do with slot key of svc, which has no runnable task.
// history is every task of the slot, oldest first (for jobs, those of the
// current iteration); cause is why its newest task stopped — the cause
// found when stopping it in this pass, or StoppedCause otherwise.
//
// A slot with no history, or whose newest task predates the service's
// current spec, is filled. A slot whose task was evicted is filled at
// once. Otherwise the newest task's restart policy decides:
//
//   - condition any (the default for services) restarts; on-failure (the
//     default for jobs) restarts only after a failure — FAILED, REJECTED,
//     ORPHANED, or a lost node; none never restarts. A job task that
//     completed is never restarted.
//   - max_attempts, when set, bounds the restarts of the slot within
//     window_ns (or ever, when the window is 0). Restarts are counted since
//     the service's spec (and job iteration) last changed; after a leader
//     change the count is rebuilt from the tasks still in the store.
//   - the replacement waits the policy's delay (5 s unless set), except
//     after a lost node.
//
// Once the policy gives up, the slot is held empty until the service
// changes.
func (s *Supervisor) Decide(svc *shoalpb.Service, key SlotKey, history []*shoalpb.Task, cause Cause, now time.Time) Decision {
	if len(history) == 0 {
		return Decision{Action: Fill}
	}
	job := orchestrator.ModeOf(svc).IsJob()
	last := history[len(history)-1]
	g := serviceGen(svc)
	if taskGen(last, job) != g {
		return Decision{Action: Fill}
	}
	st := s.state(key, g)
	if !st.seeded {
		st.seed(history, job)
	}
	if st.declined {
		return Decision{Action: Hold, Reason: "restart policy gave up on this slot"}
	}
	if cause != CauseExited && cause != CauseNodeLost {
		return Decision{Action: Fill}
	}
	if job && cause == CauseExited && orchestrator.IsCompleted(last) {
		return Decision{Action: Hold, Reason: "job task completed"}
	}
	pol := last.GetSpec().GetRestart()
	cond := pol.GetCondition()
	if pol == nil && job {
		cond = shoalpb.RestartPolicy_CONDITION_ON_FAILURE
	}
	failed := cause == CauseNodeLost || orchestrator.HasFailed(last)
	switch {
	case cond == shoalpb.RestartPolicy_CONDITION_NONE:
		return st.decline("restart condition is none")
	case cond == shoalpb.RestartPolicy_CONDITION_ON_FAILURE && !failed:
		return st.decline("restart condition is on-failure and the task did not fail")
	}
	if maxAttempts := pol.GetMaxAttempts(); maxAttempts > 0 && st.attempts(time.Duration(pol.GetWindowNs()), now) >= maxAttempts {
		return st.decline("restart attempts exhausted")
	}
	d := Decision{Action: Restart, Reason: cause.String()}
	if cause == CauseExited {
		d.Delay = Delay(pol)
	}
	return d
}

// Apply queues what d asks for slot key of svc: creating t (a fresh task
// for the slot) at once, or as a restart that waits in READY for its
// delay. The restart is counted, and its delay timed, once the command
// creating t is applied. Hold queues nothing.
func (s *Supervisor) Apply(b *orchestrator.Batch, svc *shoalpb.Service, key SlotKey, d Decision, t *shoalpb.Task, now time.Time) {
	switch d.Action {
	case Fill:
		b.CreateTask(t, nil)
	case Restart:
		g := serviceGen(svc)
		var due time.Time
		if d.Delay > 0 {
			t.DesiredState = shoalpb.TaskState_TASK_STATE_READY
			due = now.Add(d.Delay)
		}
		b.CreateTask(t, func() {
			if st := s.slots[key]; st != nil && st.gen == g {
				st.restarts = append(st.restarts, now)
			}
			if !due.IsZero() {
				s.delayed[t.Id] = delayedStart{due: due, serviceID: t.ServiceId}
			}
		})
	}
}

// Track times the start of t if it waits in READY and is not timed yet —
// a restart a previous leader made. Its delay runs from its creation.
func (s *Supervisor) Track(t *shoalpb.Task) {
	if t.GetDesiredState() != shoalpb.TaskState_TASK_STATE_READY {
		return
	}
	if _, ok := s.delayed[t.Id]; ok {
		return
	}
	due := time.Unix(0, t.GetMeta().GetCreatedAt()).Add(Delay(t.GetSpec().GetRestart()))
	s.delayed[t.Id] = delayedStart{due: due, serviceID: t.ServiceId}
}

// Wake returns when the next delayed start falls due, or the zero time.
func (s *Supervisor) Wake() time.Time {
	var next time.Time
	for _, d := range s.delayed {
		if next.IsZero() || d.due.Before(next) {
			next = d.due
		}
	}
	return next
}

// StartDue queues raising to RUNNING every waiting task whose delay has
// passed by now. Tasks that vanished, stopped, or were raised or shut
// down by someone else are forgotten.
func (s *Supervisor) StartDue(b *orchestrator.Batch, tx store.ReadTx, now time.Time) {
	for _, id := range orchestrator.SortedKeys(s.delayed) {
		if s.delayed[id].due.After(now) {
			continue
		}
		t := tx.Task(id)
		if t == nil || t.DesiredState != shoalpb.TaskState_TASK_STATE_READY || orchestrator.HasStopped(t) {
			delete(s.delayed, id)
			continue
		}
		b.SetDesiredState(id, shoalpb.TaskState_TASK_STATE_RUNNING, now, func() { delete(s.delayed, id) })
	}
}

// Forget drops everything known about a service.
func (s *Supervisor) Forget(serviceID string) {
	for k := range s.slots {
		if k.ServiceID == serviceID {
			delete(s.slots, k)
		}
	}
	for id, d := range s.delayed {
		if d.serviceID == serviceID {
			delete(s.delayed, id)
		}
	}
}

// Retain drops everything known about services for which keep is false.
func (s *Supervisor) Retain(keep func(serviceID string) bool) {
	for k := range s.slots {
		if !keep(k.ServiceID) {
			delete(s.slots, k)
		}
	}
	for id, d := range s.delayed {
		if !keep(d.serviceID) {
			delete(s.delayed, id)
		}
	}
}

func (s *Supervisor) state(key SlotKey, g generation) *slotState {
	st := s.slots[key]
	if st == nil || st.gen != g {
		st = &slotState{gen: g}
		s.slots[key] = st
	}
	return st
}

// seed rebuilds the slot's restart history from its tasks: each task of
// the current generation that ended by itself and was followed by another
// was restarted when that one was made. Restarts after a lost node leave
// no such trace and are not counted, so after a leader change the count
// is a lower bound.
func (st *slotState) seed(history []*shoalpb.Task, job bool) {
	st.seeded = true
	for i := 0; i+1 < len(history); i++ {
		t := history[i]
		if taskGen(t, job) == st.gen && orchestrator.EndedByItself(t) {
			st.restarts = append(st.restarts, time.Unix(0, history[i+1].GetMeta().GetCreatedAt()))
		}
	}
	slices.SortFunc(st.restarts, func(a, b time.Time) int { return a.Compare(b) })
}

// attempts counts the restarts within window before now (all of them when
// window is 0), forgetting older ones.
func (st *slotState) attempts(window time.Duration, now time.Time) uint64 {
	if window > 0 {
		cutoff := now.Add(-window)
		i := 0
		for i < len(st.restarts) && !st.restarts[i].After(cutoff) {
			i++
		}
		st.restarts = st.restarts[i:]
	}
	return uint64(len(st.restarts))
}

func (st *slotState) decline(reason string) Decision {
	st.declined = true
	return Decision{Action: Hold, Reason: reason}
}
