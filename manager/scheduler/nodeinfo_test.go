package scheduler

import (
	"testing"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

func TestTaskActive(t *testing.T) {
	const (
		running  = shoalpb.TaskState_TASK_STATE_RUNNING
		shutdown = shoalpb.TaskState_TASK_STATE_SHUTDOWN
	)
	tests := []struct {
		name     string
		desired  shoalpb.TaskState
		observed shoalpb.TaskState
		want     bool
	}{
		{"pending to run", running, shoalpb.TaskState_TASK_STATE_PENDING, true},
		{"assigned", running, shoalpb.TaskState_TASK_STATE_ASSIGNED, true},
		{"running", running, running, true},
		{"desired ready", shoalpb.TaskState_TASK_STATE_READY, shoalpb.TaskState_TASK_STATE_PREPARING, true},
		{"completed", running, shoalpb.TaskState_TASK_STATE_COMPLETE, false},
		{"failed", running, shoalpb.TaskState_TASK_STATE_FAILED, false},
		{"rejected", running, shoalpb.TaskState_TASK_STATE_REJECTED, false},
		{"being shut down", shutdown, running, false},
		{"desired complete", shoalpb.TaskState_TASK_STATE_COMPLETE, running, false},
	}
	for _, tt := range tests {
		task := &shoalpb.Task{DesiredState: tt.desired, Status: &shoalpb.TaskStatus{State: tt.observed}}
		if got := TaskActive(task); got != tt.want {
			t.Errorf("%s: TaskActive = %v, want %v", tt.name, got, tt.want)
		}
	}
	if !TaskActive(&shoalpb.Task{}) {
		t.Error("a new task with no status should count as active")
	}
}

func TestNewNodeInfo(t *testing.T) {
	n := mkNode("n1", resources(4*cpu, 8*gib))
	shutdown := mkTask("gone", "web", onNode("n1"))
	shutdown.DesiredState = shoalpb.TaskState_TASK_STATE_SHUTDOWN
	failed := mkTask("failed", "web", onNode("n1"))
	failed.Status.State = shoalpb.TaskState_TASK_STATE_FAILED

	tasks := []*shoalpb.Task{
		mkTask("w1", "web", onNode("n1"), reserve(cpu, gib)),
		mkTask("w2", "web", onNode("n1"), reserve(cpu/2, 2*gib)),
		mkTask("d1", "db", onNode("n1"), reserve(0, 3*gib)),
		mkTask("other", "web", onNode("n2"), reserve(cpu, gib)),
		mkTask("unassigned", "web", reserve(cpu, gib)),
		shutdown,
		failed,
		nil,
	}
	ni := NewNodeInfo(n, tasks)
	if ni.Node != n {
		t.Error("Node not kept")
	}
	equalCounts(t, "ActiveTasksByService", ni.ActiveTasksByService, map[string]int{"web": 2, "db": 1})
	if ni.ActiveTasks != 3 {
		t.Errorf("ActiveTasks = %d, want 3", ni.ActiveTasks)
	}
	if got := ni.AvailableResources.GetNanoCpus(); got != 4*cpu-cpu-cpu/2 {
		t.Errorf("available CPU = %d, want %d", got, 4*cpu-cpu-cpu/2)
	}
	if got := ni.AvailableResources.GetMemoryBytes(); got != 2*gib {
		t.Errorf("available memory = %d, want %d", got, 2*gib)
	}
	if ni.UsedHostPorts == nil || len(ni.UsedHostPorts) != 0 {
		t.Errorf("UsedHostPorts = %v, want an empty map", ni.UsedHostPorts)
	}
	if n.Description.Resources.MemoryBytes != 8*gib {
		t.Error("NewNodeInfo modified the node's resources")
	}
}

func TestNewNodeInfoOvercommittedAndUndescribed(t *testing.T) {
	n := mkNode("n1", resources(cpu, gib))
	ni := NewNodeInfo(n, []*shoalpb.Task{
		mkTask("a", "web", onNode("n1"), reserve(cpu, gib)),
		mkTask("b", "web", onNode("n1"), reserve(cpu, gib)),
	})
	if ni.AvailableResources.NanoCpus != -cpu || ni.AvailableResources.MemoryBytes != -gib {
		t.Errorf("overcommitted node: available %v, want -1 CPU and -1 GiB", ni.AvailableResources)
	}

	bare := &shoalpb.Node{Id: "n2"}
	ni = NewNodeInfo(bare, []*shoalpb.Task{mkTask("c", "web", onNode("n2"))})
	if ni.AvailableResources == nil || ni.AvailableResources.NanoCpus != 0 || ni.ActiveTasks != 1 {
		t.Errorf("node without description: %+v", ni)
	}

	// A node without an ID owns no tasks, not even unassigned ones.
	ni = NewNodeInfo(&shoalpb.Node{}, []*shoalpb.Task{mkTask("d", "web")})
	if ni.ActiveTasks != 0 {
		t.Errorf("node without ID counted %d tasks", ni.ActiveTasks)
	}
	ni = NewNodeInfo(nil, nil)
	if ni.ActiveTasksByService == nil || ni.AvailableResources == nil {
		t.Error("NewNodeInfo(nil) left maps or resources nil")
	}
}

func TestCloneSharesNothing(t *testing.T) {
	ni := NewNodeInfo(mkNode("n1"), []*shoalpb.Task{mkTask("a", "web", onNode("n1"), reserve(cpu, gib))})
	ni.UsedHostPorts["tcp/80"] = true
	c := ni.clone()
	c.add("web", reservation{nanoCPUs: cpu, memoryBytes: gib}, []string{"tcp/443"})
	if ni.ActiveTasksByService["web"] != 1 || ni.ActiveTasks != 1 || ni.AvailableResources.NanoCpus != 3*cpu || len(ni.UsedHostPorts) != 1 {
		t.Errorf("changing the clone changed the original: %+v", ni)
	}
	if c.ActiveTasksByService["web"] != 2 || c.ActiveTasks != 2 || c.AvailableResources.NanoCpus != 2*cpu || !c.UsedHostPorts["tcp/80"] || !c.UsedHostPorts["tcp/443"] {
		t.Errorf("clone after add: %+v", c)
	}

	// A hand-built NodeInfo with nil maps and resources clones to usable ones.
	bare := NodeInfo{Node: mkNode("n2")}
	c = bare.clone()
	c.add("web", reservation{}, nil)
	if c.ActiveTasksByService["web"] != 1 || c.AvailableResources == nil {
		t.Errorf("clone of a bare NodeInfo: %+v", c)
	}
}
