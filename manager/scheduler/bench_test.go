package scheduler

import (
	"fmt"
	"testing"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// benchCluster returns n ready nodes over three zones, each with 16 CPUs,
// 64 GiB and a few tasks of other services already running.
func benchCluster(n int) []NodeInfo {
	nodes := make([]*shoalpb.Node, n)
	var existing []*shoalpb.Task
	for i := range nodes {
		id := fmt.Sprintf("node-%04d", i)
		nodes[i] = mkNode(id, resources(16*cpu, 64*gib), label("zone", fmt.Sprintf("z%d", i%3)))
		if i%10 == 0 {
			nodes[i].Role = shoalpb.NodeRole_NODE_ROLE_MANAGER
		}
		for j := range i % 5 {
			existing = append(existing, mkTask(fmt.Sprintf("old-%d-%d", i, j), fmt.Sprintf("old%d", j), onNode(id), reserve(cpu/10, gib/4)))
		}
	}
	return infos(nodes, existing...)
}

func runScheduleBench(b *testing.B, nodes []NodeInfo, pending []*shoalpb.Task) {
	b.Helper()
	b.ReportAllocs()
	for b.Loop() {
		res := Schedule(nodes, pending)
		if len(res.Assigned) != len(pending) {
			b.Fatalf("placed %d of %d tasks; first unplaced: %v", len(res.Assigned), len(pending), res.Unplaced[0])
		}
	}
	b.ReportMetric(float64(len(pending))*float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}

// BenchmarkSchedule1000Nodes20000Tasks places 20,000 tasks of 100 services
// on 1,000 nodes. A third of the services have a constraint, a third a
// spread preference over zones; all reserve CPU and memory.
func BenchmarkSchedule1000Nodes20000Tasks(b *testing.B) {
	nodes := benchCluster(1000)
	var pending []*shoalpb.Task
	for s := range 100 {
		svc := fmt.Sprintf("svc%03d", s)
		opts := []taskOpt{reserve(cpu/10, gib/8)}
		switch s % 3 {
		case 1:
			opts = append(opts, constraints("node.role==worker"))
		case 2:
			opts = append(opts, spreadOver("node.labels.zone"))
		}
		pending = append(pending, pendingTasks(svc, 200, opts...)...)
	}
	runScheduleBench(b, nodes, pending)
}

// BenchmarkSchedule1000Nodes20000TasksOneService is the plain case: one
// service, no constraints or preferences.
func BenchmarkSchedule1000Nodes20000TasksOneService(b *testing.B) {
	runScheduleBench(b, benchCluster(1000), pendingTasks("web", 20000, reserve(cpu/10, gib/8)))
}

// BenchmarkSchedule1000Nodes20000TasksManyServices has every task in a
// service of its own, the worst case for grouping: each task filters all
// nodes.
func BenchmarkSchedule1000Nodes20000TasksManyServices(b *testing.B) {
	pending := make([]*shoalpb.Task, 20000)
	for i := range pending {
		pending[i] = mkTask(fmt.Sprintf("t%05d", i), fmt.Sprintf("svc%05d", i), constraints("node.role==worker"))
	}
	runScheduleBench(b, benchCluster(1000), pending)
}
