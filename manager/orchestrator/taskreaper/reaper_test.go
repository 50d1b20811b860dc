package taskreaper_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/shoal-project/shoal/manager/orchestrator"
	"github.com/shoal-project/shoal/manager/orchestrator/orchestratortest"
	"github.com/shoal-project/shoal/manager/orchestrator/taskreaper"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

const (
	running  = shoalpb.TaskState_TASK_STATE_RUNNING
	pending  = shoalpb.TaskState_TASK_STATE_PENDING
	shutdown = shoalpb.TaskState_TASK_STATE_SHUTDOWN
	failed   = shoalpb.TaskState_TASK_STATE_FAILED
	complete = shoalpb.TaskState_TASK_STATE_COMPLETE
)

func startReaper(t *testing.T, e *orchestratortest.Env) {
	t.Helper()
	r, err := taskreaper.New(e.Config())
	if err != nil {
		t.Fatal(err)
	}
	e.Go(r.Run)
}

// task returns a task of svc made at time at (ns after the clock's start).
func task(id, svc string, slot uint64, node string, at int64, desired, observed shoalpb.TaskState) *shoalpb.Task {
	ts := orchestratortest.Start.UnixNano() + at
	return &shoalpb.Task{
		Id: id, ServiceId: svc, Slot: slot, NodeId: node, SpecVersion: 1,
		Meta:         &shoalpb.Meta{CreatedAt: ts, UpdatedAt: ts},
		DesiredState: desired,
		Status:       &shoalpb.TaskStatus{State: observed, Timestamp: ts},
	}
}

func create(e *orchestratortest.Env, tasks ...*shoalpb.Task) {
	e.T.Helper()
	var actions []*shoalpb.StoreAction
	for _, t := range tasks {
		actions = append(actions, orchestrator.CreateTaskAction(t))
	}
	e.Propose(actions...)
}

// deadHistory returns n dead tasks in one slot (or on one node), oldest
// first, IDs prefix-1..prefix-n.
func deadHistory(prefix, svc string, slot uint64, node string, n int) []*shoalpb.Task {
	var out []*shoalpb.Task
	for i := 1; i <= n; i++ {
		out = append(out, task(fmt.Sprintf("%s-%02d", prefix, i), svc, slot, node, int64(i), shutdown, failed))
	}
	return out
}

