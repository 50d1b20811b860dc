// Package global is the orchestrator of global services: one runnable task
// on every eligible node. A node is eligible for new tasks when it is
// READY and ACTIVE and meets the service's placement constraints. A paused
// node keeps its task but gets none; a drained, DOWN or removed node, or
// one that stops meeting the constraints, has its task shut down and not
// replaced there. A node that joins or becomes eligible gets a task. A task
// that stops is replaced on its node per its restart policy, through the
// restart supervisor (manager/orchestrator/restart).
//
// Tasks are created with their node set; the scheduler checks the node
// still fits. Tasks of an older spec version are left to the rolling
// updater (manager/orchestrator/update), which replaces them node by
// node. It must not import raft, gRPC, worker/, node/ or raftstore/.
package global

import (
	"context"
	"time"

	"github.com/shoal-project/shoal/manager/orchestrator"
	"github.com/shoal-project/shoal/manager/orchestrator/restart"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Orchestrator reconciles global services while this manager leads.
type Orchestrator struct {
	cfg  orchestrator.Config
	sup  *restart.Supervisor
	gate *orchestrator.DependencyGate

	dirtyServices map[string]struct{}
	dirtyNodes    map[string]struct{}
	removed       map[string]struct{}
}

// New returns an orchestrator for the store and proposer in cfg.
func New(cfg orchestrator.Config) (*Orchestrator, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	return &Orchestrator{
		cfg:           cfg,
		sup:           restart.New(),
		gate:          orchestrator.NewDependencyGate(),
		dirtyServices: map[string]struct{}{},
		dirtyNodes:    map[string]struct{}{},
		removed:       map[string]struct{}{},
	}, nil
}

// Run reconciles until ctx ends, then returns nil. Run it once per term of
// leadership.
func (o *Orchestrator) Run(ctx context.Context) error {
	orchestrator.Run(ctx, o.cfg, "global-orchestrator", (*loop)(o))
	return nil
}

type loop Orchestrator

func isGlobal(svc *shoalpb.Service) bool { return orchestrator.ModeOf(svc) == orchestrator.ModeGlobal }

func (l *loop) Observe(ev store.Event) {
	l.gate.Observe(ev, l.dirtyServices)
	switch obj := ev.Object.(type) {
	case *shoalpb.Service:
		old, _ := ev.Old.(*shoalpb.Service)
		if isGlobal(obj) || isGlobal(old) {
			l.dirtyServices[obj.Id] = struct{}{}
			if ev.Kind == store.EventRemove {
				l.removed[obj.Id] = struct{}{}
			}
		}
	case *shoalpb.Task:
		if orchestrator.TaskChanged(ev) {
			l.dirtyServices[obj.ServiceId] = struct{}{}
		}
	case *shoalpb.Node:
		if orchestrator.NodeChanged(ev) {
			l.dirtyNodes[obj.Id] = struct{}{}
		}
	}
}

func (l *loop) Pending() bool {
	return len(l.dirtyServices) > 0 || len(l.dirtyNodes) > 0 || len(l.removed) > 0
}

func (l *loop) Wake() time.Time { return l.sup.Wake() }

func (l *loop) Reconcile(ctx context.Context, full bool) error {
	o := (*Orchestrator)(l)
	now := o.cfg.Now()
	b := o.cfg.NewBatch()
	for id := range o.removed {
		o.sup.Forget(id)
		o.gate.Forget(id)
	}
	o.cfg.Store.View(func(tx store.ReadTx) {
		nodes := orchestrator.ReadNodes(tx)
		live := map[string]bool{}
		for _, svc := range tx.Services() {
			live[svc.Id] = true
			if !isGlobal(svc) {
				continue
			}
			if _, ok := o.dirtyServices[svc.Id]; full || ok {
				o.reconcileService(b, tx, svc, nodes, nil, now)
			} else if len(o.dirtyNodes) > 0 {
				o.reconcileService(b, tx, svc, nodes, o.dirtyNodes, now)
			}
		}
		if full {
			o.sup.Retain(func(id string) bool { return live[id] })
			o.gate.Retain(func(id string) bool { return live[id] })
		}
		o.sup.StartDue(b, tx, now)
	})
	clear(o.dirtyServices)
	clear(o.dirtyNodes)
	clear(o.removed)
	if n := b.Len(); n > 0 {
		o.cfg.Log.Debug("global orchestrator writes", "actions", n, "full", full)
	}
	return b.Commit(ctx, o.cfg.Proposer)
}

// reconcileService reconciles svc on every node that exists or holds one
// of its tasks, or only on the nodes in only when it is not nil.
func (o *Orchestrator) reconcileService(b *orchestrator.Batch, tx store.ReadTx, svc *shoalpb.Service, nodes orchestrator.Nodes, only map[string]struct{}, now time.Time) {
	tasks := tx.TasksByService(svc.Id)
	if hold, wait := o.gate.Hold(tx, svc, len(tasks) > 0); hold {
		o.cfg.Log.Debug("first tasks held back", "service", svc.GetSpec().GetName(), "waiting for", wait)
		return
	}
	byNode := orchestrator.GroupByNode(tasks)
	ids := map[string]struct{}{}
	for id := range nodes {
		ids[id] = struct{}{}
	}
	for id := range byNode {
		ids[id] = struct{}{}
	}
	if only == nil {
		for _, t := range tasks {
			if t.NodeId == "" && orchestrator.IsRunnable(t) {
				// Not a global task (the service changed mode).
				b.Shutdown(t, now)
			}
		}
	}
	for _, id := range orchestrator.SortedKeys(ids) {
		if _, ok := only[id]; only != nil && !ok {
			continue
		}
		o.reconcileNode(b, svc, id, nodes, byNode[id], now)
	}
}

// reconcileNode keeps one runnable task of svc on node id, whose tasks of
// svc are history (oldest first).
func (o *Orchestrator) reconcileNode(b *orchestrator.Batch, svc *shoalpb.Service, id string, nodes orchestrator.Nodes, history []*shoalpb.Task, now time.Time) {
	n := nodes[id]
	keep, place := orchestrator.GlobalFit(n, svc.GetSpec().GetTask(), o.cfg.NodeFilter)
	if !keep {
		for _, t := range history {
			if orchestrator.IsRunnable(t) {
				b.Shutdown(t, now)
			}
		}
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
		// A task that stopped on a node taking no new tasks is
		// decided once the node takes tasks again.
		return
	}
	key := restart.SlotKey{ServiceID: svc.Id, NodeID: id}
	newTask := func() *shoalpb.Task { return orchestrator.NewTask(svc, 0, id, o.cfg.NewID(), now) }
	if d := o.sup.Refill(b, svc, key, history, restart.CauseOfLast(history, causes, nodes), newTask, now); d.Action == restart.Hold {
		o.cfg.Log.Debug("node left without a task", "service", svc.Id, "node", id, "reason", d.Reason)
	}
}
