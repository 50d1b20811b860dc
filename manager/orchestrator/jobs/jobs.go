// Package jobs is the orchestrator of job services, whose tasks run to
// completion rather than forever.
//
// A replicated job needs total_completions tasks to COMPLETE, with at most
// max_concurrent of its tasks runnable at once (as with docker, each
// defaults to the other, and both to 1). Each completion has a slot,
// 1..total_completions. A global job needs one task to COMPLETE on every
// eligible node, including nodes that join while it runs.
//
// Tasks carry the job iteration (service.job_status.job_iteration) they
// were made for; when an update starts a new iteration, the tasks of older
// ones are shut down and the job starts afresh. A task that fails is
// retried in its slot (or on its node) by the restart supervisor
// (manager/orchestrator/restart), whose default condition for jobs is
// on-failure; a completed task is never restarted. A slot the restart
// policy gives up on is abandoned for the iteration: the job then ends
// with fewer completions.
//
// It must not import raft, gRPC, worker/, node/ or raftstore/.
package jobs

import (
	"context"
	"time"

	"github.com/shoal-project/shoal/manager/orchestrator"
	"github.com/shoal-project/shoal/manager/orchestrator/restart"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Orchestrator reconciles replicated and global jobs while this manager
// leads.
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
	orchestrator.Run(ctx, o.cfg, "jobs-orchestrator", (*loop)(o))
	return nil
}

type loop Orchestrator

func isJob(svc *shoalpb.Service) bool { return orchestrator.ModeOf(svc).IsJob() }

func (l *loop) Observe(ev store.Event) {
	l.gate.Observe(ev, l.dirtyServices)
	switch obj := ev.Object.(type) {
	case *shoalpb.Service:
		old, _ := ev.Old.(*shoalpb.Service)
		if isJob(obj) || isJob(old) {
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
		// Replicated jobs care about a node only through their tasks on
		// it; global jobs about every node.
		touched := map[string]bool{}
		for id := range o.dirtyNodes {
			for _, t := range tx.TasksByNode(id) {
				if orchestrator.IsRunnable(t) {
					touched[t.ServiceId] = true
				}
			}
		}
		live := map[string]bool{}
		for _, svc := range tx.Services() {
			live[svc.Id] = true
			_, dirty := o.dirtyServices[svc.Id]
			if isJob(svc) && (full || dirty || touched[svc.Id] || len(o.dirtyNodes) > 0) {
				if hold, wait := o.gate.Hold(tx, svc, len(tx.TasksByService(svc.Id)) > 0); hold {
					o.cfg.Log.Debug("first tasks held back", "service", svc.GetSpec().GetName(), "waiting for", wait)
					continue
				}
			}
			switch orchestrator.ModeOf(svc) {
			case orchestrator.ModeReplicatedJob:
				if full || dirty || touched[svc.Id] {
					o.reconcileReplicated(b, tx, svc, nodes, now)
				}
			case orchestrator.ModeGlobalJob:
				if full || dirty {
					o.reconcileGlobal(b, tx, svc, nodes, nil, now)
				} else if len(o.dirtyNodes) > 0 {
					o.reconcileGlobal(b, tx, svc, nodes, o.dirtyNodes, now)
				}
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
		o.cfg.Log.Debug("jobs orchestrator writes", "actions", n, "full", full)
	}
	return b.Commit(ctx, o.cfg.Proposer)
}

// currentIteration splits the tasks of svc: those of its current job
// iteration are returned; runnable ones of older iterations are shut down.
func currentIteration(b *orchestrator.Batch, svc *shoalpb.Service, tasks []*shoalpb.Task, now time.Time) []*shoalpb.Task {
	iter := orchestrator.JobIteration(svc)
	var cur []*shoalpb.Task
	for _, t := range tasks {
		if t.JobIteration == iter {
			cur = append(cur, t)
		} else if orchestrator.IsRunnable(t) {
			b.Shutdown(t, now)
		}
	}
	return cur
}

// shutdownRunnable shuts down the runnable tasks among tasks.
func shutdownRunnable(b *orchestrator.Batch, tasks []*shoalpb.Task, now time.Time) {
	for _, t := range tasks {
		if orchestrator.IsRunnable(t) {
			b.Shutdown(t, now)
		}
	}
}

func anyCompleted(tasks []*shoalpb.Task) bool {
	for _, t := range tasks {
		if orchestrator.IsCompleted(t) {
			return true
		}
	}
	return false
}
