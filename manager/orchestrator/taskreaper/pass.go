package taskreaper

import (
	"cmp"
	"slices"
	"time"

	"github.com/shoal-project/shoal/manager/orchestrator"
	"github.com/shoal-project/shoal/manager/orchestrator/restart"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// pass is one reaping pass over a store view.
type pass struct {
	tx        store.ReadTx
	b         *orchestrator.Batch
	now       time.Time
	limit     int64
	nodes     orchestrator.Nodes
	byService map[string][]*shoalpb.Task
}

func (p *pass) tasksOf(serviceID string) []*shoalpb.Task {
	ts, ok := p.byService[serviceID]
	if !ok {
		ts = p.tx.TasksByService(serviceID)
		p.byService[serviceID] = ts
	}
	return ts
}

func (p *pass) byServiceIDs(keys map[restart.SlotKey]struct{}) map[string]struct{} {
	ids := map[string]struct{}{}
	for k := range keys {
		ids[k.ServiceID] = struct{}{}
	}
	return ids
}

func sortedKeys(m map[restart.SlotKey][]*shoalpb.Task) []restart.SlotKey {
	keys := make([]restart.SlotKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b restart.SlotKey) int {
		if c := cmp.Compare(a.ServiceID, b.ServiceID); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Slot, b.Slot); c != 0 {
			return c
		}
		return cmp.Compare(a.NodeID, b.NodeID)
	})
	return keys
}

// gone reports whether t will never be reported on again: it was never
// assigned, or its node was removed.
func (p *pass) gone(t *shoalpb.Task) bool {
	if t.NodeId == "" || t.GetStatus().GetState() < shoalpb.TaskState_TASK_STATE_ASSIGNED {
		return true
	}
	_, ok := p.nodes[t.NodeId]
	return !ok
}

// dead reports whether t is history: not wanted running, and stopped or
// never to be heard of again.
func (p *pass) dead(t *shoalpb.Task) bool {
	return !orchestrator.IsRunnable(t) && (orchestrator.HasStopped(t) || p.gone(t))
}

// reap handles the tasks of one slot.
func (p *pass) reap(k restart.SlotKey, tasks []*shoalpb.Task) {
	orchestrator.SortByAge(tasks)
	svc := p.tx.Service(k.ServiceID)
	if svc == nil {
		for _, t := range tasks {
			switch {
			case orchestrator.HasStopped(t) || p.gone(t):
				p.b.RemoveTask(t, nil)
			case orchestrator.IsRunnable(t):
				p.b.Shutdown(t, p.now)
			}
		}
		return
	}
	if p.limit < 0 {
		return
	}
	keep := p.protected(svc, k, tasks)
	kept := int64(0)
	for i := len(tasks) - 1; i >= 0; i-- {
		t := tasks[i]
		if !p.dead(t) {
			continue
		}
		if keep[t.Id] || kept < p.limit {
			kept++
			continue
		}
		p.b.RemoveTask(t, nil)
	}
}

// protected returns the tasks of one slot of svc the orchestrators still
// read: completed tasks of a job's current iteration, and the newest task
// of a slot with no runnable task, if made from the current spec (and, for
// a global service, if its node still exists).
func (p *pass) protected(svc *shoalpb.Service, k restart.SlotKey, tasks []*shoalpb.Task) map[string]bool {
	out := map[string]bool{}
	job := orchestrator.ModeOf(svc).IsJob()
	iter := orchestrator.JobIteration(svc)
	runnable := false
	for _, t := range tasks {
		runnable = runnable || orchestrator.IsRunnable(t)
		if job && t.JobIteration == iter && orchestrator.IsCompleted(t) {
			out[t.Id] = true
		}
	}
	if k.NodeID != "" && p.nodes[k.NodeID] == nil {
		return out
	}
	if last := tasks[len(tasks)-1]; !runnable && last.SpecVersion == svc.SpecVersion && (!job || last.JobIteration == iter) {
		out[last.Id] = true
	}
	return out
}
