package constraintenforcer_test

import (
	"testing"

	"github.com/shoal-project/shoal/manager/orchestrator"
	"github.com/shoal-project/shoal/manager/orchestrator/constraintenforcer"
	"github.com/shoal-project/shoal/manager/orchestrator/orchestratortest"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

const (
	running  = shoalpb.TaskState_TASK_STATE_RUNNING
	shutdown = shoalpb.TaskState_TASK_STATE_SHUTDOWN
	failed   = shoalpb.TaskState_TASK_STATE_FAILED
)

func start(t *testing.T, e *orchestratortest.Env) {
	t.Helper()
	en, err := constraintenforcer.New(e.Config())
	if err != nil {
		t.Fatal(err)
	}
	e.Go(en.Run)
}

// placed returns a running task on node, made at offset at, with the given
// constraints and CPU reservation (nano CPUs).
func placed(id, node string, at int64, cpu int64, constraints ...string) *shoalpb.Task {
	ts := orchestratortest.Start.UnixNano() + at
	return &shoalpb.Task{
		Id: id, ServiceId: "svc", Slot: 1, NodeId: node, SpecVersion: 1,
		Meta: &shoalpb.Meta{CreatedAt: ts, UpdatedAt: ts},
		Spec: &shoalpb.TaskSpec{
			Placement: &shoalpb.Placement{Constraints: constraints},
			Resources: &shoalpb.ResourceRequirements{Reservations: &shoalpb.Resources{NanoCpus: cpu}},
		},
		DesiredState: running,
		Status:       &shoalpb.TaskStatus{State: running, Timestamp: ts, Message: "started"},
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

func get(e *orchestratortest.Env, id string) *shoalpb.Task {
	var t *shoalpb.Task
	e.Store.View(func(tx store.ReadTx) { t = tx.Task(id) })
	return t
}

func waitEvicted(t *testing.T, e *orchestratortest.Env, id, reason string) {
	t.Helper()
	e.WaitFor(id+" evicted", func(tx store.ReadTx) bool {
		task := tx.Task(id)
		return task != nil && task.DesiredState == shutdown
	}, nil)
	got := get(e, id)
	if got.Status.Err != reason || got.Status.State != running || got.Status.Message != "started" {
		t.Fatalf("%s status %v: want err %q and the worker's state kept", id, got.Status, reason)
	}
}

// barrier misplaces a task on a node of its own and waits for its
// eviction; by then the enforcer handled every earlier change.
func barrier(t *testing.T, e *orchestratortest.Env) {
	t.Helper()
	id := e.IDs.New()
	e.AddNodes(orchestratortest.Node("node-"+id, "probe=1"))
	create(e, placed(id, "node-"+id, 0, 0, "node.labels.nope==1"))
	e.UpdateNode("node-"+id, func(n *shoalpb.Node) { n.Spec.Labels["touched"] = "1" })
	waitEvicted(t, e, id, constraintenforcer.ErrConstraint)
}

func TestLabelChangeEvictsTask(t *testing.T) {
	e := orchestratortest.NewEnv(t)
	start(t, e)
	e.AddNodes(orchestratortest.Node("n1", "zone=a"))
	create(e,
		placed("zoned", "n1", 1, 0, "node.labels.zone==a"),
		placed("free", "n1", 2, 0),
		placed("done", "n1", 3, 0, "node.labels.zone==a"),
	)
	e.Report(map[string]shoalpb.TaskState{"done": failed})
	e.UpdateNode("n1", func(n *shoalpb.Node) { n.Spec.Labels["zone"] = "b" })
	waitEvicted(t, e, "zoned", constraintenforcer.ErrConstraint)
	barrier(t, e)
	if got := get(e, "free"); got.DesiredState != running {
		t.Fatalf("a task with no constraints was stopped")
	}
	if got := get(e, "done"); got.DesiredState != running || got.Status.Err != "" {
		t.Fatalf("a task that already stopped was touched: %v", got)
	}
}

func TestRoleChangeEvictsTask(t *testing.T) {
	e := orchestratortest.NewEnv(t)
	start(t, e)
	n := orchestratortest.Node("n1")
	n.Role = shoalpb.NodeRole_NODE_ROLE_MANAGER
	e.AddNodes(n)
	create(e, placed("mgr", "n1", 1, 0, "node.role==manager"))
	barrier(t, e)
	if got := get(e, "mgr"); got.DesiredState != running {
		t.Fatal("a task on a matching node was stopped")
	}
	e.UpdateNode("n1", func(n *shoalpb.Node) { n.Role = shoalpb.NodeRole_NODE_ROLE_WORKER })
	waitEvicted(t, e, "mgr", constraintenforcer.ErrConstraint)
}

func TestShrunkResourcesEvictNewestTasks(t *testing.T) {
	e := orchestratortest.NewEnv(t)
	n := orchestratortest.Node("n1")
	n.Description.Resources = &shoalpb.Resources{NanoCpus: 4e9, MemoryBytes: 8 << 30}
	e.AddNodes(n)
	create(e, placed("a", "n1", 1, 1e9), placed("b", "n1", 2, 1e9), placed("c", "n1", 3, 1e9))
	start(t, e)
	barrier(t, e)
	e.UpdateNode("n1", func(n *shoalpb.Node) { n.Description.Resources.NanoCpus = 2e9 })
	waitEvicted(t, e, "c", constraintenforcer.ErrResources)
	barrier(t, e)
	for _, id := range []string{"a", "b"} {
		if got := get(e, id); got.DesiredState != running {
			t.Fatalf("task %s, among the oldest that fit, was stopped", id)
		}
	}
}

func TestMisplacedAtStartIsEvicted(t *testing.T) {
	e := orchestratortest.NewEnv(t)
	e.AddNodes(orchestratortest.Node("n1", "zone=b"))
	create(e, placed("zoned", "n1", 1, 0, "node.labels.zone==a"))
	start(t, e)
	waitEvicted(t, e, "zoned", constraintenforcer.ErrConstraint)
}
