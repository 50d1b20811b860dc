// Package replicated is the orchestrator of replicated services: it keeps
// one runnable task in each of a service's slots, as many slots as the
// service has replicas. It makes tasks for missing slots, shuts down the
// excess when a service scales down, and, through the restart supervisor
// (manager/orchestrator/restart), replaces tasks that stopped or whose node
// was lost or drained.
//
// Tasks it makes have no node; the scheduler places them. It does not
// replace tasks made from an older spec version: that is the rolling
// updater's work (manager/orchestrator/update; see reconcileService). It
// must not import raft, gRPC, worker/, node/ or raftstore/.
package replicated

import (
	"context"
	"slices"
	"time"

	"github.com/shoal-project/shoal/manager/orchestrator"
	"github.com/shoal-project/shoal/manager/orchestrator/restart"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Orchestrator reconciles replicated services while this manager leads.
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
// leadership; restart history and delayed starts are rebuilt from the
// store at the start of each run.
func (o *Orchestrator) Run(ctx context.Context) error {
	orchestrator.Run(ctx, o.cfg, "replicated-orchestrator", (*loop)(o))
	return nil
}

// loop implements orchestrator.Reconciler without widening the exported
// API of Orchestrator.
type loop Orchestrator

func (l *loop) Observe(ev store.Event) {
	l.gate.Observe(ev, l.dirtyServices)
	switch obj := ev.Object.(type) {
	case *shoalpb.Service:
		old, _ := ev.Old.(*shoalpb.Service)
		if orchestrator.ModeOf(obj) == orchestrator.ModeReplicated || orchestrator.ModeOf(old) == orchestrator.ModeReplicated {
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
		var services []*shoalpb.Service
		if full {
			live := map[string]bool{}
			for _, svc := range tx.Services() {
				live[svc.Id] = true
				if orchestrator.ModeOf(svc) == orchestrator.ModeReplicated {
					services = append(services, svc)
				}
			}
			o.sup.Retain(func(id string) bool { return live[id] })
			o.gate.Retain(func(id string) bool { return live[id] })
		} else {
			services = o.dirty(tx)
		}
		for _, svc := range services {
			o.reconcileService(b, tx, svc, nodes, now)
		}
		o.sup.StartDue(b, tx, now)
	})
	clear(o.dirtyServices)
	clear(o.dirtyNodes)
	clear(o.removed)
	if n := b.Len(); n > 0 {
		o.cfg.Log.Debug("replicated orchestrator writes", "actions", n, "full", full)
	}
	return b.Commit(ctx, o.cfg.Proposer)
}

// dirty returns the replicated services events touched, directly or
// through their tasks' nodes, in ID order.
func (o *Orchestrator) dirty(tx store.ReadTx) []*shoalpb.Service {
	ids := map[string]struct{}{}
	for id := range o.dirtyServices {
		ids[id] = struct{}{}
	}
	for nodeID := range o.dirtyNodes {
		for _, t := range tx.TasksByNode(nodeID) {
			if orchestrator.IsRunnable(t) {
				ids[t.ServiceId] = struct{}{}
			}
		}
	}
	var out []*shoalpb.Service
	for _, id := range orchestrator.SortedKeys(ids) {
		if svc := tx.Service(id); svc != nil && orchestrator.ModeOf(svc) == orchestrator.ModeReplicated {
			out = append(out, svc)
		}
	}
	return out
}

// slotChoice is a vacant slot that may be filled, in order of preference.
type slotChoice struct {
	slot  uint64
	class int
}

// Preference classes for vacant slots, most urgent first.
const (
	// The slot's task stopped by itself or lost its node under the
	// current spec, or the policy already gave up on it: the restart
	// supervisor decides, and the slot keeps its number and history.
	classRestart = iota
	// The slot's task was evicted under the current spec: refill it.
	classEvicted
	// Any other free slot number, lowest first.
	classFree
)

func sortChoices(cs []slotChoice) {
	slices.SortFunc(cs, func(a, b slotChoice) int {
		if a.class != b.class {
			return a.class - b.class
		}
		if a.slot < b.slot {
			return -1
		}
		if a.slot > b.slot {
			return 1
		}
		return 0
	})
}
