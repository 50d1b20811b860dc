package scheduler

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// perLabel counts the assignments per value of the node label key.
func perLabel(nodes []*shoalpb.Node, res Result, key string) map[string]int {
	zone := make(map[string]string)
	for _, n := range nodes {
		v, ok := n.Spec.Labels[key]
		if !ok {
			v = "(none)"
		}
		zone[n.Id] = v
	}
	m := make(map[string]int)
	for _, d := range res.Assigned {
		m[zone[d.NodeID]]++
	}
	return m
}

func TestSpreadOverZones(t *testing.T) {
	nodes := []*shoalpb.Node{
		mkNode("a1", label("zone", "a")), mkNode("a2", label("zone", "a")),
		mkNode("a3", label("zone", "a")), mkNode("a4", label("zone", "a")),
		mkNode("b1", label("zone", "b")),
	}
	res := Schedule(infos(nodes), pendingTasks("web", 10, spreadOver("node.labels.zone")))
	if len(res.Unplaced) != 0 {
		t.Fatalf("unplaced: %v", res.Unplaced)
	}
	equalCounts(t, "per zone", perLabel(nodes, res, "zone"), map[string]int{"a": 5, "b": 5})
	equalCounts(t, "per node", perNode(res), map[string]int{"a1": 2, "a2": 1, "a3": 1, "a4": 1, "b1": 5})

	// Without the preference the nodes share the tasks evenly instead.
	res = Schedule(infos(nodes), pendingTasks("web", 10))
	equalCounts(t, "per node without preference", perNode(res), map[string]int{"a1": 2, "a2": 2, "a3": 2, "a4": 2, "b1": 2})
}

func TestSpreadCountsExistingTasksInZone(t *testing.T) {
	nodes := []*shoalpb.Node{
		mkNode("a1", label("zone", "a")), mkNode("a2", label("zone", "a")),
		mkNode("b1", label("zone", "b")), mkNode("b2", label("zone", "b")),
	}
	existing := []*shoalpb.Task{
		mkTask("old1", "web", onNode("a1")), mkTask("old2", "web", onNode("a1")), mkTask("old3", "web", onNode("a1")),
		mkTask("other", "api", onNode("b1")),
	}
	res := Schedule(infos(nodes, existing...), pendingTasks("web", 5, spreadOver("node.labels.zone")))
	// b catches up to 3 (b2 first: fewer tasks in total), the tie goes to
	// a (by label value), where a2 holds none, then b again.
	equalStrings(t, "order", nodesOf(res), []string{"b2", "b1", "b2", "a2", "b1"})
}

func TestSpreadNodesWithoutTheLabelFormAGroup(t *testing.T) {
	nodes := []*shoalpb.Node{mkNode("x1"), mkNode("a1", label("zone", "a")), mkNode("x2")}
	res := Schedule(infos(nodes), pendingTasks("web", 4, spreadOver("node.labels.zone")))
	// Labelled groups come first in ties, the unlabelled group last.
	equalStrings(t, "order", nodesOf(res), []string{"a1", "x1", "a1", "x2"})

	// An empty value is a value, not a missing label.
	nodes = []*shoalpb.Node{mkNode("e1", label("zone", "")), mkNode("x1"), mkNode("x2")}
	res = Schedule(infos(nodes), pendingTasks("web", 4, spreadOver("node.labels.zone")))
	equalCounts(t, "per node", perNode(res), map[string]int{"e1": 2, "x1": 1, "x2": 1})
}

func TestSpreadNestedPreferences(t *testing.T) {
	nodes := []*shoalpb.Node{
		mkNode("a-r1-1", label("zone", "a"), label("rack", "r1")),
		mkNode("a-r1-2", label("zone", "a"), label("rack", "r1")),
		mkNode("a-r2-1", label("zone", "a"), label("rack", "r2")),
		mkNode("b-r1-1", label("zone", "b"), label("rack", "r1")),
	}
	res := Schedule(infos(nodes), pendingTasks("web", 8, spreadOver("node.labels.zone", "node.labels.rack")))
	equalCounts(t, "per node", perNode(res), map[string]int{"a-r1-1": 1, "a-r1-2": 1, "a-r2-1": 2, "b-r1-1": 4})
}

func TestSpreadOverEngineLabels(t *testing.T) {
	nodes := []*shoalpb.Node{
		mkNode("n1", engineLabel("dc", "east")), mkNode("n2", engineLabel("dc", "east")),
		mkNode("n3", engineLabel("dc", "west")),
		mkNode("n4", label("dc", "west")), // a node label, not an engine one
	}
	res := Schedule(infos(nodes), pendingTasks("web", 6, spreadOver("ENGINE.LABELS.dc")))
	equalCounts(t, "per node", perNode(res), map[string]int{"n1": 1, "n2": 1, "n3": 2, "n4": 2})
}

func TestSpreadFullZoneOverflows(t *testing.T) {
	nodes := []*shoalpb.Node{
		mkNode("a1", label("zone", "a"), resources(4*cpu, 2*gib)),
		mkNode("a2", label("zone", "a"), resources(4*cpu, 2*gib)),
		mkNode("b1", label("zone", "b"), resources(4*cpu, gib)),
	}
	res := Schedule(infos(nodes), pendingTasks("web", 6, spreadOver("node.labels.zone"), reserve(0, gib)))
	equalCounts(t, "per zone", perLabel(nodes, res, "zone"), map[string]int{"a": 4, "b": 1})
	if len(res.Unplaced) != 1 || res.Unplaced[0].Reason != "no suitable node (3 nodes have insufficient memory)" {
		t.Errorf("Unplaced = %v", res.Unplaced)
	}
}

