package orchestrator

import (
	"fmt"

	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Start-up order (compose's depends_on): a service whose depends_on names
// services that are not ready gets no tasks yet. Only the first tasks of a
// service are held back: once it has tasks it is reconciled as any other,
// and a dependency that later fails stops nothing.

// DependencyReady reports whether service dep is in the state condition c
// asks for:
//
//   - STARTED and HEALTHY: every task it wants is RUNNING. A task with a
//     health check reports RUNNING only once the check passes, so the two
//     conditions are the same here. A replicated service needs as many
//     running tasks as replicas, a global service at least one and all
//     of its runnable ones; a job counts as started once its current run
//     has a task and none waits to start (running or completed).
//   - COMPLETED_SUCCESSFULLY: a job whose current run completed: as many
//     completions as total_completions (replicated job), or at least one
//     with every runnable task completed (global job). Other services never
//     complete.
func DependencyReady(tx store.ReadTx, dep *shoalpb.Service, c shoalpb.ServiceDependency_Condition) bool {
	mode := ModeOf(dep)
	tasks := tx.TasksByService(dep.GetId())
	if mode.IsJob() {
		iter := JobIteration(dep)
		cur := tasks[:0:0]
		for _, t := range tasks {
			if t.GetJobIteration() == iter {
				cur = append(cur, t)
			}
		}
		tasks = cur
	}
	if c == shoalpb.ServiceDependency_CONDITION_COMPLETED_SUCCESSFULLY {
		return jobCompleted(dep, mode, tasks)
	}
	running, runnable := 0, 0
	for _, t := range tasks {
		if !IsRunnable(t) {
			continue
		}
		runnable++
		if t.GetDesiredState() == shoalpb.TaskState_TASK_STATE_RUNNING && t.GetStatus().GetState() == shoalpb.TaskState_TASK_STATE_RUNNING {
			running++
		}
	}
	switch mode {
	case ModeReplicated:
		return uint64(running) >= dep.GetSpec().GetReplicated().GetReplicas()
	case ModeGlobal:
		return running > 0 && running == runnable
	case ModeReplicatedJob, ModeGlobalJob:
		started := false
		for _, t := range tasks {
			s := t.GetStatus().GetState()
			if IsRunnable(t) && s < shoalpb.TaskState_TASK_STATE_RUNNING {
				return false
			}
			started = started || s == shoalpb.TaskState_TASK_STATE_RUNNING || s == shoalpb.TaskState_TASK_STATE_COMPLETE
		}
		return started
	}
	return false
}

func jobCompleted(dep *shoalpb.Service, mode Mode, tasks []*shoalpb.Task) bool {
	switch mode {
	case ModeReplicatedJob:
		_, total := JobCounts(dep.GetSpec().GetReplicatedJob())
		done := map[uint64]bool{}
		for _, t := range tasks {
			if IsCompleted(t) {
				done[t.GetSlot()] = true
			}
		}
		return uint64(len(done)) >= total
	case ModeGlobalJob:
		completed := false
		for _, t := range tasks {
			if IsCompleted(t) {
				completed = true
			} else if IsRunnable(t) {
				return false
			}
		}
		return completed
	}
	return false
}

// DependenciesReady reports whether every service svc depends on is ready
// (DependencyReady); if not, wait says which one is awaited and for what.
func DependenciesReady(tx store.ReadTx, svc *shoalpb.Service) (ready bool, wait string) {
	w := unreadyDependencies(tx, svc, true)
	if len(w) == 0 {
		return true, ""
	}
	if w[0].Missing {
		return false, fmt.Sprintf("service %s, which does not exist", w[0].Service)
	}
	return false, fmt.Sprintf("service %s to be %s", w[0].Service, conditionWord(w[0].Condition))
}

// DependencyWait is a dependency a held-back service waits for.
type DependencyWait struct {
	// Service is the name depends_on gives.
	Service   string
	Condition shoalpb.ServiceDependency_Condition
	// Missing: no service has that name.
	Missing bool
}

// HeldBack returns what svc waits for while the orchestrators hold it
// back (DependencyGate.Hold): it has no tasks at all and some of its
// dependencies are not ready; then every dependency not ready, in
// depends_on order. It returns nil for a service that is not held back.
func HeldBack(tx store.ReadTx, svc *shoalpb.Service) []DependencyWait {
	if len(svc.GetSpec().GetDependsOn()) == 0 || len(tx.TasksByService(svc.GetId())) > 0 {
		return nil
	}
	return unreadyDependencies(tx, svc, false)
}

// unreadyDependencies returns svc's dependencies that are not ready
// (DependencyReady), only the first one when first is set.
func unreadyDependencies(tx store.ReadTx, svc *shoalpb.Service, first bool) []DependencyWait {
	var out []DependencyWait
	for _, d := range svc.GetSpec().GetDependsOn() {
		dep := tx.ServiceByName(d.GetService())
		if dep != nil && DependencyReady(tx, dep, d.GetCondition()) {
			continue
		}
		out = append(out, DependencyWait{Service: d.GetService(), Condition: d.GetCondition(), Missing: dep == nil})
		if first {
			break
		}
	}
	return out
}

func conditionWord(c shoalpb.ServiceDependency_Condition) string {
	switch c {
	case shoalpb.ServiceDependency_CONDITION_HEALTHY:
		return "running and healthy"
	case shoalpb.ServiceDependency_CONDITION_COMPLETED_SUCCESSFULLY:
		return "completed successfully"
	}
	return "running"
}

// DependencyGate is what an orchestrator keeps for start-up order: the
// services it holds back, so that any change that may make their
// dependencies ready has them reconciled again. It is not safe for
// concurrent use; a loop owns it.
type DependencyGate struct {
	waiting map[string]struct{}
}

// NewDependencyGate returns a gate holding nothing back.
func NewDependencyGate() *DependencyGate {
	return &DependencyGate{waiting: map[string]struct{}{}}
}

// Hold reports whether svc must not get tasks yet: it has none
// (hasTasks false) and a dependency is not ready. The gate remembers the
// services it holds until they are let through or forgotten.
func (g *DependencyGate) Hold(tx store.ReadTx, svc *shoalpb.Service, hasTasks bool) (hold bool, wait string) {
	if hasTasks || len(svc.GetSpec().GetDependsOn()) == 0 {
		delete(g.waiting, svc.GetId())
		return false, ""
	}
	ready, wait := DependenciesReady(tx, svc)
	if ready {
		delete(g.waiting, svc.GetId())
		return false, ""
	}
	g.waiting[svc.GetId()] = struct{}{}
	return true, wait
}

// Observe marks the held-back services dirty (adds their IDs to dirty)
// when ev may make a dependency ready: a service written or removed, a
// task made or deleted, or a task whose desired state changed or whose
// observed state reached or left RUNNING or reached COMPLETE. It reads
// nothing and does nothing while no service is held back.
func (g *DependencyGate) Observe(ev store.Event, dirty map[string]struct{}) {
	if len(g.waiting) == 0 || !dependencyEvent(ev) {
		return
	}
	for id := range g.waiting {
		dirty[id] = struct{}{}
	}
}

func dependencyEvent(ev store.Event) bool {
	switch obj := ev.Object.(type) {
	case *shoalpb.Service:
		return true
	case *shoalpb.Task:
		old, _ := ev.Old.(*shoalpb.Task)
		if ev.Kind != store.EventUpdate || old == nil {
			return true
		}
		if old.GetDesiredState() != obj.GetDesiredState() {
			return true
		}
		was, is := old.GetStatus().GetState(), obj.GetStatus().GetState()
		return was != is && (was == shoalpb.TaskState_TASK_STATE_RUNNING || is == shoalpb.TaskState_TASK_STATE_RUNNING || is == shoalpb.TaskState_TASK_STATE_COMPLETE)
	}
	return false
}

// Forget drops a removed service.
func (g *DependencyGate) Forget(id string) { delete(g.waiting, id) }

// Retain keeps only the held-back services live accepts (after a full
// pass, so services removed unseen are not kept).
func (g *DependencyGate) Retain(live func(id string) bool) {
	for id := range g.waiting {
		if !live(id) {
			delete(g.waiting, id)
		}
	}
}
