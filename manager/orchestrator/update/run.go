package update

import (
	"fmt"
	"math"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/manager/orchestrator"
	"github.com/shoal-project/shoal/manager/orchestrator/restart"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// runKey identifies one update of a service: a new spec version, a
// rollback, or the resumption of a paused update each start a new one.
type runKey struct {
	specVersion uint64
	startedAt   int64
	rollback    bool
}

func keyOf(svc *shoalpb.Service) runKey {
	st := svc.GetUpdateStatus()
	return runKey{
		specVersion: svc.GetSpecVersion(),
		startedAt:   st.GetStartedAt(),
		rollback:    st.GetState() == shoalpb.UpdateStatus_STATE_ROLLBACK_STARTED,
	}
}

// failure is a slot whose new task failed the update.
type failure struct {
	taskID  string
	timeout bool
}

// run is what the updater keeps about one update in progress. All of it
// can be rebuilt from the store, less precisely: a new leader starts
// afresh with the tasks the update already made.
type run struct {
	key runKey
	set settings
	// fresh: the next step is the first; tasks that ended before it are
	// judged by their timestamps alone.
	fresh bool
	// runningAt: when each task of the update was seen RUNNING (the
	// worker's timestamp, within its creation and the moment seen).
	runningAt map[string]time.Time
	// known: tasks of the update seen alive.
	known map[string]bool
	// covered: the slots the update has to bring up to date or did.
	covered map[slotKey]bool
	failed  map[slotKey]failure
	last    failure // the failure recorded last
	// inflight: slots whose new task is on its way to RUNNING.
	inflight map[slotKey]bool
	// cooling: when each worker that finished a slot may take the next
	// (the update delay).
	cooling []time.Time
}

func newRun(svc *shoalpb.Service) *run {
	k := keyOf(svc)
	cfg := svc.GetSpec().GetUpdate()
	if k.rollback {
		// As docker: a rollback follows the rollback config of the spec it
		// restores.
		cfg = svc.GetSpec().GetRollback()
	}
	return &run{
		key:       k,
		set:       settingsOf(cfg),
		fresh:     true,
		runningAt: map[string]time.Time{},
		known:     map[string]bool{},
		covered:   map[slotKey]bool{},
		failed:    map[slotKey]failure{},
		inflight:  map[slotKey]bool{},
	}
}

// own returns the tasks of a slot that this update made (or that were
// made from its spec since it started), oldest first.
func (r *run) own(hist []*shoalpb.Task) []*shoalpb.Task {
	var out []*shoalpb.Task
	for _, t := range hist {
		if t.GetSpecVersion() == r.key.specVersion && t.GetMeta().GetCreatedAt() >= r.key.startedAt {
			out = append(out, t)
		}
	}
	return out
}

// step advances the update of svc by one pass: it judges the update's new
// tasks, takes the failure action when failures exceed the ratio, shuts
// down the old tasks whose replacement runs (start-first) or failed (when
// the update goes on), replaces outdated tasks while workers are free, and
// completes the update once every slot is up to date and past its monitor
// window. It returns when the next deadline falls.
func (u *Updater) step(r *run, tb, sb *orchestrator.Batch, svc *shoalpb.Service, slots map[slotKey][]*shoalpb.Task, keys []slotKey, dirty map[slotKey]bool, nodes orchestrator.Nodes, now time.Time) time.Time {
	fresh := r.fresh
	r.fresh = false
	var wake time.Time
	var candidates, handover []slotKey
	monitoring := false
	for _, k := range keys {
		hist := slots[k]
		mine := r.own(hist)
		if dirty[k] || len(mine) > 0 {
			r.covered[k] = true
		}
		for _, t := range mine {
			wake = earliest(wake, u.judge(r, svc, k, t, fresh, now))
		}
		var latest *shoalpb.Task
		if len(mine) > 0 {
			latest = mine[len(mine)-1]
		}
		_, failed := r.failed[k]
		live := latest != nil && orchestrator.IsRunnable(latest) && !orchestrator.HasStopped(latest)
		inflight := !failed && live && latest.GetStatus().GetState() < shoalpb.TaskState_TASK_STATE_RUNNING
		if inflight {
			r.inflight[k] = true
		} else if r.inflight[k] {
			// The worker that had the slot waits the delay from when its
			// task ran (or now, when it did not).
			delete(r.inflight, k)
			done := now
			if ran, ok := r.runningAt[latest.GetId()]; ok {
				done = ran
			}
			if r.set.delay > 0 {
				r.cooling = append(r.cooling, done.Add(r.set.delay))
			}
		}
		switch {
		case failed:
			if dirty[k] {
				handover = append(handover, k)
			}
		case inflight:
		case live:
			// Its new task runs: the old one goes (start-first), and the
			// slot is watched until its monitor window ends.
			if dirty[k] {
				handover = append(handover, k)
			}
			if end := r.runningAt[latest.Id].Add(r.set.monitor); end.After(now) {
				monitoring = true
				wake = earliest(wake, end)
			}
		case dirty[k]:
			// Never replaced in this update, or its replacement was shut
			// down by someone else (a drain, a scale-down).
			candidates = append(candidates, k)
		}
	}

	for k := range r.inflight {
		if _, ok := slots[k]; !ok {
			// Its tasks are gone (removed by the task reaper, or the
			// command making them failed).
			delete(r.inflight, k)
		}
	}

	if r.exceeded() {
		u.act(sb, r, svc, now)
		return time.Time{}
	}

	for _, k := range handover {
		for _, t := range slots[k] {
			if outdated(svc, t) {
				tb.Shutdown(t, now)
			}
		}
	}

	free := math.MaxInt
	if r.set.parallelism > 0 {
		kept := r.cooling[:0]
		for _, c := range r.cooling {
			if c.After(now) {
				kept = append(kept, c)
			}
		}
		r.cooling = kept
		free = r.set.parallelism - len(r.inflight) - len(r.cooling)
	} else {
		r.cooling = nil
	}
	dispatched := 0
	for _, k := range candidates {
		if free <= 0 {
			break
		}
		if u.replace(tb, r, svc, k, slots[k], nodes, now) {
			free--
			dispatched++
		}
	}
	if dispatched < len(candidates) {
		for _, c := range r.cooling {
			wake = earliest(wake, c)
		}
	}

	if len(dirty) == 0 && len(r.inflight) == 0 && !monitoring {
		st := &shoalpb.UpdateStatus{
			State:       shoalpb.UpdateStatus_STATE_COMPLETED,
			StartedAt:   svc.GetUpdateStatus().GetStartedAt(),
			CompletedAt: now.UnixNano(),
			Message:     "update completed",
		}
		if r.key.rollback {
			st.State, st.Message = shoalpb.UpdateStatus_STATE_ROLLBACK_COMPLETED, "rollback completed"
			if why := svc.GetUpdateStatus().GetMessage(); why != "" && why != "manually requested rollback" {
				// Keep why the update was rolled back: a rollback can
				// finish before anyone saw it start.
				st.Message += " (" + why + ")"
			}
		}
		u.cfg.Log.Info(st.Message, "service", svc.GetSpec().GetName(), "slots", len(r.covered), "failures", len(r.failed))
		sb.Add(nil, statusAction(svc, st))
		return time.Time{}
	}
	return wake
}

// judge records what task t, made by the update in slot k, shows: when
// it started running, whether it failed. It returns t's timeout deadline
// while that is still ahead.
func (u *Updater) judge(r *run, svc *shoalpb.Service, k slotKey, t *shoalpb.Task, fresh bool, now time.Time) time.Time {
	if _, done := r.failed[k]; done {
		return time.Time{}
	}
	created := unixNano(t.GetMeta().GetCreatedAt())
	at := unixNano(t.GetStatus().GetTimestamp())
	at = clamp(at, created, now)
	state := t.GetStatus().GetState()
	if _, seen := r.runningAt[t.Id]; !seen {
		ran, ok := u.started[t.Id]
		if state == shoalpb.TaskState_TASK_STATE_RUNNING {
			ran, ok = at, true
		}
		if ok {
			ran = clamp(ran, created, now)
			r.runningAt[t.Id] = ran
			if r.set.timeout > 0 && ran.Sub(created) > r.set.timeout {
				u.fail(r, svc, k, t, true)
				return time.Time{}
			}
		}
	}
	switch {
	case state == shoalpb.TaskState_TASK_STATE_RUNNING:
		r.known[t.Id] = true
	case orchestrator.EndedByItself(t):
		ran, seen := r.runningAt[t.Id]
		switch {
		case seen:
			if clamp(at, ran, now).Sub(ran) < r.set.monitor {
				u.fail(r, svc, k, t, false)
			}
		case r.known[t.Id] || !fresh:
			// It ended before it ran.
			u.fail(r, svc, k, t, false)
		case r.set.timeout == 0 || at.Sub(created) < r.set.timeout+r.set.monitor:
			// It ended before this update was resumed: only its
			// creation and its end are known, and it ended soon enough
			// after it was made to have failed the update.
			u.fail(r, svc, k, t, false)
		}
	case orchestrator.HasStopped(t) || !orchestrator.IsRunnable(t):
		// Shut down by someone else: not the task's failure.
	default:
		r.known[t.Id] = true
		if r.set.timeout > 0 {
			due := created.Add(r.set.timeout)
			if now.Before(due) {
				return due
			}
			u.fail(r, svc, k, t, true)
		}
	}
	return time.Time{}
}

func clamp(t, lo, hi time.Time) time.Time {
	if t.Before(lo) {
		t = lo
	}
	if t.After(hi) {
		t = hi
	}
	return t
}

func (u *Updater) fail(r *run, svc *shoalpb.Service, k slotKey, t *shoalpb.Task, timeout bool) {
	f := failure{taskID: t.Id, timeout: timeout}
	r.failed[k] = f
	r.last = f
	u.cfg.Log.Info("updated task failed", "service", svc.GetSpec().GetName(), "task", t.Id, "timeout", timeout,
		"failures", len(r.failed), "slots", len(r.covered))
}

// exceeded reports whether the failures call for the failure action.
func (r *run) exceeded() bool {
	if len(r.failed) == 0 || r.set.action == shoalpb.UpdateConfig_FAILURE_ACTION_CONTINUE {
		return false
	}
	return float64(len(r.failed))/float64(max(1, len(r.covered))) > r.set.ratio
}

// act takes the failure action: it pauses the update (or the rollback),
// or rolls the service back to its previous spec.
func (u *Updater) act(sb *orchestrator.Batch, r *run, svc *shoalpb.Service, now time.Time) {
	why := "failure or early termination of task " + r.last.taskID
	if r.last.timeout {
		why = fmt.Sprintf("timeout of task %s (not running %s after it was created)", r.last.taskID, r.set.timeout)
	}
	prev := svc.GetUpdateStatus()
	paused := func(state shoalpb.UpdateStatus_State, msg string) {
		u.cfg.Log.Info(msg, "service", svc.GetSpec().GetName())
		sb.Add(nil, statusAction(svc, &shoalpb.UpdateStatus{State: state, StartedAt: prev.GetStartedAt(), Message: msg}))
	}
	switch {
	case r.key.rollback:
		// A rollback is never rolled back.
		paused(shoalpb.UpdateStatus_STATE_ROLLBACK_PAUSED, "rollback paused due to "+why)
	case r.set.action != shoalpb.UpdateConfig_FAILURE_ACTION_ROLLBACK:
		paused(shoalpb.UpdateStatus_STATE_PAUSED, "update paused due to "+why)
	case svc.GetPreviousSpec() == nil:
		paused(shoalpb.UpdateStatus_STATE_PAUSED, "update paused due to "+why+" (no previous spec to roll back to)")
	default:
		msg := "update rolled back due to " + why
		u.cfg.Log.Info(msg, "service", svc.GetSpec().GetName())
		sb.Add(nil, rollbackAction(svc, msg, now))
	}
}

// rollbackAction returns the write restoring svc's previous spec. As
// docker does, the previous spec is then forgotten; the spec version moves
// on, so tasks of the spec rolled back from sort as older.
func rollbackAction(svc *shoalpb.Service, msg string, now time.Time) *shoalpb.StoreAction {
	s := proto.Clone(svc).(*shoalpb.Service)
	s.Spec = s.PreviousSpec
	s.PreviousSpec = nil
	s.PreviousSpecVersion = 0
	if !proto.Equal(svc.GetSpec().GetTask(), s.GetSpec().GetTask()) {
		s.SpecVersion = svc.GetSpecVersion() + 1
	}
	if s.Meta == nil {
		s.Meta = &shoalpb.Meta{}
	}
	s.Meta.UpdatedAt = now.UnixNano()
	s.UpdateStatus = &shoalpb.UpdateStatus{State: shoalpb.UpdateStatus_STATE_ROLLBACK_STARTED, StartedAt: now.UnixNano(), Message: msg}
	return &shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_UPDATE, Target: &shoalpb.StoreAction_Service{Service: s}}
}

