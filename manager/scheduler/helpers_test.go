package scheduler

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

const (
	cpu = int64(1e9)
	gib = int64(1 << 30)
)

type nodeOpt func(*shoalpb.Node)

// mkNode returns a ready, active linux/amd64 worker with 4 CPUs and 8 GiB,
// its hostname being its ID; opts adjust it.
func mkNode(id string, opts ...nodeOpt) *shoalpb.Node {
	n := &shoalpb.Node{
		Id:   id,
		Role: shoalpb.NodeRole_NODE_ROLE_WORKER,
		Spec: &shoalpb.NodeSpec{Labels: map[string]string{}},
		Description: &shoalpb.NodeDescription{
			Hostname:     id,
			Platform:     &shoalpb.Platform{Os: "linux", Architecture: "x86_64"},
			Resources:    &shoalpb.Resources{NanoCpus: 4 * cpu, MemoryBytes: 8 * gib},
			EngineLabels: map[string]string{},
		},
		Status: &shoalpb.NodeStatus{State: shoalpb.NodeState_NODE_STATE_READY, Addr: "10.0.0.1"},
	}
	for _, o := range opts {
		o(n)
	}
	return n
}

func label(k, v string) nodeOpt { return func(n *shoalpb.Node) { n.Spec.Labels[k] = v } }
func engineLabel(k, v string) nodeOpt {
	return func(n *shoalpb.Node) { n.Description.EngineLabels[k] = v }
}
func state(s shoalpb.NodeState) nodeOpt { return func(n *shoalpb.Node) { n.Status.State = s } }
func availability(a shoalpb.NodeAvailability) nodeOpt {
	return func(n *shoalpb.Node) { n.Spec.Availability = a }
}
func manager() nodeOpt          { return func(n *shoalpb.Node) { n.Role = shoalpb.NodeRole_NODE_ROLE_MANAGER } }
func hostname(h string) nodeOpt { return func(n *shoalpb.Node) { n.Description.Hostname = h } }
func addr(a string) nodeOpt     { return func(n *shoalpb.Node) { n.Status.Addr = a } }
func platform(os, arch string) nodeOpt {
	return func(n *shoalpb.Node) { n.Description.Platform = &shoalpb.Platform{Os: os, Architecture: arch} }
}
func resources(nanoCPUs, mem int64) nodeOpt {
	return func(n *shoalpb.Node) {
		n.Description.Resources = &shoalpb.Resources{NanoCpus: nanoCPUs, MemoryBytes: mem}
	}
}

type taskOpt func(*shoalpb.Task)

// mkTask returns a pending task of svc with no node and an empty placement.
func mkTask(id, svc string, opts ...taskOpt) *shoalpb.Task {
	t := &shoalpb.Task{
		Id:           id,
		ServiceId:    svc,
		Spec:         &shoalpb.TaskSpec{Placement: &shoalpb.Placement{}},
		Status:       &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_PENDING},
		DesiredState: shoalpb.TaskState_TASK_STATE_RUNNING,
	}
	for _, o := range opts {
		o(t)
	}
	return t
}

func constraints(exprs ...string) taskOpt {
	return func(t *shoalpb.Task) { t.Spec.Placement.Constraints = exprs }
}
func spreadOver(descriptors ...string) taskOpt {
	return func(t *shoalpb.Task) {
		for _, d := range descriptors {
			t.Spec.Placement.Preferences = append(t.Spec.Placement.Preferences, &shoalpb.PlacementPreference{SpreadDescriptor: d})
		}
	}
}
func maxReplicas(n uint64) taskOpt {
	return func(t *shoalpb.Task) { t.Spec.Placement.MaxReplicas = n }
}
func reserve(nanoCPUs, mem int64) taskOpt {
	return func(t *shoalpb.Task) {
		t.Spec.Resources = &shoalpb.ResourceRequirements{Reservations: &shoalpb.Resources{NanoCpus: nanoCPUs, MemoryBytes: mem}}
	}
}

// onNode makes t a task already assigned to node and running there.
func onNode(node string) taskOpt {
	return func(t *shoalpb.Task) {
		t.NodeId = node
		t.Status.State = shoalpb.TaskState_TASK_STATE_RUNNING
	}
}

// pendingTasks returns n pending tasks of svc named svc.001, svc.002, ...
func pendingTasks(svc string, n int, opts ...taskOpt) []*shoalpb.Task {
	out := make([]*shoalpb.Task, n)
	for i := range out {
		out[i] = mkTask(fmt.Sprintf("%s.%03d", svc, i+1), svc, opts...)
	}
	return out
}

// infos builds the NodeInfos of nodes from tasks.
func infos(nodes []*shoalpb.Node, tasks ...*shoalpb.Task) []NodeInfo {
	out := make([]NodeInfo, len(nodes))
	for i, n := range nodes {
		out[i] = NewNodeInfo(n, tasks)
	}
	return out
}

// perNode counts the assignments per node ID.
func perNode(res Result) map[string]int {
	m := make(map[string]int)
	for _, d := range res.Assigned {
		m[d.NodeID]++
	}
	return m
}

// nodesOf lists the node IDs of the assignments, in order.
func nodesOf(res Result) []string {
	out := make([]string, len(res.Assigned))
	for i, d := range res.Assigned {
		out[i] = d.NodeID
	}
	return out
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func equalCounts(t *testing.T, what string, got, want map[string]int) {
	t.Helper()
	g, w := fmt.Sprint(got), fmt.Sprint(want)
	if g != w {
		t.Errorf("%s: got %s, want %s", what, g, w)
	}
}

func equalStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, ",") != strings.Join(want, ",") || len(got) != len(want) {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}
