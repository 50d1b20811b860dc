package update

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/shoal-project/shoal/manager/orchestrator"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Updater runs the rolling updates of replicated and global services while
// this manager leads.
type Updater struct {
	cfg orchestrator.Config

	runs  map[string]*run      // updates in progress, by service ID
	wakes map[string]time.Time // when a service must be looked at again

	dirtyServices map[string]struct{}
	dirtyNodes    map[string]struct{}
	// started holds when tasks were reported RUNNING since the last pass
	// (the worker's timestamp), so a task that starts and fails between
	// two passes is still known to have run.
	started map[string]time.Time
}

// New returns an updater for the store and proposer in cfg.
func New(cfg orchestrator.Config) (*Updater, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	return &Updater{
		cfg:           cfg,
		runs:          map[string]*run{},
		wakes:         map[string]time.Time{},
		dirtyServices: map[string]struct{}{},
		dirtyNodes:    map[string]struct{}{},
		started:       map[string]time.Time{},
	}, nil
}

// Run updates services until ctx ends, then returns nil. Run it once per
// term of leadership: it starts from what the store says.
func (u *Updater) Run(ctx context.Context) error {
	clear(u.runs)
	clear(u.wakes)
	clear(u.started)
	orchestrator.Run(ctx, u.cfg, "updater", (*loop)(u))
	return nil
}

// loop implements orchestrator.Reconciler.
type loop Updater

func (l *loop) Observe(ev store.Event) {
	switch obj := ev.Object.(type) {
	case *shoalpb.Service:
		l.dirtyServices[obj.Id] = struct{}{}
		if ev.Kind == store.EventRemove {
			delete(l.runs, obj.Id)
			delete(l.wakes, obj.Id)
		}
	case *shoalpb.Task:
		old, _ := ev.Old.(*shoalpb.Task)
		if ev.Kind != store.EventUpdate || old == nil ||
			old.GetStatus().GetState() != obj.GetStatus().GetState() ||
			old.DesiredState != obj.DesiredState || old.NodeId != obj.NodeId {
			if obj.GetStatus().GetState() == shoalpb.TaskState_TASK_STATE_RUNNING {
				l.started[obj.Id] = time.Unix(0, obj.GetStatus().GetTimestamp())
			}
			// Tasks matter to an update in progress, and to replacements
			// held back (desired state below RUNNING) until the task they
			// replace has stopped, which a paused update still starts.
			// Otherwise a service gets outdated tasks only through a
			// change of its spec or of a node, events of their own:
			// looking at a service on every report of its tasks would
			// re-read all of them each time.
			_, updating := l.runs[obj.ServiceId]
			held := obj.DesiredState < shoalpb.TaskState_TASK_STATE_RUNNING
			stopped := ev.Kind == store.EventRemove ||
				(old != nil && orchestrator.HasStopped(old) != orchestrator.HasStopped(obj))
			if updating || held || stopped {
				l.dirtyServices[obj.ServiceId] = struct{}{}
			}
		}
	case *shoalpb.Node:
		if orchestrator.NodeChanged(ev) {
			l.dirtyNodes[obj.Id] = struct{}{}
		}
	}
}

func (l *loop) Pending() bool { return len(l.dirtyServices) > 0 || len(l.dirtyNodes) > 0 }

func (l *loop) Wake() time.Time {
	var next time.Time
	for _, w := range l.wakes {
		if next.IsZero() || w.Before(next) {
			next = w
		}
	}
	return next
}

func (l *loop) Reconcile(ctx context.Context, full bool) error {
	u := (*Updater)(l)
	tasks, statuses := u.cfg.NewBatch(), u.cfg.NewBatch()
	u.cfg.Store.View(func(tx store.ReadTx) {
		// Read the clock once the view is taken: nothing the view shows
		// happened after now.
		now := u.cfg.Now()
		nodes := orchestrator.ReadNodes(tx)
		for _, svc := range u.services(tx, full, now) {
			w := u.reconcile(tasks, statuses, tx, svc, nodes, now)
			if w.IsZero() {
				delete(u.wakes, svc.Id)
			} else {
				u.wakes[svc.Id] = w
			}
		}
	})
	clear(u.dirtyServices)
	clear(u.dirtyNodes)
	clear(u.started)
	// Task actions first: a status write can fail because the service
	// changed meanwhile, and must not take the tasks down with it.
	err := tasks.Commit(ctx, u.cfg.Proposer)
	return errors.Join(err, statuses.Commit(ctx, u.cfg.Proposer))
}

// services returns the services a pass looks at, in ID order: every one
// on a full pass; else those events touched, directly, through their
// tasks' nodes, or (for global services) through any node, and those whose
// wake time has come.
func (u *Updater) services(tx store.ReadTx, full bool, now time.Time) []*shoalpb.Service {
	if full {
		all := tx.Services()
		live := map[string]bool{}
		for _, svc := range all {
			live[svc.Id] = true
		}
		for id := range u.runs {
			if !live[id] {
				delete(u.runs, id)
			}
		}
		for id := range u.wakes {
			if !live[id] {
				delete(u.wakes, id)
			}
		}
		slices.SortFunc(all, func(a, b *shoalpb.Service) int { return strings.Compare(a.Id, b.Id) })
		return all
	}
	ids := map[string]struct{}{}
	for id := range u.dirtyServices {
		ids[id] = struct{}{}
	}
	for id, w := range u.wakes {
		if !w.After(now) {
			ids[id] = struct{}{}
		}
	}
	if len(u.dirtyNodes) > 0 {
		for nodeID := range u.dirtyNodes {
			for _, t := range tx.TasksByNode(nodeID) {
				ids[t.ServiceId] = struct{}{}
			}
		}
		for _, svc := range tx.Services() {
			if orchestrator.ModeOf(svc) == orchestrator.ModeGlobal {
				ids[svc.Id] = struct{}{}
			}
		}
	}
	var out []*shoalpb.Service
	for _, id := range orchestrator.SortedKeys(ids) {
		if svc := tx.Service(id); svc != nil {
			out = append(out, svc)
		} else {
			delete(u.runs, id)
			delete(u.wakes, id)
		}
	}
	return out
}
