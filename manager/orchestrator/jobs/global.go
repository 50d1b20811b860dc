package jobs

import (
	"time"

	"github.com/shoal-project/shoal/manager/orchestrator"
	"github.com/shoal-project/shoal/manager/orchestrator/restart"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// reconcileGlobal queues what the global job svc needs on every node that
// exists or holds one of its tasks, or only on the nodes in only when it
// is not nil: one task run to completion per eligible node.
func (o *Orchestrator) reconcileGlobal(b *orchestrator.Batch, tx store.ReadTx, svc *shoalpb.Service, nodes orchestrator.Nodes, only map[string]struct{}, now time.Time) {
	tasks := currentIteration(b, svc, tx.TasksByService(svc.Id), now)
	byNode := orchestrator.GroupByNode(tasks)
	ids := map[string]struct{}{}
	for id := range nodes {
		ids[id] = struct{}{}
	}
	for id := range byNode {
		ids[id] = struct{}{}
	}
	for _, id := range orchestrator.SortedKeys(ids) {
		if _, ok := only[id]; only != nil && !ok {
			continue
		}
		o.reconcileNode(b, svc, id, nodes, byNode[id], now)
	}
}

func (o *Orchestrator) reconcileNode(b *orchestrator.Batch, svc *shoalpb.Service, id string, nodes orchestrator.Nodes, history []*shoalpb.Task, now time.Time) {
	keep, place := orchestrator.GlobalFit(nodes[id], svc.GetSpec().GetTask(), o.cfg.NodeFilter)
	if !keep || anyCompleted(history) {
		shutdownRunnable(b, history, now)
		return
	}
	causes := map[string]restart.Cause{}
	stopped := func(t *shoalpb.Task) restart.Cause {
		if orchestrator.HasStopped(t) {
			return restart.CauseExited
		}
		return restart.CauseNone
	}
	if o.sup.Settle(b, history, stopped, causes, now) != nil || !place {
		return
	}
	key := restart.SlotKey{ServiceID: svc.Id, NodeID: id}
	newTask := func() *shoalpb.Task { return orchestrator.NewTask(svc, 0, id, o.cfg.NewID(), now) }
	if d := o.sup.Refill(b, svc, key, history, restart.CauseOfLast(history, causes, nodes), newTask, now); d.Action == restart.Hold {
		o.cfg.Log.Debug("global job abandoned on node", "service", svc.Id, "node", id, "reason", d.Reason)
	}
}