// replace starts the update of slot k: its outdated tasks make way for a
// new task of the current spec, stop-first or start-first. It reports
// whether the slot takes a worker: a slot that already holds an up-to-date
// runnable task only has its outdated ones shut down.
func (u *Updater) replace(tb *orchestrator.Batch, r *run, svc *shoalpb.Service, k slotKey, hist []*shoalpb.Task, nodes orchestrator.Nodes, now time.Time) bool {
	var old []*shoalpb.Task
	current := false
	for _, t := range hist {
		switch {
		case outdated(svc, t):
			old = append(old, t)
		case orchestrator.IsRunnable(t) && !orchestrator.HasStopped(t):
			current = true
		}
	}
	if len(old) == 0 {
		return false
	}
	if current {
		for _, t := range old {
			tb.Shutdown(t, now)
		}
		return false
	}
	nt := orchestrator.NewTask(svc, k.Slot, k.NodeID, u.cfg.NewID(), now)
	var actions []*shoalpb.StoreAction
	if !r.set.startFirst {
		wait := false
		for _, t := range old {
			actions = append(actions, orchestrator.DesiredStateAction(t.Id, shoalpb.TaskState_TASK_STATE_SHUTDOWN, now))
			if restart.HoldsContainer(t) && !orchestrator.IsDown(nodes[t.GetNodeId()]) {
				wait = true
			}
		}
		if wait {
			nt.DesiredState = shoalpb.TaskState_TASK_STATE_READY
		}
	}
	actions = append(actions, orchestrator.CreateTaskAction(nt))
	tb.Add(nil, actions...)
	r.inflight[k] = true
	r.covered[k] = true
	r.known[nt.Id] = true
	u.cfg.Log.Debug("replacing task", "service", svc.GetSpec().GetName(), "slot", k.Slot, "node", k.NodeID, "new", nt.Id, "start_first", r.set.startFirst)
	return true
}
