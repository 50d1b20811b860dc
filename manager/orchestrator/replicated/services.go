package replicated

import (
	"math"
	"slices"
	"time"

	"github.com/shoal-project/shoal/manager/orchestrator"
	"github.com/shoal-project/shoal/manager/orchestrator/restart"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// reconcileService queues what svc needs:
//
//  1. Each runnable task that stopped, or whose node is DOWN, gone or
//     drained, is shut down (desired SHUTDOWN; its observed status is the
//     worker's to report). A slot holding two runnable tasks keeps one.
//  2. Too many occupied slots: the excess is shut down (scaleDownVictims).
//  3. Too few: vacant slots are filled, those whose task just stopped
//     first, so a restart keeps its slot; the restart supervisor decides
//     whether and when each is replaced.
func (o *Orchestrator) reconcileService(b *orchestrator.Batch, tx store.ReadTx, svc *shoalpb.Service, nodes orchestrator.Nodes, now time.Time) {
	tasks := tx.TasksByService(svc.Id)
	if hold, wait := o.gate.Hold(tx, svc, len(tasks) > 0); hold {
		o.cfg.Log.Debug("first tasks held back", "service", svc.GetSpec().GetName(), "waiting for", wait)
		return
	}
	slots := orchestrator.GroupBySlot(tasks)
	occupied := map[uint64]*shoalpb.Task{}
	causes := map[string]restart.Cause{} // why this pass stops a task
	for _, t := range tasks {
		if t.Slot == 0 && orchestrator.IsRunnable(t) {
			// Not a replica of this service (it changed mode).
			b.Shutdown(t, now)
		}
	}
	check := func(t *shoalpb.Task) restart.Cause { return restart.Check(t, nodes[t.NodeId]) }
	for _, slot := range orchestrator.SortedKeys(slots) {
		if keep := o.sup.Settle(b, slots[slot], check, causes, now); keep != nil {
			occupied[slot] = keep
		}
	}
	// Occupied tasks made from an older spec version are left running
	// here: the rolling updater (manager/orchestrator/update) replaces
	// them slot by slot, creating each replacement in the command that
	// shuts the old task down (so no pass finds the slot empty), or beside
	// it (start-first, which Settle leaves alone until the replacement
	// runs). Replacements waiting for their old task to stop are started
	// by the updater.
	want := svc.GetSpec().GetReplicated().GetReplicas()
	have := uint64(len(occupied))
	switch {
	case have > want:
		for _, t := range scaleDownVictims(occupied, int(have-want)) {
			b.Shutdown(t, now)
		}
	case have < want:
		o.fill(b, svc, slots, occupied, causes, nodes, int(want-have), now)
	}
}

// fill decides need vacant slots: first those whose newest task is of the
// current spec (their history and restart count carry on), then the
// lowest free slot numbers. A slot the restart policy gave up on counts
// as served, so the service never grows past its replicas by renumbering.
func (o *Orchestrator) fill(b *orchestrator.Batch, svc *shoalpb.Service, slots map[uint64][]*shoalpb.Task, occupied map[uint64]*shoalpb.Task, causes map[string]restart.Cause, nodes orchestrator.Nodes, need int, now time.Time) {
	var choices []slotChoice
	chosen := map[uint64]restart.Cause{}
	for slot, hist := range slots {
		if occupied[slot] != nil || hist[len(hist)-1].SpecVersion != svc.SpecVersion {
			continue
		}
		cause := restart.CauseOfLast(hist, causes, nodes)
		class := classEvicted
		if cause == restart.CauseExited || cause == restart.CauseNodeLost {
			class = classRestart
		}
		choices = append(choices, slotChoice{slot: slot, class: class})
		chosen[slot] = cause
	}
	sortChoices(choices)
	for s := uint64(1); len(choices) < need; s++ {
		if _, ok := chosen[s]; !ok && occupied[s] == nil {
			choices = append(choices, slotChoice{slot: s, class: classFree})
		}
	}
	for _, c := range choices[:need] {
		key := restart.SlotKey{ServiceID: svc.Id, Slot: c.slot}
		newTask := func() *shoalpb.Task { return orchestrator.NewTask(svc, c.slot, "", o.cfg.NewID(), now) }
		if d := o.sup.Refill(b, svc, key, slots[c.slot], chosen[c.slot], newTask, now); d.Action == restart.Hold {
			o.cfg.Log.Debug("slot left empty", "service", svc.Id, "slot", c.slot, "reason", d.Reason)
		}
	}
}

// scaleDownVictims picks n of the occupied slots' tasks to shut down.
// Each pick takes, among those left: unassigned tasks first (they cost
// nothing to stop), then tasks on the node running the most of the
// service's tasks, then tasks not yet RUNNING, then the highest slot.
func scaleDownVictims(occupied map[uint64]*shoalpb.Task, n int) []*shoalpb.Task {
	perNode := map[string]int{}
	left := make([]*shoalpb.Task, 0, len(occupied))
	for _, slot := range orchestrator.SortedKeys(occupied) {
		t := occupied[slot]
		left = append(left, t)
		if t.NodeId != "" {
			perNode[t.NodeId]++
		}
	}
	load := func(t *shoalpb.Task) int {
		if t.NodeId == "" {
			return math.MaxInt
		}
		return perNode[t.NodeId]
	}
	removeFirst := func(a, b *shoalpb.Task) bool {
		if la, lb := load(a), load(b); la != lb {
			return la > lb
		}
		ra := a.GetStatus().GetState() >= shoalpb.TaskState_TASK_STATE_RUNNING
		rb := b.GetStatus().GetState() >= shoalpb.TaskState_TASK_STATE_RUNNING
		if ra != rb {
			return !ra
		}
		return a.Slot > b.Slot
	}
	out := make([]*shoalpb.Task, 0, n)
	for range min(n, len(left)) {
		best := 0
		for i := 1; i < len(left); i++ {
			if removeFirst(left[i], left[best]) {
				best = i
			}
		}
		v := left[best]
		out = append(out, v)
		left = slices.Delete(left, best, best+1)
		if v.NodeId != "" {
			perNode[v.NodeId]--
		}
	}
	return out
}