func ids(e *orchestratortest.Env, svc string) string {
	var out []string
	for _, t := range e.Tasks(svc) {
		out = append(out, t.Id)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func waitIDs(t *testing.T, e *orchestratortest.Env, svc, want string) {
	t.Helper()
	e.WaitFor("tasks of "+svc+" to be "+want, func(store.ReadTx) bool { return ids(e, svc) == want },
		func() string { return "have " + ids(e, svc) })
}

func setLimit(e *orchestratortest.Env, limit int64) {
	e.T.Helper()
	c := &shoalpb.Cluster{Id: "c", Spec: &shoalpb.ClusterSpec{Orchestration: &shoalpb.OrchestrationSpec{TaskHistoryRetentionLimit: limit}}}
	kind := shoalpb.ActionKind_ACTION_KIND_CREATE
	e.Store.View(func(tx store.ReadTx) {
		if cur := tx.Cluster(); cur != nil {
			kind, c.Meta = shoalpb.ActionKind_ACTION_KIND_UPDATE, cur.Meta
		}
	})
	e.Propose(&shoalpb.StoreAction{Kind: kind, Target: &shoalpb.StoreAction_Cluster{Cluster: c}})
}

func TestKeepsFiveDeadTasksPerSlot(t *testing.T) {
	e := orchestratortest.NewEnv(t)
	e.AddNodes(orchestratortest.Node("n1"))
	e.CreateService(orchestratortest.Replicated("web", 2))
	e.CreateService(orchestratortest.Global("agent"))
	create(e, deadHistory("a", "web", 1, "n1", 8)...)
	create(e, task("a-live", "web", 1, "n1", 100, running, running))
	create(e, deadHistory("b", "web", 2, "n1", 3)...)
	create(e, deadHistory("g", "agent", 0, "n1", 7)...)
	startReaper(t, e)

	waitIDs(t, e, "web", "a-04,a-05,a-06,a-07,a-08,a-live,b-01,b-02,b-03")
	waitIDs(t, e, "agent", "g-03,g-04,g-05,g-06,g-07")

	// One more dead task in slot 1: the oldest kept goes.
	create(e, task("a-09", "web", 1, "n1", 9, shutdown, failed))
	waitIDs(t, e, "web", "a-05,a-06,a-07,a-08,a-09,a-live,b-01,b-02,b-03")

	// A task shut down but still running is not history yet.
	create(e, task("c-1", "web", 3, "n1", 1, shutdown, running))
	create(e, deadHistory("c", "web", 3, "n1", 7)[1:]...)
	waitIDs(t, e, "web", "a-05,a-06,a-07,a-08,a-09,a-live,b-01,b-02,b-03,c-03,c-04,c-05,c-06,c-07,c-1")
}

func TestRetentionLimitFromCluster(t *testing.T) {
	e := orchestratortest.NewEnv(t)
	e.AddNodes(orchestratortest.Node("n1"))
	e.CreateService(orchestratortest.Replicated("web", 2))
	setLimit(e, 2)
	create(e, deadHistory("a", "web", 1, "n1", 4)...)
	create(e, task("a-live", "web", 1, "n1", 100, running, running))
	// Slot 2 has no runnable task: its newest task of the current spec
	// is kept whatever the limit.
	create(e, deadHistory("b", "web", 2, "n1", 4)...)
	startReaper(t, e)
	waitIDs(t, e, "web", "a-03,a-04,a-live,b-03,b-04")

	setLimit(e, 0)
	waitIDs(t, e, "web", "a-live,b-04")

	setLimit(e, -1)
	create(e, deadHistory("c", "web", 3, "n1", 7)...)
	barrier(t, e)
	if got := ids(e, "web"); got != "a-live,b-04,c-01,c-02,c-03,c-04,c-05,c-06,c-07" {
		t.Fatalf("with a negative limit, tasks %s", got)
	}
}

// barrier makes a dead task of a service that does not exist and waits
// until the reaper deleted it: by then it handled every earlier change.
func barrier(t *testing.T, e *orchestratortest.Env) {
	t.Helper()
	id := e.IDs.New()
	create(e, task(id, "gone", 1, "", 0, shutdown, pending))
	e.WaitFor("the reaper to delete "+id, func(tx store.ReadTx) bool { return tx.Task(id) == nil }, nil)
}

func TestTasksOfRemovedService(t *testing.T) {
	e := orchestratortest.NewEnv(t)
	e.AddNodes(orchestratortest.Node("n1"), orchestratortest.Node("n2"))
	e.CreateService(orchestratortest.Replicated("web", 4))
	create(e,
		task("run", "web", 1, "n1", 1, running, running),
		task("new", "web", 2, "", 1, running, pending),
		task("dead", "web", 3, "n1", 1, shutdown, failed),
		task("lost", "web", 4, "n2", 1, running, running),
	)
	startReaper(t, e)
	e.RemoveNode("n2")
	e.RemoveService("web")
	waitIDs(t, e, "web", "run")
	if got := e.Tasks("web")[0]; got.DesiredState != shutdown {
		t.Fatalf("running task of a removed service: desired %v, want SHUTDOWN", got.DesiredState)
	}
	e.Report(map[string]shoalpb.TaskState{"run": shutdown})
	waitIDs(t, e, "web", "")
}

func TestJobCompletionsAreKept(t *testing.T) {
	e := orchestratortest.NewEnv(t)
	e.AddNodes(orchestratortest.Node("n1"))
	job := orchestratortest.ReplicatedJob("batch", 2, 2)
	job.JobStatus = &shoalpb.JobStatus{JobIteration: 1}
	e.CreateService(job)
	setLimit(e, 0)
	old := task("old", "batch", 1, "n1", 1, shutdown, complete)
	done := task("done", "batch", 1, "n1", 2, shutdown, complete)
	done.JobIteration = 1
	done2 := task("done2", "batch", 2, "n1", 3, shutdown, complete)
	done2.JobIteration = 1
	retry := task("retry", "batch", 2, "n1", 4, shutdown, failed)
	retry.JobIteration = 1
	create(e, old, done, done2, retry)
	startReaper(t, e)
	// The completions of iteration 1 stay; the failed retry after done2
	// is the newest of its slot, and kept too.
	waitIDs(t, e, "batch", "done,done2,retry")
}

func TestManyDeletionsInFewCommands(t *testing.T) {
	e := orchestratortest.NewEnv(t)
	e.AddNodes(orchestratortest.Node("n1"))
	e.CreateService(orchestratortest.Replicated("web", 1))
	for i := 0; i < 3; i++ {
		var batch []*shoalpb.Task
		for j := 1; j <= 200; j++ {
			batch = append(batch, task(fmt.Sprintf("d-%d-%03d", i, j), "web", 1, "n1", int64(i*1000+j), shutdown, failed))
		}
		create(e, batch...)
	}
	create(e, task("live", "web", 1, "n1", 10000, running, running))
	e.Proposer.Reset()
	startReaper(t, e)
	e.WaitFor("600 dead tasks cut to 5", func(tx store.ReadTx) bool { return len(tx.TasksByService("web")) == 6 }, nil)
	if cmds := e.Proposer.Commands(); len(cmds) > 2 {
		t.Fatalf("%d commands (%v) to delete 595 tasks", len(cmds), cmds)
	}
}
