package scheduler

import (
	"fmt"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

func threeNodes(opts ...nodeOpt) []*shoalpb.Node {
	return []*shoalpb.Node{mkNode("n1", opts...), mkNode("n2", opts...), mkNode("n3", opts...)}
}

func TestScheduleSpreadsEvenly(t *testing.T) {
	res := Schedule(infos(threeNodes()), pendingTasks("web", 9))
	if len(res.Unplaced) != 0 {
		t.Fatalf("unplaced: %v", res.Unplaced)
	}
	equalCounts(t, "tasks per node", perNode(res), map[string]int{"n1": 3, "n2": 3, "n3": 3})
	// Ties go to the lowest node ID, so the order is round-robin.
	equalStrings(t, "order", nodesOf(res), []string{"n1", "n2", "n3", "n1", "n2", "n3", "n1", "n2", "n3"})
	for i, d := range res.Assigned {
		if want := fmt.Sprintf("web.%03d", i+1); d.TaskID != want {
			t.Errorf("decision %d is for %s, want %s", i, d.TaskID, want)
		}
	}
}

func TestScheduleConsidersExistingTasks(t *testing.T) {
	nodes := infos(threeNodes(), mkTask("old1", "web", onNode("n1")), mkTask("old2", "web", onNode("n1")))
	res := Schedule(nodes, pendingTasks("web", 2))
	equalCounts(t, "tasks per node", perNode(res), map[string]int{"n2": 1, "n3": 1})

	// Once the others catch up, n1 is used again.
	res = Schedule(nodes, pendingTasks("web", 5))
	equalCounts(t, "tasks per node", perNode(res), map[string]int{"n1": 1, "n2": 2, "n3": 2})
}

func TestScheduleBreaksTiesByTotalTasksThenID(t *testing.T) {
	var existing []*shoalpb.Task
	for i := range 5 {
		existing = append(existing, mkTask(fmt.Sprintf("db%d", i), "db", onNode("n1")))
	}
	existing = append(existing, mkTask("cache", "cache", onNode("n2")))
	res := Schedule(infos(threeNodes(), existing...), pendingTasks("web", 4))
	// Service counts are all 0: n3 (0 in total), n2 (1), n1 (5); then n3
	// has 1 of web and 1 in total, ahead of n2 (1, 2) and n1 (1, 6).
	equalStrings(t, "order", nodesOf(res), []string{"n3", "n2", "n1", "n3"})
}

func TestScheduleLaterGroupsSeeEarlierPlacements(t *testing.T) {
	nodes := infos([]*shoalpb.Node{mkNode("n1"), mkNode("n2")})
	pending := []*shoalpb.Task{
		mkTask("web.1", "web"),
		mkTask("api.1", "api"),
		mkTask("web.2", "web"),
		mkTask("web.3", "web"),
	}
	res := Schedule(nodes, pending)
	want := []Decision{
		{"web.1", "n1"}, {"web.2", "n2"}, {"web.3", "n1"},
		// api sees n1 holding two tasks and n2 one.
		{"api.1", "n2"},
	}
	if !reflect.DeepEqual(res.Assigned, want) {
		t.Errorf("Assigned = %v, want %v", res.Assigned, want)
	}
}

func TestScheduleNeverUsesUnavailableNodes(t *testing.T) {
	nodes := infos([]*shoalpb.Node{
		mkNode("a-down", state(shoalpb.NodeState_NODE_STATE_DOWN)),
		mkNode("b-disconnected", state(shoalpb.NodeState_NODE_STATE_DISCONNECTED)),
		mkNode("c-unknown", state(shoalpb.NodeState_NODE_STATE_UNKNOWN)),
		mkNode("d-drained", availability(shoalpb.NodeAvailability_NODE_AVAILABILITY_DRAIN)),
		mkNode("e-paused", availability(shoalpb.NodeAvailability_NODE_AVAILABILITY_PAUSE)),
		mkNode("z-ready"),
	})
	res := Schedule(nodes, pendingTasks("web", 6))
	equalCounts(t, "tasks per node", perNode(res), map[string]int{"z-ready": 6})

	res = Schedule(nodes[:5], pendingTasks("web", 2))
	if len(res.Assigned) != 0 || len(res.Unplaced) != 2 {
		t.Fatalf("Schedule on unavailable nodes = %+v", res)
	}
	for _, u := range res.Unplaced {
		if u.Reason != "no suitable node (5 nodes not available for new tasks)" {
			t.Errorf("%s: reason %q", u.TaskID, u.Reason)
		}
	}
}

func TestScheduleReservationsExhaustNodes(t *testing.T) {
	nodes := infos([]*shoalpb.Node{
		mkNode("n1", resources(8*cpu, 4*gib)),
		mkNode("n2", resources(8*cpu, gib)),
	})
	res := Schedule(nodes, pendingTasks("web", 6, reserve(cpu/10, gib)))
	// n1 and n2 alternate until n2 is full; n1 then takes the rest it can.
	equalStrings(t, "order", nodesOf(res), []string{"n1", "n2", "n1", "n1", "n1"})
	want := []Unplaced{{TaskID: "web.006", Reason: "no suitable node (2 nodes have insufficient memory)"}}
	if !reflect.DeepEqual(res.Unplaced, want) {
		t.Errorf("Unplaced = %v, want %v", res.Unplaced, want)
	}

	// The caller's NodeInfos are untouched: the same pass gives the same result.
	if nodes[0].AvailableResources.MemoryBytes != 4*gib || nodes[0].ActiveTasks != 0 || len(nodes[0].ActiveTasksByService) != 0 {
		t.Errorf("Schedule modified its input: %+v", nodes[0])
	}
	if again := Schedule(nodes, pendingTasks("web", 6, reserve(cpu/10, gib))); !reflect.DeepEqual(again, res) {
		t.Errorf("second pass differs: %+v", again)
	}
}

func TestScheduleCPUGoesElsewhereAndOtherServicesStillFit(t *testing.T) {
	nodes := infos([]*shoalpb.Node{mkNode("n1", resources(2*cpu, 8*gib)), mkNode("n2", resources(cpu, 8*gib))})
	pending := append(pendingTasks("big", 4, reserve(cpu, 0)), pendingTasks("small", 2)...)
	res := Schedule(nodes, pending)
	// big: n1, n2, n1, then both are out of CPU. small: n2 (fewer tasks in
	// total), then n1 (fewer of small).
	equalStrings(t, "order", nodesOf(res), []string{"n1", "n2", "n1", "n2", "n1"})
	if len(res.Unplaced) != 1 || res.Unplaced[0].TaskID != "big.004" ||
		res.Unplaced[0].Reason != "no suitable node (2 nodes have insufficient CPU)" {
		t.Errorf("Unplaced = %v", res.Unplaced)
	}
}

func TestScheduleMaxReplicas(t *testing.T) {
	res := Schedule(infos(threeNodes()), pendingTasks("web", 4, maxReplicas(1)))
	equalCounts(t, "tasks per node", perNode(res), map[string]int{"n1": 1, "n2": 1, "n3": 1})
	want := []Unplaced{{TaskID: "web.004", Reason: "no suitable node (3 nodes have reached the max replicas of this service per node)"}}
	if !reflect.DeepEqual(res.Unplaced, want) {
		t.Errorf("Unplaced = %v, want %v", res.Unplaced, want)
	}

	// Existing tasks count, and other services are not limited.
	nodes := infos(threeNodes(), mkTask("old", "web", onNode("n2")))
	res = Schedule(nodes, append(pendingTasks("web", 5, maxReplicas(2)), pendingTasks("api", 3)...))
	equalCounts(t, "tasks per node", perNode(res), map[string]int{"n1": 3, "n2": 2, "n3": 3})
	if len(res.Unplaced) != 0 {
		t.Errorf("Unplaced = %v", res.Unplaced)
	}
}

func TestScheduleMaxReplicasAcrossSpecVersions(t *testing.T) {
	// Tasks of one service with different placements form two groups; the
	// limit still counts the service's tasks from both.
	nodes := infos([]*shoalpb.Node{mkNode("n1")})
	pending := []*shoalpb.Task{
		mkTask("web.1", "web", maxReplicas(1)),
		mkTask("web.2", "web", maxReplicas(1), constraints("node.role==worker")),
	}
	res := Schedule(nodes, pending)
	if len(res.Assigned) != 1 || res.Assigned[0].TaskID != "web.1" {
		t.Fatalf("Assigned = %v", res.Assigned)
	}
	if len(res.Unplaced) != 1 || res.Unplaced[0].Reason != "no suitable node (1 node has reached the max replicas of this service per node)" {
		t.Errorf("Unplaced = %v", res.Unplaced)
	}
}

func TestScheduleConstraints(t *testing.T) {
	nodes := infos([]*shoalpb.Node{
		mkNode("m1", manager(), label("zone", "a"), addr("10.0.1.1")),
		mkNode("w1", label("zone", "a"), label("disk", "ssd"), addr("10.0.1.2")),
		mkNode("w2", label("zone", "b"), hostname("Build-Box"), addr("10.0.2.1")),
		mkNode("w3", platform("linux", "aarch64"), engineLabel("gpu", "yes"), addr("192.168.7.3")),
		mkNode("w4", platform("windows", "amd64"), label("zone", "B"), addr("10.0.2.9")),
	})
	tests := []struct {
		exprs []string
		want  []string // nodes that receive tasks
	}{
		{[]string{"node.labels.zone==a"}, []string{"m1", "w1"}},
		{[]string{"node.labels.zone!=a"}, []string{"w2", "w3", "w4"}},
		{[]string{"node.labels.zone==b"}, []string{"w2"}},
		{[]string{"node.labels.disk==ssd", "node.labels.zone==a"}, []string{"w1"}},
		{[]string{"node.role==manager"}, []string{"m1"}},
		{[]string{"node.role!=manager"}, []string{"w1", "w2", "w3", "w4"}},
		{[]string{"node.role==worker", "node.labels.zone==a"}, []string{"w1"}},
		{[]string{"node.hostname==build-box"}, []string{"w2"}},
		{[]string{"node.hostname!=build-box", "node.hostname!=w1"}, []string{"m1", "w3", "w4"}},
		{[]string{"node.id==w3"}, []string{"w3"}},
		{[]string{"node.id!=w3", "node.id!=m1"}, []string{"w1", "w2", "w4"}},
		{[]string{"node.platform.os==windows"}, []string{"w4"}},
		{[]string{"node.platform.os==Linux", "node.platform.arch==amd64"}, []string{"m1", "w1", "w2"}},
		{[]string{"node.platform.arch==arm64"}, []string{"w3"}},
		{[]string{"node.platform.arch!=x86_64"}, []string{"w3"}},
		{[]string{"engine.labels.gpu==yes"}, []string{"w3"}},
		{[]string{"node.ip==10.0.2.0/24"}, []string{"w2", "w4"}},
		{[]string{"node.ip!=10.0.0.0/8"}, []string{"w3"}},
		{[]string{"node.ip==10.0.1.2"}, []string{"w1"}},
	}
	for _, tt := range tests {
		res := Schedule(nodes, pendingTasks("web", 12, constraints(tt.exprs...)))
		if len(res.Unplaced) != 0 {
			t.Errorf("%v: unplaced %v", tt.exprs, res.Unplaced)
		}
		equalStrings(t, fmt.Sprint(tt.exprs), sortedKeys(perNode(res)), tt.want)
	}
}

func TestScheduleUnparsableConstraintOnlyAffectsItsGroup(t *testing.T) {
	nodes := infos(threeNodes())
	pending := append(pendingTasks("bad", 2, constraints("node.labels.zone=a")), pendingTasks("good", 2)...)
	res := Schedule(nodes, pending)
	if len(res.Assigned) != 2 || res.Assigned[0].TaskID != "good.001" {
		t.Errorf("Assigned = %v", res.Assigned)
	}
	reason := `invalid constraint "node.labels.zone=a": expected == or !=`
	want := []Unplaced{{"bad.001", reason}, {"bad.002", reason}}
	if !reflect.DeepEqual(res.Unplaced, want) {
		t.Errorf("Unplaced = %v, want %v", res.Unplaced, want)
	}
}

func TestScheduleOnlyTakesTasksWaitingForANode(t *testing.T) {
	assigned := mkTask("assigned", "web")
	assigned.NodeId = "n1"
	fresh := mkTask("new", "web")
	fresh.Status.State = shoalpb.TaskState_TASK_STATE_NEW
	accepted := mkTask("accepted", "web")
	accepted.Status.State = shoalpb.TaskState_TASK_STATE_ACCEPTED
	stopping := mkTask("stopping", "web")
	stopping.DesiredState = shoalpb.TaskState_TASK_STATE_SHUTDOWN
	noStatus := mkTask("nostatus", "web")
	noStatus.Status = nil

	pending := []*shoalpb.Task{
		nil, assigned, fresh, accepted, stopping, noStatus,
		mkTask("", "web"),
		mkTask("ok.1", "web"),
		mkTask("ok.1", "web"), // repeated
		mkTask("ok.2", "web"),
	}
	res := Schedule(infos(threeNodes()), pending)
	want := []Decision{{"ok.1", "n1"}, {"ok.2", "n2"}}
	if !reflect.DeepEqual(res.Assigned, want) || len(res.Unplaced) != 0 {
		t.Errorf("Schedule = %+v, want only %v", res, want)
	}
}

func TestScheduleEmpty(t *testing.T) {
	if res := Schedule(nil, nil); res.Assigned != nil || res.Unplaced != nil {
		t.Errorf("Schedule(nil, nil) = %+v", res)
	}
	res := Schedule(infos(threeNodes()), nil)
	if len(res.Assigned)+len(res.Unplaced) != 0 {
		t.Errorf("no tasks: %+v", res)
	}
}

func TestScheduleDuplicateNodeInfoUsedOnce(t *testing.T) {
	n1 := mkNode("n1")
	nodes := append(infos([]*shoalpb.Node{n1, mkNode("n2")}), NewNodeInfo(n1, nil))
	res := Schedule(nodes, pendingTasks("web", 4))
	equalCounts(t, "tasks per node", perNode(res), map[string]int{"n1": 2, "n2": 2})
}

func TestScheduleDoesNotModifyItsInput(t *testing.T) {
	nodes := infos(threeNodes(), mkTask("old", "web", onNode("n1"), reserve(cpu, gib)))
	nodes[1].UsedHostPorts["tcp/80"] = true
	pending := pendingTasks("web", 7, reserve(cpu, gib), spreadOver("node.labels.zone"))

	nodesBefore := snapshotInfos(nodes)
	pendingBefore := make([]*shoalpb.Task, len(pending))
	for i, t := range pending {
		pendingBefore[i] = proto.Clone(t).(*shoalpb.Task)
	}
	Schedule(nodes, pending)
	if got := snapshotInfos(nodes); got != nodesBefore {
		t.Errorf("node infos changed:\n%s\nwas\n%s", got, nodesBefore)
	}
	for i := range pending {
		if !proto.Equal(pending[i], pendingBefore[i]) {
			t.Errorf("task %s changed", pending[i].Id)
		}
	}
}

func snapshotInfos(nodes []NodeInfo) string {
	s := ""
	for _, n := range nodes {
		s += fmt.Sprintf("%s %v %d %d/%d %v %s\n", n.Node.GetId(), n.ActiveTasksByService, n.ActiveTasks,
			n.AvailableResources.GetNanoCpus(), n.AvailableResources.GetMemoryBytes(), n.UsedHostPorts, n.Node)
	}
	return s
}

func TestScheduleIsDeterministic(t *testing.T) {
	var nodeList []*shoalpb.Node
	var existing []*shoalpb.Task
	zones := []string{"a", "b", "c"}
	for i := range 30 {
		id := fmt.Sprintf("node-%02d", i)
		opts := []nodeOpt{resources(int64(1+i%4)*cpu, int64(1+i%3)*gib)}
		if i%5 != 0 {
			opts = append(opts, label("zone", zones[i%3]))
		}
		if i%7 == 0 {
			opts = append(opts, availability(shoalpb.NodeAvailability_NODE_AVAILABILITY_DRAIN))
		}
		nodeList = append(nodeList, mkNode(id, opts...))
		for j := range i % 4 {
			existing = append(existing, mkTask(fmt.Sprintf("old-%d-%d", i, j), zones[j%3], onNode(id)))
		}
	}
	var pending []*shoalpb.Task
	pending = append(pending, pendingTasks("a", 40, reserve(cpu/4, gib/4))...)
	pending = append(pending, pendingTasks("b", 25, spreadOver("node.labels.zone"), maxReplicas(2))...)
	pending = append(pending, pendingTasks("c", 30, constraints("node.labels.zone!=c"), reserve(cpu, 0))...)

	nodes := infos(nodeList, existing...)
	first := Schedule(nodes, pending)
	if len(first.Assigned) == 0 || len(first.Unplaced) == 0 {
		t.Fatalf("want a mix of placed and unplaced tasks, got %d and %d", len(first.Assigned), len(first.Unplaced))
	}
	for range 5 {
		if again := Schedule(nodes, pending); !reflect.DeepEqual(again, first) {
			t.Fatal("same input, different result")
		}
	}
	// The order of the nodes does not matter either.
	reversed := make([]NodeInfo, len(nodes))
	for i := range nodes {
		reversed[len(nodes)-1-i] = nodes[i]
	}
	if again := Schedule(reversed, pending); !reflect.DeepEqual(again, first) {
		t.Fatal("reordering the nodes changed the result")
	}
}
