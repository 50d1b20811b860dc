package scheduler

import (
	"testing"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// TestFilterReasons checks each filter and the exact explanation of an
// unplaced task, through both Explain and Schedule.
func TestFilterReasons(t *testing.T) {
	var (
		down         = state(shoalpb.NodeState_NODE_STATE_DOWN)
		disconnected = state(shoalpb.NodeState_NODE_STATE_DISCONNECTED)
		unknown      = state(shoalpb.NodeState_NODE_STATE_UNKNOWN)
		drained      = availability(shoalpb.NodeAvailability_NODE_AVAILABILITY_DRAIN)
		paused       = availability(shoalpb.NodeAvailability_NODE_AVAILABILITY_PAUSE)
	)
	tests := []struct {
		name  string
		nodes []NodeInfo
		task  *shoalpb.Task
		want  string // "" when the task is placeable
	}{
		{
			name: "no nodes",
			task: mkTask("t", "web"),
			want: "no suitable node (cluster has no nodes)",
		},
		{
			name:  "ready node takes the task",
			nodes: infos([]*shoalpb.Node{mkNode("n1")}),
			task:  mkTask("t", "web"),
			want:  "",
		},
		{
			name:  "one node down",
			nodes: infos([]*shoalpb.Node{mkNode("n1", down)}),
			task:  mkTask("t", "web"),
			want:  "no suitable node (1 node not available for new tasks)",
		},
		{
			name: "down, disconnected, unknown, drained and paused share a bucket",
			nodes: infos([]*shoalpb.Node{
				mkNode("n1", down), mkNode("n2", disconnected), mkNode("n3", unknown),
				mkNode("n4", drained), mkNode("n5", paused),
			}),
			task: mkTask("t", "web"),
			want: "no suitable node (5 nodes not available for new tasks)",
		},
		{
			name:  "NodeInfo without a node is not available",
			nodes: []NodeInfo{{}},
			task:  mkTask("t", "web"),
			want:  "no suitable node (1 node not available for new tasks)",
		},
		{
			name: "constraint",
			nodes: infos([]*shoalpb.Node{
				mkNode("n1", drained), mkNode("n2", label("zone", "earth")), mkNode("n3"),
			}),
			task: mkTask("t", "web", constraints("node.labels.zone==mars")),
			want: "no suitable node (1 node not available for new tasks; 2 nodes do not satisfy constraint node.labels.zone==mars)",
		},
		{
			name: "only the first failing constraint counts, buckets in the task's order",
			nodes: infos([]*shoalpb.Node{
				mkNode("n1", manager(), label("zone", "earth")),
				mkNode("n2", label("zone", "earth")),
				mkNode("n3", label("zone", "venus")),
			}),
			task: mkTask("t", "web", constraints("node.role == worker", "NODE.LABELS.zone==mars")),
			want: "no suitable node (1 node does not satisfy constraint node.role==worker; 2 nodes do not satisfy constraint node.labels.zone==mars)",
		},
		{
			name:  "constraint satisfied by one node",
			nodes: infos([]*shoalpb.Node{mkNode("n1"), mkNode("n2", label("zone", "mars"))}),
			task:  mkTask("t", "web", constraints("node.labels.zone==mars")),
			want:  "",
		},
		{
			name:  "insufficient CPU",
			nodes: infos([]*shoalpb.Node{mkNode("n1"), mkNode("n2")}),
			task:  mkTask("t", "web", reserve(5*cpu, 0)),
			want:  "no suitable node (2 nodes have insufficient CPU)",
		},
		{
			name:  "insufficient memory",
			nodes: infos([]*shoalpb.Node{mkNode("n1", resources(4*cpu, gib))}),
			task:  mkTask("t", "web", reserve(cpu, 2*gib)),
			want:  "no suitable node (1 node has insufficient memory)",
		},
		{
			name: "CPU is checked before memory",
			nodes: infos([]*shoalpb.Node{
				mkNode("n1", resources(cpu, gib)), // short of both
				mkNode("n2", resources(8*cpu, gib)),
			}),
			task: mkTask("t", "web", reserve(2*cpu, 2*gib)),
			want: "no suitable node (1 node has insufficient CPU; 1 node has insufficient memory)",
		},
		{
			name: "reservations count against what running tasks hold",
			nodes: infos([]*shoalpb.Node{mkNode("n1")},
				mkTask("r1", "db", onNode("n1"), reserve(3*cpu, gib))),
			task: mkTask("t", "web", reserve(2*cpu, 0)),
			want: "no suitable node (1 node has insufficient CPU)",
		},
		{
			name: "a reservation that exactly fits",
			nodes: infos([]*shoalpb.Node{mkNode("n1")},
				mkTask("r1", "db", onNode("n1"), reserve(3*cpu, 6*gib))),
			task: mkTask("t", "web", reserve(cpu, 2*gib)),
			want: "",
		},
		{
			name: "no reservation fits an overcommitted node",
			nodes: infos([]*shoalpb.Node{mkNode("n1", resources(cpu, gib))},
				mkTask("r1", "db", onNode("n1"), reserve(2*cpu, 2*gib))),
			task: mkTask("t", "web"),
			want: "",
		},
		{
			name: "max replicas per node",
			nodes: infos([]*shoalpb.Node{mkNode("n1"), mkNode("n2"), mkNode("n3")},
				mkTask("w1", "web", onNode("n1")), mkTask("w2", "web", onNode("n2")),
				mkTask("w3", "web", onNode("n2")), mkTask("d1", "db", onNode("n3"))),
			task: mkTask("t", "web", maxReplicas(1)),
			want: "",
		},
		{
			name: "max replicas reached everywhere",
			nodes: infos([]*shoalpb.Node{mkNode("n1"), mkNode("n2")},
				mkTask("w1", "web", onNode("n1")), mkTask("w2", "web", onNode("n2"))),
			task: mkTask("t", "web", maxReplicas(1)),
			want: "no suitable node (2 nodes have reached the max replicas of this service per node)",
		},
		{
			name: "finished tasks do not count toward max replicas",
			nodes: infos([]*shoalpb.Node{mkNode("n1")}, func() *shoalpb.Task {
				done := mkTask("w1", "web", onNode("n1"))
				done.Status.State = shoalpb.TaskState_TASK_STATE_COMPLETE
				return done
			}()),
			task: mkTask("t", "web", maxReplicas(1)),
			want: "",
		},
		{
			name: "every filter, in order",
			nodes: infos([]*shoalpb.Node{
				mkNode("a-down", down, label("zone", "mars")),
				mkNode("b-paused", paused, label("zone", "mars")),
				mkNode("c-earth", label("zone", "earth")),
				mkNode("d-manager", manager(), label("zone", "mars")),
				mkNode("e-small", label("zone", "mars"), resources(cpu/2, 8*gib)),
				mkNode("f-tiny", label("zone", "mars"), resources(4*cpu, gib/2)),
				mkNode("g-full", label("zone", "mars")),
				mkNode("h-full", label("zone", "mars")),
			}, mkTask("w1", "web", onNode("g-full")), mkTask("w2", "web", onNode("h-full"))),
			task: mkTask("t", "web", constraints("node.labels.zone==mars", "node.role!=manager"), reserve(cpu, gib), maxReplicas(1)),
			want: "no suitable node (2 nodes not available for new tasks; 1 node does not satisfy constraint node.labels.zone==mars; " +
				"1 node does not satisfy constraint node.role!=manager; 1 node has insufficient CPU; 1 node has insufficient memory; " +
				"2 nodes have reached the max replicas of this service per node)",
		},
		{
			name:  "unparsable constraint",
			nodes: infos([]*shoalpb.Node{mkNode("n1")}),
			task:  mkTask("t", "web", constraints("node.role==worker", "node.rol==manager")),
			want:  `invalid constraint "node.rol==manager": unknown key node.rol`,
		},
		{
			name:  "constraint without an operator",
			nodes: infos([]*shoalpb.Node{mkNode("n1")}),
			task:  mkTask("t", "web", constraints("node.labels.zone=a")),
			want:  `invalid constraint "node.labels.zone=a": expected == or !=`,
		},
		{
			name:  "bad placement preference",
			nodes: infos([]*shoalpb.Node{mkNode("n1")}),
			task:  mkTask("t", "web", spreadOver("node.hostname")),
			want:  `invalid placement preference "node.hostname": spread descriptor must be node.labels.<label> or engine.labels.<label>`,
		},
		{
			name:  "a duplicated node is counted once",
			nodes: infos([]*shoalpb.Node{mkNode("n1", down), mkNode("n1", down)}),
			task:  mkTask("t", "web"),
			want:  "no suitable node (1 node not available for new tasks)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Explain(tt.nodes, tt.task); got != tt.want {
				t.Errorf("Explain:\n got %q\nwant %q", got, tt.want)
			}
			res := Schedule(tt.nodes, []*shoalpb.Task{tt.task})
			if tt.want == "" {
				if len(res.Assigned) != 1 || len(res.Unplaced) != 0 {
					t.Fatalf("Schedule = %+v, want the task assigned", res)
				}
				return
			}
			if len(res.Assigned) != 0 || len(res.Unplaced) != 1 {
				t.Fatalf("Schedule = %+v, want the task unplaced", res)
			}
			if u := res.Unplaced[0]; u.TaskID != "t" || u.Reason != tt.want {
				t.Errorf("Schedule unplaced %q:\n got %q\nwant %q", u.TaskID, u.Reason, tt.want)
			}
		})
	}
}

