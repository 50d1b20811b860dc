// Package constraintenforcer stops tasks whose node no longer fits them.
// When a node's labels, role, description or resources change so that a
// runnable task assigned to it no longer meets its placement constraints,
// or the reservations of the node's tasks no longer fit in the resources
// it reports, the task's desired state becomes SHUTDOWN and its status
// carries the reason. The orchestrator owning the task then replaces it at
// once, without counting a restart attempt (restart.CauseEvicted).
//
// When reservations no longer fit, the oldest tasks keep their place and
// the newest are stopped until the rest fit. A resource the node does not
// report (zero) is not checked.
//
// It must not import raft, gRPC, worker/, node/ or raftstore/.
package constraintenforcer

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/manager/orchestrator"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Reasons written to the status of the tasks stopped.
const (
	ErrConstraint = "constraint no longer satisfied"
	ErrResources  = "constraint no longer satisfied: the node lacks the resources the task reserves"
)

// Enforcer stops misplaced tasks while this manager leads.
type Enforcer struct {
	cfg   orchestrator.Config
	nodes map[string]struct{}
}

// New returns an enforcer for the store and proposer in cfg.
func New(cfg orchestrator.Config) (*Enforcer, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	return &Enforcer{cfg: cfg, nodes: map[string]struct{}{}}, nil
}

// Run enforces until ctx ends, then returns nil.
func (e *Enforcer) Run(ctx context.Context) error {
	orchestrator.Run(ctx, e.cfg, "constraint-enforcer", (*loop)(e))
	return nil
}

type loop Enforcer

func (l *loop) Observe(ev store.Event) {
	if n, ok := ev.Object.(*shoalpb.Node); ok && ev.Kind != store.EventRemove && orchestrator.NodeChanged(ev) {
		l.nodes[n.Id] = struct{}{}
	}
}

func (l *loop) Pending() bool { return len(l.nodes) > 0 }

func (l *loop) Wake() time.Time { return time.Time{} }

func (l *loop) Reconcile(ctx context.Context, full bool) error {
	e := (*Enforcer)(l)
	now := e.cfg.Now()
	b := e.cfg.NewBatch()
	e.cfg.Store.View(func(tx store.ReadTx) {
		var nodes []*shoalpb.Node
		if full {
			nodes = tx.Nodes()
		} else {
			for _, id := range orchestrator.SortedKeys(e.nodes) {
				if n := tx.Node(id); n != nil {
					nodes = append(nodes, n)
				}
			}
		}
		for _, n := range nodes {
			e.enforce(b, n, tx.TasksByNode(n.Id), now)
		}
	})
	clear(e.nodes)
	if n := b.Len(); n > 0 {
		e.cfg.Log.Debug("constraint enforcer writes", "actions", n, "full", full)
	}
	return b.Commit(ctx, e.cfg.Proposer)
}

// enforce queues stopping the tasks on n that no longer fit it.
func (e *Enforcer) enforce(b *orchestrator.Batch, n *shoalpb.Node, tasks []*shoalpb.Task, now time.Time) {
	orchestrator.SortByAge(tasks)
	capacity := n.GetDescription().GetResources()
	cpu, mem := capacity.GetNanoCpus(), capacity.GetMemoryBytes()
	checkCPU, checkMem := cpu > 0, mem > 0
	for _, t := range tasks {
		if !orchestrator.IsRunnable(t) || orchestrator.HasStopped(t) {
			continue
		}
		if !e.cfg.NodeFilter(t.GetSpec(), n) {
			evict(b, t, ErrConstraint, now)
			continue
		}
		r := t.GetSpec().GetResources().GetReservations()
		needCPU, needMem := r.GetNanoCpus(), r.GetMemoryBytes()
		if (checkCPU && needCPU > cpu) || (checkMem && needMem > mem) {
			evict(b, t, ErrResources, now)
			continue
		}
		cpu -= needCPU
		mem -= needMem
	}
}

// evict queues shutting t down with reason in its status. The status keeps
// the state the worker reported, so it applies only if the worker has not
// moved on since.
func evict(b *orchestrator.Batch, t *shoalpb.Task, reason string, now time.Time) {
	st := &shoalpb.TaskStatus{}
	if t.Status != nil {
		st = proto.Clone(t.Status).(*shoalpb.TaskStatus)
	}
	st.Err = reason
	b.Add(nil,
		orchestrator.StatusAction(t.Id, st),
		orchestrator.DesiredStateAction(t.Id, shoalpb.TaskState_TASK_STATE_SHUTDOWN, now))
}
