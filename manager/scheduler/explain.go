package scheduler

import (
	"fmt"
	"strings"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Explain says why no node in nodes can take t, in the form docker uses:
//
//	no suitable node (1 node not available for new tasks; 2 nodes do not satisfy constraint node.labels.zone==mars)
//
// Each node is counted once, under the first filter it fails; the parts
// appear in filter order (readiness, constraints in the order the task
// lists them, CPU, memory, replicas per node, host ports). A task with an
// unparsable constraint or preference gets the parse error instead.
// Explain returns "" when some node could take t.
func Explain(nodes []NodeInfo, t *shoalpb.Task) string {
	r := requirementsOf(t)
	if r.err != nil {
		return r.err.Error()
	}
	seen := make(map[string]bool, len(nodes))
	infos := make([]*NodeInfo, 0, len(nodes))
	for i := range nodes {
		if id := nodes[i].Node.GetId(); id != "" {
			if seen[id] {
				continue
			}
			seen[id] = true
		}
		infos = append(infos, &nodes[i])
	}
	return r.explain(infos)
}

// explain tallies nodes by the first filter each fails and renders the
// tally; "" when some node passes every filter.
func (r *requirements) explain(nodes []*NodeInfo) string {
	var (
		counts      [hostPortConflict + 1]int
		constraints = make([]int, len(r.constraints))
	)
	for _, ni := range nodes {
		v, i := r.check(ni)
		if v == pass {
			return ""
		}
		counts[v]++
		if v == constraintFailed {
			constraints[i]++
		}
	}
	if len(nodes) == 0 {
		return "no suitable node (cluster has no nodes)"
	}

	var parts []string
	add := func(n int, one, many string) {
		switch {
		case n == 1:
			parts = append(parts, "1 "+one)
		case n > 1:
			parts = append(parts, fmt.Sprintf("%d %s", n, many))
		}
	}
	add(counts[notReady], "node not available for new tasks", "nodes not available for new tasks")
	for i, c := range r.constraints {
		add(constraints[i], "node does not satisfy constraint "+c.String(), "nodes do not satisfy constraint "+c.String())
	}
	add(counts[insufficientCPU], "node has insufficient CPU", "nodes have insufficient CPU")
	add(counts[insufficientMemory], "node has insufficient memory", "nodes have insufficient memory")
	add(counts[maxReplicasReached], "node has reached the max replicas of this service per node", "nodes have reached the max replicas of this service per node")
	add(counts[hostPortConflict], "node has a host port conflict", "nodes have host port conflicts")
	return "no suitable node (" + strings.Join(parts, "; ") + ")"
}
