package orchestrator_test

import (
	"fmt"
	"testing"

	"github.com/shoal-project/shoal/manager/orchestrator"
	"github.com/shoal-project/shoal/manager/orchestrator/orchestratortest"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

const (
	started   = shoalpb.ServiceDependency_CONDITION_STARTED
	healthy   = shoalpb.ServiceDependency_CONDITION_HEALTHY
	completed = shoalpb.ServiceDependency_CONDITION_COMPLETED_SUCCESSFULLY
	pending   = shoalpb.TaskState_TASK_STATE_PENDING
)

// depTask is a task of svc in slot (or on node, for global modes) with
// desired and observed states.
func depTask(svc *shoalpb.Service, n int, slot uint64, node string, desired, observed shoalpb.TaskState) *shoalpb.Task {
	t := orchestrator.NewTask(svc, slot, node, fmt.Sprintf("%s-t%d", svc.Id, n), orchestratortest.Start)
	t.DesiredState = desired
	t.Status = &shoalpb.TaskStatus{State: observed}
	return t
}

func TestDependencyReady(t *testing.T) {
	rep := orchestratortest.Replicated("rep", 2)
	zero := orchestratortest.Replicated("zero", 0)
	glob := orchestratortest.Global("glob")
	rjob := orchestratortest.ReplicatedJob("rjob", 1, 2)
	rjob.JobStatus = &shoalpb.JobStatus{JobIteration: 3}
	gjob := orchestratortest.GlobalJob("gjob")
	for _, tc := range []struct {
		name  string
		dep   *shoalpb.Service
		tasks []*shoalpb.Task
		cond  shoalpb.ServiceDependency_Condition
		want  bool
	}{
		{"replicated, none running", rep, []*shoalpb.Task{depTask(rep, 1, 1, "", running, pending)}, started, false},
		{"replicated, one of two running", rep, []*shoalpb.Task{
			depTask(rep, 1, 1, "", running, running), depTask(rep, 2, 2, "", running, pending)}, healthy, false},
		{"replicated, all running", rep, []*shoalpb.Task{
			depTask(rep, 1, 1, "", running, running), depTask(rep, 2, 2, "", running, running)}, healthy, true},
		{"replicated, a running task being shut down does not count", rep, []*shoalpb.Task{
			depTask(rep, 1, 1, "", running, running), depTask(rep, 2, 2, "", shutdown, running)}, started, false},
		{"replicated, no replicas", zero, nil, started, true},
		{"replicated never completes", rep, []*shoalpb.Task{
			depTask(rep, 1, 1, "", shutdown, complete), depTask(rep, 2, 2, "", shutdown, complete)}, completed, false},
		{"global, no task", glob, nil, started, false},
		{"global, one of two running", glob, []*shoalpb.Task{
			depTask(glob, 1, 0, "n1", running, running), depTask(glob, 2, 0, "n2", running, pending)}, started, false},
		{"global, all running", glob, []*shoalpb.Task{
			depTask(glob, 1, 0, "n1", running, running), depTask(glob, 2, 0, "n2", running, running),
			depTask(glob, 3, 0, "n3", shutdown, failed)}, started, true},
		{"replicated job, one of two completions", rjob, []*shoalpb.Task{
			depTask(rjob, 1, 1, "", shutdown, complete), depTask(rjob, 2, 2, "", running, running)}, completed, false},
		{"replicated job, completed", rjob, []*shoalpb.Task{
			depTask(rjob, 1, 1, "", shutdown, complete), depTask(rjob, 2, 2, "", shutdown, complete)}, completed, true},
		{"replicated job, one slot completed twice", rjob, []*shoalpb.Task{
			depTask(rjob, 1, 1, "", shutdown, complete), depTask(rjob, 2, 1, "", shutdown, complete)}, completed, false},
		{"replicated job, completions of an older run", rjob, func() []*shoalpb.Task {
			a, b := depTask(rjob, 1, 1, "", shutdown, complete), depTask(rjob, 2, 2, "", shutdown, complete)
			a.JobIteration, b.JobIteration = 2, 2
			return []*shoalpb.Task{a, b}
		}(), completed, false},
		{"replicated job started", rjob, []*shoalpb.Task{depTask(rjob, 1, 1, "", running, running)}, started, true},
		{"replicated job not started", rjob, []*shoalpb.Task{depTask(rjob, 1, 1, "", running, pending)}, started, false},
		{"global job, one node still running", gjob, []*shoalpb.Task{
			depTask(gjob, 1, 0, "n1", shutdown, complete), depTask(gjob, 2, 0, "n2", running, running)}, completed, false},
		{"global job, a failed task not yet replaced", gjob, []*shoalpb.Task{
			depTask(gjob, 1, 0, "n1", shutdown, complete), depTask(gjob, 2, 0, "n2", running, failed)}, completed, false},
		{"global job completed", gjob, []*shoalpb.Task{
			depTask(gjob, 1, 0, "n1", shutdown, complete), depTask(gjob, 2, 0, "n2", shutdown, complete)}, completed, true},
		{"global job, no task yet", gjob, nil, completed, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := orchestratortest.NewEnv(t)
			e.CreateService(tc.dep)
			for _, task := range tc.tasks {
				e.Propose(orchestrator.CreateTaskAction(task))
			}
			var got bool
			e.Store.View(func(tx store.ReadTx) { got = orchestrator.DependencyReady(tx, tc.dep, tc.cond) })
			if got != tc.want {
				t.Fatalf("ready = %v, want %v; tasks:\n%s", got, tc.want, orchestratortest.Dump(tc.tasks))
			}
		})
	}
}