func TestSpreadIgnoresNodesThatAreNotCandidates(t *testing.T) {
	nodes := []*shoalpb.Node{
		mkNode("a1", label("zone", "a"), availability(shoalpb.NodeAvailability_NODE_AVAILABILITY_DRAIN)),
		mkNode("a2", label("zone", "a")),
		mkNode("b1", label("zone", "b")),
		mkNode("c1", label("zone", "c"), label("tier", "batch")),
	}
	var existing []*shoalpb.Task
	for i := range 5 {
		existing = append(existing, mkTask(fmt.Sprintf("old%d", i), "web", onNode("a1")))
	}
	res := Schedule(infos(nodes, existing...), pendingTasks("web", 4, spreadOver("node.labels.zone"), constraints("node.labels.tier!=batch")))
	// The drained node's tasks do not count toward zone a; zone c is
	// excluded by the constraint.
	equalCounts(t, "per node", perNode(res), map[string]int{"a2": 2, "b1": 2})
}

// TestSpreadProperty schedules random clusters and checks the invariants:
// only ready nodes are used, reservations never exceed what a node has,
// every task is placed when nothing limits it, and spreading is balanced:
// no node (or, with a preference, no zone) that received a task ends up
// more than one task of the service above the least loaded one.
func TestSpreadProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(20260314, 1))
	for trial := range 400 {
		nNodes := 1 + rng.IntN(40)
		nZones := 1 + rng.IntN(4)
		withPref := rng.IntN(2) == 0
		limited := rng.IntN(3) == 0

		var nodes []*shoalpb.Node
		var existing []*shoalpb.Task
		for i := range nNodes {
			id := fmt.Sprintf("n%02d", i)
			opts := []nodeOpt{resources(64*cpu, 64*gib)}
			if limited {
				opts = []nodeOpt{resources(64*cpu, int64(rng.IntN(5))*gib)}
			}
			if rng.IntN(8) != 0 {
				opts = append(opts, label("zone", fmt.Sprintf("z%d", rng.IntN(nZones))))
			}
			if rng.IntN(10) == 0 {
				opts = append(opts, state(shoalpb.NodeState_NODE_STATE_DOWN))
			}
			nodes = append(nodes, mkNode(id, opts...))
			for j := range rng.IntN(4) {
				existing = append(existing, mkTask(fmt.Sprintf("web-%s-%d", id, j), "web", onNode(id)))
			}
			for j := range rng.IntN(4) {
				existing = append(existing, mkTask(fmt.Sprintf("api-%s-%d", id, j), "api", onNode(id)))
			}
		}
		var opts []taskOpt
		if withPref {
			opts = append(opts, spreadOver("node.labels.zone"))
		}
		var need int64
		if limited {
			need = gib
			opts = append(opts, reserve(0, need))
		}
		nTasks := 1 + rng.IntN(3*nNodes)
		in := infos(nodes, existing...)
		res := Schedule(in, pendingTasks("web", nTasks, opts...))

		name := fmt.Sprintf("trial %d (%d nodes, %d zones, pref %v, limited %v, %d tasks)", trial, nNodes, nZones, withPref, limited, nTasks)
		if len(res.Assigned)+len(res.Unplaced) != nTasks {
			t.Fatalf("%s: %d assigned + %d unplaced", name, len(res.Assigned), len(res.Unplaced))
		}
		placed := perNode(res)
		readyNodes := 0
		final := make(map[string]int) // web tasks per ready node after the pass
		for i, n := range nodes {
			ready := n.Status.State == shoalpb.NodeState_NODE_STATE_READY
			if !ready {
				if placed[n.Id] > 0 {
					t.Fatalf("%s: task placed on down node %s", name, n.Id)
				}
				continue
			}
			readyNodes++
			final[n.Id] = in[i].ActiveTasksByService["web"] + placed[n.Id]
			avail := in[i].AvailableResources.MemoryBytes
			if int64(placed[n.Id])*need > avail {
				t.Fatalf("%s: node %s got %d tasks with %d bytes available", name, n.Id, placed[n.Id], avail)
			}
			if len(res.Unplaced) > 0 && readyNodes > 0 && avail-int64(placed[n.Id])*need >= need {
				t.Fatalf("%s: tasks unplaced while %s has room", name, n.Id)
			}
		}
		if !limited {
			if readyNodes > 0 && len(res.Unplaced) != 0 {
				t.Fatalf("%s: %d tasks unplaced with nothing limiting them", name, len(res.Unplaced))
			}
			zoneOf := func(id string) string {
				if !withPref {
					return ""
				}
				for _, n := range nodes {
					if n.Id == id {
						if v, ok := n.Spec.Labels["zone"]; ok {
							return v
						}
						return "(none)"
					}
				}
				return "?"
			}
			checkBalanced(t, name+" nodes", final, placed, zoneOf)
			if withPref {
				zoneFinal, zonePlaced := map[string]int{}, map[string]int{}
				for id, c := range final {
					zoneFinal[zoneOf(id)] += c
					zonePlaced[zoneOf(id)] += placed[id]
				}
				checkBalanced(t, name+" zones", zoneFinal, zonePlaced, func(string) string { return "" })
			}
		}
	}
}

// checkBalanced checks, within each group of keys, that every key that
// received tasks ends at most one above the group's minimum.
func checkBalanced(t *testing.T, name string, final, placed map[string]int, group func(string) string) {
	t.Helper()
	minimum := make(map[string]int)
	for k, c := range final {
		g := group(k)
		if m, ok := minimum[g]; !ok || c < m {
			minimum[g] = c
		}
	}
	for k, c := range final {
		if placed[k] > 0 && c > minimum[group(k)]+1 {
			t.Fatalf("%s: %s got tasks up to %d while the least loaded in its group has %d (final %v)", name, k, c, minimum[group(k)], final)
		}
	}
}