// TestHostPortFilter exercises the host-port hook directly, as task specs
// cannot publish ports yet.
func TestHostPortFilter(t *testing.T) {
	r := requirements{serviceID: "web", hostPorts: []string{"tcp/8080", "udp/53"}}
	used := func(id string, ports ...string) *NodeInfo {
		ni := NewNodeInfo(mkNode(id), nil)
		for _, p := range ports {
			ni.UsedHostPorts[p] = true
		}
		return &ni
	}
	free := used("free", "tcp/53", "udp/8080")
	if v := r.dynamicCheck(free); v != pass {
		t.Errorf("node without the ports: verdict %v, want pass", v)
	}
	if got := r.explain([]*NodeInfo{used("n1", "udp/53")}); got != "no suitable node (1 node has a host port conflict)" {
		t.Errorf("one conflict: %q", got)
	}
	if got := r.explain([]*NodeInfo{used("n1", "tcp/8080"), used("n2", "udp/53")}); got != "no suitable node (2 nodes have host port conflicts)" {
		t.Errorf("two conflicts: %q", got)
	}
	if got := r.explain([]*NodeInfo{used("n1", "tcp/8080"), free}); got != "" {
		t.Errorf("with a free node: %q, want empty", got)
	}

	// Placing a task marks its ports used, so a second one conflicts.
	w := newWorkset([]NodeInfo{*free})
	tree := newSpreadTree([]heapEntry{{node: w.nodes[0]}}, nil)
	if tree.pick(&r) == nil {
		t.Fatal("first task not placed")
	}
	if !w.nodes[0].info.UsedHostPorts["tcp/8080"] {
		t.Error("placement did not record the host port")
	}
	if tree.pick(&r) != nil {
		t.Error("second task placed on a node whose port is taken")
	}
}

