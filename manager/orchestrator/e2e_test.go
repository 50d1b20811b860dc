package orchestrator_test

import (
	"context"
	"testing"
	"time"

	"github.com/shoal-project/shoal/manager/orchestrator/constraintenforcer"
	"github.com/shoal-project/shoal/manager/orchestrator/global"
	"github.com/shoal-project/shoal/manager/orchestrator/jobs"
	"github.com/shoal-project/shoal/manager/orchestrator/orchestratortest"
	"github.com/shoal-project/shoal/manager/orchestrator/replicated"
	"github.com/shoal-project/shoal/manager/orchestrator/taskreaper"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

const (
	running  = shoalpb.TaskState_TASK_STATE_RUNNING
	ready    = shoalpb.TaskState_TASK_STATE_READY
	shutdown = shoalpb.TaskState_TASK_STATE_SHUTDOWN
	failed   = shoalpb.TaskState_TASK_STATE_FAILED
	complete = shoalpb.TaskState_TASK_STATE_COMPLETE
)

type runner interface{ Run(context.Context) error }

// startAll runs every loop on the environment's store, as a leader would.
func startAll(t *testing.T, e *orchestratortest.Env) {
	t.Helper()
	cfg := e.Config()
	var loops []runner
	r, err := replicated.New(cfg)
	must(t, err)
	g, err := global.New(cfg)
	must(t, err)
	j, err := jobs.New(cfg)
	must(t, err)
	tr, err := taskreaper.New(cfg)
	must(t, err)
	ce, err := constraintenforcer.New(cfg)
	must(t, err)
	loops = append(loops, r, g, j, tr, ce)
	for _, l := range loops {
		e.Go(l.Run)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func runnableOf(tasks []*shoalpb.Task) map[uint64]*shoalpb.Task {
	out := map[uint64]*shoalpb.Task{}
	for _, t := range orchestratortest.Runnable(tasks) {
		out[t.Slot] = t
	}
	return out
}

func TestAllLoopsTogether(t *testing.T) {
	e := orchestratortest.NewEnv(t)
	e.AddNodes(orchestratortest.Node("n1", "zone=a"), orchestratortest.Node("n2", "zone=a"), orchestratortest.Node("n3", "zone=b"))
	e.Propose(&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Cluster{Cluster: &shoalpb.Cluster{
		Id: "c", Spec: &shoalpb.ClusterSpec{Orchestration: &shoalpb.OrchestrationSpec{TaskHistoryRetentionLimit: 1}},
	}}})
	startAll(t, e)

	web := orchestratortest.Replicated("web", 2)
	web.Spec.Task.Placement = &shoalpb.Placement{Constraints: []string{"node.labels.zone==a"}}
	e.CreateService(web)
	e.CreateService(orchestratortest.Global("agent"))
	e.CreateService(orchestratortest.ReplicatedJob("batch", 1, 2))

	// Each loop makes its service's tasks.
	slots := runnableOf(e.WaitTasks("web", "2 web tasks", func(ts []*shoalpb.Task) bool { return len(orchestratortest.Runnable(ts)) == 2 }))
	e.WaitTasks("agent", "an agent on each node", func(ts []*shoalpb.Task) bool { return len(orchestratortest.Runnable(ts)) == 3 })
	batch := e.WaitTasks("batch", "the first batch task", func(ts []*shoalpb.Task) bool { return len(ts) == 1 })

	// A scheduler and workers, by hand.
	e.Assign(slots[1].Id, "n1")
	e.Assign(slots[2].Id, "n2")
	e.Report(map[string]shoalpb.TaskState{slots[1].Id: running, slots[2].Id: running, batch[0].Id: complete})
	e.WaitTasks("batch", "the second batch task", func(ts []*shoalpb.Task) bool { return len(ts) == 2 && len(orchestratortest.Runnable(ts)) == 1 })

	// n2 leaves zone a: the enforcer stops web's task there and the
	// replicated orchestrator replaces it at once; the agent stays.
	e.UpdateNode("n2", func(n *shoalpb.Node) { n.Spec.Labels["zone"] = "b" })
	tasks := e.WaitTasks("web", "slot 2 replaced", func(ts []*shoalpb.Task) bool {
		r := runnableOf(ts)[2]
		return r != nil && r.Id != slots[2].Id
	})
	if r := runnableOf(tasks)[2]; r.DesiredState != running || r.NodeId != "" {
		t.Fatalf("replacement of an evicted task: %v", r)
	}
	for _, task := range tasks {
		if task.Id == slots[2].Id && (task.DesiredState != shutdown || task.Status.Err != constraintenforcer.ErrConstraint) {
			t.Fatalf("evicted task: desired %v err %q", task.DesiredState, task.Status.Err)
		}
	}

	// Slot 1 fails twice; each failure is restarted after the delay and
	// the reaper keeps one dead task of the slot.
	for i := 0; i < 2; i++ {
		cur := runnableOf(e.Tasks("web"))[1]
		e.Report(map[string]shoalpb.TaskState{cur.Id: failed})
		e.WaitTasks("web", "slot 1 restarted", func(ts []*shoalpb.Task) bool {
			r := runnableOf(ts)[1]
			return r != nil && r.Id != cur.Id && r.DesiredState == ready
		})
		e.Clock.Advance(5 * time.Second)
		e.WaitTasks("web", "slot 1 running again", func(ts []*shoalpb.Task) bool { return runnableOf(ts)[1].DesiredState == running })
	}
	e.WaitTasks("web", "slot 1 history cut to 1", func(ts []*shoalpb.Task) bool {
		n := 0
		for _, task := range ts {
			if task.Slot == 1 {
				n++
			}
		}
		return n == 2
	})

	// The job finishes.
	last := orchestratortest.Runnable(e.Tasks("batch"))[0]
	e.Report(map[string]shoalpb.TaskState{last.Id: complete})
	e.WaitTasks("batch", "the job done", func(ts []*shoalpb.Task) bool { return len(orchestratortest.Runnable(ts)) == 0 })

	// Removing the global service: the reaper shuts its tasks down, and
	// deletes them once the workers report them stopped (or, for those
	// never reported on, at once).
	agents := e.Tasks("agent")
	started := map[string]shoalpb.TaskState{}
	for _, a := range agents {
		started[a.Id] = running
	}
	e.Report(started)
	e.RemoveService("agent")
	e.WaitTasks("agent", "agents shut down", func(ts []*shoalpb.Task) bool { return len(orchestratortest.Runnable(ts)) == 0 && len(ts) > 0 })
	stopped := map[string]shoalpb.TaskState{}
	for _, a := range agents {
		stopped[a.Id] = shutdown
	}
	e.Report(stopped)
	e.WaitFor("agent tasks deleted", func(tx store.ReadTx) bool { return len(tx.TasksByService("agent")) == 0 }, nil)

	// Draining n1 moves web's slot 1 off it at once.
	before := runnableOf(e.Tasks("web"))[1]
	e.Assign(before.Id, "n1")
	e.SetAvailability("n1", shoalpb.NodeAvailability_NODE_AVAILABILITY_DRAIN)
	e.WaitTasks("web", "slot 1 moved off the drained node", func(ts []*shoalpb.Task) bool {
		r := runnableOf(ts)[1]
		return r != nil && r.Id != before.Id && r.NodeId == "" && r.DesiredState == running
	})
	if got := len(orchestratortest.Runnable(e.Tasks("web"))); got != 2 {
		t.Fatalf("%d runnable web tasks, want 2", got)
	}
}
