// Package taskreaper owns task history: it deletes the tasks the cluster no
// longer needs to remember.
//
//   - Each slot of a replicated service or job, and each node of a global
//     one, keeps at most cluster.spec.orchestration.task_history_retention_limit
//     dead tasks; older ones are deleted. A dead task is one the managers
//     no longer want running (desired state past RUNNING) that has
//     stopped, was never assigned, or whose node is gone. The limit is 5
//     when the cluster sets none; 0 keeps no history; a negative limit
//     keeps all of it.
//   - Whatever the limit, two tasks are kept because the orchestrators
//     read them: the newest task of a slot with no runnable task, when it
//     is of the service's current spec (it records why the slot is empty,
//     e.g. that its restart policy gave up), and the completed tasks of a
//     job's current iteration (they are its progress).
//   - Tasks of removed services are shut down (desired SHUTDOWN) and
//     deleted once they are no longer running: stopped, never assigned, or
//     on a node that is gone.
//
// It must not import raft, gRPC, worker/, node/ or raftstore/.
package taskreaper

import (
	"context"
	"time"

	"github.com/shoal-project/shoal/manager/orchestrator"
	"github.com/shoal-project/shoal/manager/orchestrator/restart"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// DefaultRetentionLimit is the history kept per slot when the cluster
// sets none.
const DefaultRetentionLimit = 5

// RetentionLimit returns how many dead tasks each slot keeps; negative
// means all of them.
func RetentionLimit(c *shoalpb.Cluster) int64 {
	o := c.GetSpec().GetOrchestration()
	if o == nil {
		return DefaultRetentionLimit
	}
	return o.TaskHistoryRetentionLimit
}

// Reaper deletes task history while this manager leads.
type Reaper struct {
	cfg orchestrator.Config

	full     bool
	slots    map[restart.SlotKey]struct{}
	services map[string]struct{}
	nodes    map[string]struct{}
}

// New returns a reaper for the store and proposer in cfg.
func New(cfg orchestrator.Config) (*Reaper, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	return &Reaper{
		cfg:      cfg,
		slots:    map[restart.SlotKey]struct{}{},
		services: map[string]struct{}{},
		nodes:    map[string]struct{}{},
	}, nil
}

// Run reaps until ctx ends, then returns nil.
func (r *Reaper) Run(ctx context.Context) error {
	orchestrator.Run(ctx, r.cfg, "task-reaper", (*loop)(r))
	return nil
}

type loop Reaper

func (l *loop) Observe(ev store.Event) {
	switch obj := ev.Object.(type) {
	case *shoalpb.Task:
		if ev.Kind != store.EventRemove && orchestrator.TaskChanged(ev) {
			l.slots[restart.KeyOf(obj)] = struct{}{}
		}
	case *shoalpb.Service:
		// A removed service leaves orphans; an updated one may release
		// tasks kept for its previous spec or iteration.
		if ev.Kind != store.EventCreate {
			l.services[obj.Id] = struct{}{}
		}
	case *shoalpb.Node:
		if ev.Kind == store.EventRemove {
			l.nodes[obj.Id] = struct{}{}
		}
	case *shoalpb.Cluster:
		old, _ := ev.Old.(*shoalpb.Cluster)
		if ev.Kind != store.EventUpdate || RetentionLimit(old) != RetentionLimit(obj) {
			l.full = true
		}
	}
}

func (l *loop) Pending() bool {
	return l.full || len(l.slots) > 0 || len(l.services) > 0 || len(l.nodes) > 0
}

func (l *loop) Wake() time.Time { return time.Time{} }

func (l *loop) Reconcile(ctx context.Context, full bool) error {
	r := (*Reaper)(l)
	full = full || r.full
	now := r.cfg.Now()
	b := r.cfg.NewBatch()
	r.cfg.Store.View(func(tx store.ReadTx) {
		p := pass{tx: tx, b: b, now: now, limit: RetentionLimit(tx.Cluster()), nodes: orchestrator.ReadNodes(tx), byService: map[string][]*shoalpb.Task{}}
		keys := map[restart.SlotKey]struct{}{}
		if full {
			for _, t := range tx.Tasks() {
				p.byService[t.ServiceId] = append(p.byService[t.ServiceId], t)
				keys[restart.KeyOf(t)] = struct{}{}
			}
		} else {
			for k := range r.slots {
				keys[k] = struct{}{}
			}
			for id := range r.services {
				for _, t := range p.tasksOf(id) {
					keys[restart.KeyOf(t)] = struct{}{}
				}
			}
			for id := range r.nodes {
				for _, t := range tx.TasksByNode(id) {
					keys[restart.KeyOf(t)] = struct{}{}
				}
			}
		}
		bySlot := map[restart.SlotKey][]*shoalpb.Task{}
		for id := range p.byServiceIDs(keys) {
			for _, t := range p.tasksOf(id) {
				if k := restart.KeyOf(t); hasKey(keys, k) {
					bySlot[k] = append(bySlot[k], t)
				}
			}
		}
		for _, k := range sortedKeys(bySlot) {
			p.reap(k, bySlot[k])
		}
	})
	r.full = false
	clear(r.slots)
	clear(r.services)
	clear(r.nodes)
	if n := b.Len(); n > 0 {
		r.cfg.Log.Debug("task reaper writes", "actions", n, "full", full)
	}
	return b.Commit(ctx, r.cfg.Proposer)
}

func hasKey(keys map[restart.SlotKey]struct{}, k restart.SlotKey) bool {
	_, ok := keys[k]
	return ok
}