func TestGroupKeySeparatesRequirements(t *testing.T) {
	base := mkTask("a", "web", constraints("node.role==worker"), reserve(cpu, gib), maxReplicas(2), spreadOver("node.labels.zone"))
	variants := []*shoalpb.Task{
		mkTask("b", "api", constraints("node.role==worker"), reserve(cpu, gib), maxReplicas(2), spreadOver("node.labels.zone")),
		mkTask("c", "web", constraints("node.role==manager"), reserve(cpu, gib), maxReplicas(2), spreadOver("node.labels.zone")),
		mkTask("d", "web", constraints("node.role==worker", "node.labels.a==b"), reserve(cpu, gib), maxReplicas(2), spreadOver("node.labels.zone")),
		mkTask("e", "web", constraints("node.role==worker"), reserve(2*cpu, gib), maxReplicas(2), spreadOver("node.labels.zone")),
		mkTask("f", "web", constraints("node.role==worker"), reserve(cpu, 2*gib), maxReplicas(2), spreadOver("node.labels.zone")),
		mkTask("g", "web", constraints("node.role==worker"), reserve(cpu, gib), maxReplicas(3), spreadOver("node.labels.zone")),
		mkTask("h", "web", constraints("node.role==worker"), reserve(cpu, gib), maxReplicas(2), spreadOver("node.labels.rack")),
		mkTask("i", "web", constraints("node.role==worker"), reserve(cpu, gib), maxReplicas(2)),
		// Moving text between fields must not collide.
		mkTask("j", "web", constraints("node.role==worker", "node.labels.zone"), reserve(cpu, gib), maxReplicas(2)),
	}
	seen := map[string]string{groupKey(base): "a"}
	for _, v := range variants {
		k := groupKey(v)
		if other, dup := seen[k]; dup {
			t.Errorf("tasks %s and %s share a group key", other, v.Id)
		}
		seen[k] = v.Id
	}
	same := mkTask("z", "web", constraints("node.role==worker"), reserve(cpu, gib), maxReplicas(2), spreadOver("node.labels.zone"))
	same.Slot = 7
	same.SpecVersion = 9
	if groupKey(same) != groupKey(base) {
		t.Error("tasks with equal requirements got different group keys")
	}
}