// dependsOn makes svc wait for the named services with condition c.
func dependsOn(svc *shoalpb.Service, c shoalpb.ServiceDependency_Condition, names ...string) *shoalpb.Service {
	for _, n := range names {
		svc.Spec.DependsOn = append(svc.Spec.DependsOn, &shoalpb.ServiceDependency{Service: n, Condition: c})
	}
	return svc
}

func barrierAll(e *orchestratortest.Env) {
	e.Barrier(func(id string) *shoalpb.Service { return orchestratortest.Replicated(id, 1) })
}

func noTasks(t *testing.T, e *orchestratortest.Env, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if tasks := e.Tasks(id); len(tasks) != 0 {
			t.Fatalf("service %s got tasks before its dependencies were ready:\n%s", id, orchestratortest.Dump(tasks))
		}
	}
}

func TestDependentsWaitForRunningDependencies(t *testing.T) {
	e := orchestratortest.NewEnv(t)
	e.AddNodes(orchestratortest.Node("n1"), orchestratortest.Node("n2"))
	startAll(t, e)
	e.CreateService(orchestratortest.Replicated("db", 2))
	e.CreateService(dependsOn(orchestratortest.Replicated("app", 2), healthy, "db"))
	e.CreateService(dependsOn(orchestratortest.Global("agent"), started, "db"))
	dbTasks := e.WaitTasks("db", "db's tasks", func(ts []*shoalpb.Task) bool { return len(ts) == 2 })
	barrierAll(e)
	noTasks(t, e, "app", "agent")

	e.Assign(dbTasks[0].Id, "n1")
	e.Assign(dbTasks[1].Id, "n2")
	e.Report(map[string]shoalpb.TaskState{dbTasks[0].Id: running})
	barrierAll(e)
	noTasks(t, e, "app", "agent")

	// The last dependency task running is the only event: it alone must
	// wake the dependents.
	e.Report(map[string]shoalpb.TaskState{dbTasks[1].Id: running})
	appTasks := e.WaitTasks("app", "app's tasks once db runs", func(ts []*shoalpb.Task) bool { return len(orchestratortest.Runnable(ts)) == 2 })
	e.WaitTasks("agent", "agent's tasks once db runs", func(ts []*shoalpb.Task) bool { return len(orchestratortest.Runnable(ts)) == 2 })

	// A service that has tasks keeps them when a dependency fails.
	e.Report(map[string]shoalpb.TaskState{dbTasks[0].Id: failed})
	e.WaitTasks("db", "db's failed task replaced", func(ts []*shoalpb.Task) bool { return len(ts) == 3 })
	barrierAll(e)
	for _, task := range appTasks {
		var cur *shoalpb.Task
		e.Store.View(func(tx store.ReadTx) { cur = tx.Task(task.Id) })
		if cur.DesiredState != running {
			t.Fatalf("app's task %s desired %v after db failed; it must be left alone", task.Id, cur.DesiredState)
		}
	}
}

func TestDependentsWaitForJobCompletion(t *testing.T) {
	e := orchestratortest.NewEnv(t)
	e.AddNodes(orchestratortest.Node("n1"))
	startAll(t, e)
	e.CreateService(orchestratortest.ReplicatedJob("migrate", 1, 2))
	e.CreateService(dependsOn(orchestratortest.Replicated("api", 1), completed, "migrate"))
	e.CreateService(dependsOn(orchestratortest.GlobalJob("warm"), completed, "migrate"))
	e.CreateService(dependsOn(orchestratortest.ReplicatedJob("report", 1, 1), started, "api"))

	first := e.WaitTasks("migrate", "the first migration", func(ts []*shoalpb.Task) bool { return len(ts) == 1 })[0]
	e.Report(map[string]shoalpb.TaskState{first.Id: complete})
	second := e.WaitTasks("migrate", "the second migration", func(ts []*shoalpb.Task) bool { return len(ts) == 2 })[1]
	barrierAll(e)
	noTasks(t, e, "api", "warm", "report")

	e.Report(map[string]shoalpb.TaskState{second.Id: complete})
	api := e.WaitTasks("api", "api's task once migrate completed", func(ts []*shoalpb.Task) bool { return len(ts) == 1 })[0]
	e.WaitTasks("warm", "warm's task once migrate completed", func(ts []*shoalpb.Task) bool { return len(ts) == 1 })
	barrierAll(e)
	noTasks(t, e, "report")

	e.Assign(api.Id, "n1")
	e.Report(map[string]shoalpb.TaskState{api.Id: running})
	e.WaitTasks("report", "report's task once api runs", func(ts []*shoalpb.Task) bool { return len(ts) == 1 })
}

func TestDependentWaitsForAServiceCreatedLater(t *testing.T) {
	e := orchestratortest.NewEnv(t)
	startAll(t, e)
	e.CreateService(dependsOn(orchestratortest.Replicated("app", 1), started, "db"))
	barrierAll(e)
	noTasks(t, e, "app")
	// A dependency with nothing to run is ready as soon as it exists.
	e.CreateService(orchestratortest.Replicated("db", 0))
	e.WaitTasks("app", "app's task once db exists", func(ts []*shoalpb.Task) bool { return len(ts) == 1 })
}
