package jobs

import (
	"time"

	"github.com/shoal-project/shoal/manager/orchestrator"
	"github.com/shoal-project/shoal/manager/orchestrator/restart"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// reconcileReplicated queues what the replicated job svc needs: its
// completed slots are done; its runnable tasks that stopped or lost their
// node are shut down; then vacant slots are decided — those with history
// first, so retries keep their slot — until max_concurrent tasks are
// runnable.
func (o *Orchestrator) reconcileReplicated(b *orchestrator.Batch, tx store.ReadTx, svc *shoalpb.Service, nodes orchestrator.Nodes, now time.Time) {
	tasks := currentIteration(b, svc, tx.TasksByService(svc.Id), now)
	for _, t := range tasks {
		if t.Slot == 0 && orchestrator.IsRunnable(t) {
			b.Shutdown(t, now)
		}
	}
	slots := orchestrator.GroupBySlot(tasks)
	maxConcurrent, total := orchestrator.JobCounts(svc.GetSpec().GetReplicatedJob())
	done := map[uint64]bool{}
	occupied := map[uint64]bool{}
	causes := map[string]restart.Cause{}
	check := func(t *shoalpb.Task) restart.Cause { return restart.Check(t, nodes[t.NodeId]) }
	for _, slot := range orchestrator.SortedKeys(slots) {
		hist := slots[slot]
		if anyCompleted(hist) {
			done[slot] = true
			shutdownRunnable(b, hist, now)
			continue
		}
		if o.sup.Settle(b, hist, check, causes, now) != nil {
			occupied[slot] = true
		}
	}
	active := uint64(len(occupied))
	if uint64(len(done)) >= total || active >= maxConcurrent {
		return
	}
	decide := func(slot uint64) {
		key := restart.SlotKey{ServiceID: svc.Id, Slot: slot}
		hist := slots[slot]
		newTask := func() *shoalpb.Task { return orchestrator.NewTask(svc, slot, "", o.cfg.NewID(), now) }
		d := o.sup.Refill(b, svc, key, hist, restart.CauseOfLast(hist, causes, nodes), newTask, now)
		if d.Action == restart.Hold {
			o.cfg.Log.Debug("job slot abandoned", "service", svc.Id, "slot", slot, "reason", d.Reason)
			return
		}
		active++
	}
	for _, slot := range orchestrator.SortedKeys(slots) {
		if active >= maxConcurrent {
			return
		}
		if slot <= total && !done[slot] && !occupied[slot] {
			decide(slot)
		}
	}
	for slot := uint64(1); slot <= total && active < maxConcurrent; slot++ {
		if _, seen := slots[slot]; !seen {
			decide(slot)
		}
	}
}
