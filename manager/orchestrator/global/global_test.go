package global_test

import (
	"testing"
	"time"

	"github.com/shoal-project/shoal/manager/orchestrator"
	"github.com/shoal-project/shoal/manager/orchestrator/global"
	"github.com/shoal-project/shoal/manager/orchestrator/orchestratortest"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

const (
	running  = shoalpb.TaskState_TASK_STATE_RUNNING
	ready    = shoalpb.TaskState_TASK_STATE_READY
	pending  = shoalpb.TaskState_TASK_STATE_PENDING
	shutdown = shoalpb.TaskState_TASK_STATE_SHUTDOWN
	failed   = shoalpb.TaskState_TASK_STATE_FAILED
)

func newEnv(t *testing.T, cfg func(*orchestrator.Config)) *orchestratortest.Env {
	t.Helper()
	e := orchestratortest.NewEnv(t)
	c := e.Config()
	if cfg != nil {
		cfg(&c)
	}
	o, err := global.New(c)
	if err != nil {
		t.Fatal(err)
	}
	e.Go(o.Run)
	return e
}

// byNode returns the runnable task on each node; it fails the test if a
// node has two.
func byNode(t *testing.T, tasks []*shoalpb.Task) map[string]*shoalpb.Task {
	t.Helper()
	out := map[string]*shoalpb.Task{}
	for _, task := range orchestratortest.Runnable(tasks) {
		if out[task.NodeId] != nil {
			t.Fatalf("node %s has two runnable tasks:\n%s", task.NodeId, orchestratortest.Dump(tasks))
		}
		out[task.NodeId] = task
	}
	return out
}

func onNodes(nodes ...string) func([]*shoalpb.Task) bool {
	return func(tasks []*shoalpb.Task) bool {
		got := map[string]bool{}
		for _, task := range orchestratortest.Runnable(tasks) {
			got[task.NodeId] = true
		}
		if len(got) != len(nodes) || len(orchestratortest.Runnable(tasks)) != len(nodes) {
			return false
		}
		for _, n := range nodes {
			if !got[n] {
				return false
			}
		}
		return true
	}
}

// barrier makes a global service and waits for its task on node n1.
func barrier(e *orchestratortest.Env) {
	e.Barrier(orchestratortest.Global)
}

func TestOneTaskPerEligibleNode(t *testing.T) {
	e := newEnv(t, nil)
	e.AddNodes(orchestratortest.Node("n1"), orchestratortest.Node("n2"), orchestratortest.Node("n3"))
	e.CreateService(orchestratortest.Global("agent"))
	tasks := e.WaitTasks("agent", "tasks on n1, n2, n3", onNodes("n1", "n2", "n3"))
	for _, task := range tasks {
		if task.Slot != 0 || task.DesiredState != running || task.Status.State != pending || task.SpecVersion != 1 || task.ServiceName != "agent" {
			t.Errorf("unexpected task %v", task)
		}
	}

	e.AddNodes(orchestratortest.Node("n4"))
	e.WaitTasks("agent", "a task on the new node", onNodes("n1", "n2", "n3", "n4"))

	e.SetAvailability("n2", shoalpb.NodeAvailability_NODE_AVAILABILITY_DRAIN)
	tasks = e.WaitTasks("agent", "the drained node's task shut down", onNodes("n1", "n3", "n4"))
	barrier(e)
	tasks = e.Tasks("agent")
	if len(tasks) != 4 || byNode(t, tasks)["n2"] != nil {
		t.Fatalf("the drained node's task was replaced:\n%s", orchestratortest.Dump(tasks))
	}

	// A paused node keeps its task, and a node paused before it got one
	// gets none.
	e.SetAvailability("n3", shoalpb.NodeAvailability_NODE_AVAILABILITY_PAUSE)
	paused := orchestratortest.Node("n5")
	paused.Spec.Availability = shoalpb.NodeAvailability_NODE_AVAILABILITY_PAUSE
	e.AddNodes(paused)
	barrier(e)
	if got := byNode(t, e.Tasks("agent")); got["n3"] == nil || got["n5"] != nil || len(got) != 3 {
		t.Fatalf("with n3 and n5 paused:\n%s", orchestratortest.Dump(e.Tasks("agent")))
	}

	// Draining is undone: the node gets a new task.
	e.SetAvailability("n2", shoalpb.NodeAvailability_NODE_AVAILABILITY_ACTIVE)
	e.WaitTasks("agent", "a task on n2 again", onNodes("n1", "n2", "n3", "n4"))
}

func TestConstraintsDecideEligibility(t *testing.T) {
	e := newEnv(t, nil)
	e.AddNodes(orchestratortest.Node("n1", "zone=a"), orchestratortest.Node("n2", "zone=a"), orchestratortest.Node("n3", "zone=b"))
	svc := orchestratortest.Global("agent")
	svc.Spec.Task.Placement = &shoalpb.Placement{Constraints: []string{"node.labels.zone==a"}}
	e.CreateService(svc)
	e.WaitTasks("agent", "tasks on the zone a nodes", onNodes("n1", "n2"))

	e.UpdateNode("n2", func(n *shoalpb.Node) { n.Spec.Labels["zone"] = "b" })
	tasks := e.WaitTasks("agent", "n2's task shut down", onNodes("n1"))
	for _, task := range tasks {
		if task.NodeId == "n2" && task.DesiredState != shutdown {
			t.Fatalf("n2's task desired %v", task.DesiredState)
		}
	}
	e.UpdateNode("n3", func(n *shoalpb.Node) { n.Spec.Labels["zone"] = "a" })
	e.WaitTasks("agent", "a task on n3, now in zone a", onNodes("n1", "n3"))
}

func TestNodeDownAndRemoved(t *testing.T) {
	e := newEnv(t, nil)
	e.AddNodes(orchestratortest.Node("n1"), orchestratortest.Node("n2"), orchestratortest.Node("n3"))
	e.CreateService(orchestratortest.Global("agent"))
	first := byNode(t, e.WaitTasks("agent", "3 tasks", onNodes("n1", "n2", "n3")))
	e.Report(map[string]shoalpb.TaskState{first["n2"].Id: running})

	e.SetNodeState("n2", shoalpb.NodeState_NODE_STATE_DOWN)
	tasks := e.WaitTasks("agent", "n2's task shut down", onNodes("n1", "n3"))
	for _, task := range tasks {
		if task.Id == first["n2"].Id && task.Status.State != running {
			t.Fatalf("the down node's task status was changed to %v", task.Status.State)
		}
	}
	e.SetNodeState("n2", shoalpb.NodeState_NODE_STATE_READY)
	tasks = e.WaitTasks("agent", "a new task on n2 once it is back", onNodes("n1", "n2", "n3"))
	if byNode(t, tasks)["n2"].Id == first["n2"].Id {
		t.Fatal("the old task on n2 was kept")
	}

	e.RemoveNode("n3")
	e.WaitTasks("agent", "the removed node's task shut down", onNodes("n1", "n2"))
}

func TestFailedTaskRestartsOnItsNode(t *testing.T) {
	e := newEnv(t, nil)
	e.AddNodes(orchestratortest.Node("n1"), orchestratortest.Node("n2"))
	e.CreateService(orchestratortest.Global("agent"))
	first := byNode(t, e.WaitTasks("agent", "2 tasks", onNodes("n1", "n2")))
	e.Report(map[string]shoalpb.TaskState{first["n1"].Id: failed})
	tasks := e.WaitTasks("agent", "a replacement on n1", func(tasks []*shoalpb.Task) bool {
		r := byNode(t, tasks)["n1"]
		return r != nil && r.Id != first["n1"].Id
	})
	if r := byNode(t, tasks)["n1"]; r.DesiredState != ready {
		t.Fatalf("replacement desired %v, want READY during the delay", r.DesiredState)
	}
	e.Clock.Advance(5 * time.Second)
	e.WaitTasks("agent", "the replacement raised to RUNNING", func(tasks []*shoalpb.Task) bool {
		r := byNode(t, tasks)["n1"]
		return r != nil && r.DesiredState == running
	})
}

func TestNodeFilterOverride(t *testing.T) {
	e := newEnv(t, func(c *orchestrator.Config) {
		c.NodeFilter = func(_ *shoalpb.TaskSpec, n *shoalpb.Node) bool { return n.Id != "n2" }
	})
	e.AddNodes(orchestratortest.Node("n1"), orchestratortest.Node("n2"))
	e.CreateService(orchestratortest.Global("agent"))
	e.WaitTasks("agent", "a task on n1 only", onNodes("n1"))
	barrier(e)
	if got := byNode(t, e.Tasks("agent")); got["n2"] != nil {
		t.Fatal("the filter's rejected node got a task")
	}
}
