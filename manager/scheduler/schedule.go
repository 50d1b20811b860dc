package scheduler

import (
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Decision assigns a task to a node.
type Decision struct {
	TaskID string
	NodeID string
}

// Unplaced is a pending task no node could take, and why (see Explain).
type Unplaced struct {
	TaskID string
	Reason string
}

// Result is the outcome of one scheduling pass.
type Result struct {
	Assigned []Decision
	Unplaced []Unplaced
}

// Schedule places as many of the pending tasks on nodes as it can, in one
// pass. Only tasks that are waiting for a node are considered: observed
// state PENDING, no NodeId, desired state RUNNING or earlier, and a
// non-empty ID; any other task, and any repeat of a task ID, is ignored.
//
// Tasks with the same service and the same placement, reservations and
// ports are scheduled together, groups in the order their first task
// appears and tasks within a group in the order given; Assigned and
// Unplaced follow that order. Schedule works on its own copy of nodes and
// accounts for each placement before making the next, so later tasks see
// earlier ones; nodes itself is not modified. When several NodeInfos
// share a node ID only the first is used.
//
// The result depends only on the input: nodes are ordered by the spread
// rules and ties are broken by node ID, never by map or input order.
func Schedule(nodes []NodeInfo, pending []*shoalpb.Task) Result {
	w := newWorkset(nodes)
	var res Result
	for _, g := range groupPending(pending) {
		w.scheduleGroup(g, &res)
	}
	return res
}

// workNode is the scheduler's private, mutable copy of one node.
type workNode struct {
	id    string
	info  NodeInfo
	ready bool // cannot change during a pass
}

// workset is the state of one Schedule call.
type workset struct {
	nodes []*workNode
	// infos points at every node's info, for explanations.
	infos []*NodeInfo
	// candidates is reused by every group to hold the nodes passing the
	// static filters.
	candidates []heapEntry
}

func newWorkset(nodes []NodeInfo) *workset {
	w := &workset{
		nodes: make([]*workNode, 0, len(nodes)),
		infos: make([]*NodeInfo, 0, len(nodes)),
	}
	seen := make(map[string]bool, len(nodes))
	for i := range nodes {
		id := nodes[i].Node.GetId()
		if id != "" {
			if seen[id] {
				continue
			}
			seen[id] = true
		}
		n := &workNode{id: id, info: nodes[i].clone()}
		n.ready = n.info.ready()
		w.nodes = append(w.nodes, n)
		w.infos = append(w.infos, &n.info)
	}
	return w
}

// taskGroup is a run of pending tasks with equal requirements.
type taskGroup struct {
	req   requirements
	tasks []*shoalpb.Task
}

// waitingForNode reports whether Schedule should try to place t.
func waitingForNode(t *shoalpb.Task) bool {
	return t.GetId() != "" &&
		t.GetNodeId() == "" &&
		t.GetStatus().GetState() == shoalpb.TaskState_TASK_STATE_PENDING &&
		t.GetDesiredState() <= shoalpb.TaskState_TASK_STATE_RUNNING
}

// groupPending groups the schedulable tasks by requirements, keeping the
// order in which each group, and each task in it, first appears.
func groupPending(pending []*shoalpb.Task) []*taskGroup {
	var groups []*taskGroup
	byKey := make(map[string]*taskGroup)
	seen := make(map[string]bool, len(pending))
	for _, t := range pending {
		if !waitingForNode(t) || seen[t.GetId()] {
			continue
		}
		seen[t.GetId()] = true
		k := groupKey(t)
		g := byKey[k]
		if g == nil {
			g = &taskGroup{req: requirementsOf(t)}
			byKey[k] = g
			groups = append(groups, g)
		}
		g.tasks = append(g.tasks, t)
	}
	return groups
}

// scheduleGroup places the tasks of g one after the other. Nodes failing
// the static filters are left out up front; a node failing a dynamic
// filter is dropped for the rest of the group, since placing more of the
// same tasks can only make it fail again. Once no node is left, every
// remaining task is unplaced with the same explanation.
func (w *workset) scheduleGroup(g *taskGroup, res *Result) {
	r := &g.req
	if r.err != nil {
		unplace(res, g.tasks, r.err.Error())
		return
	}
	candidates := w.candidates[:0]
	for _, n := range w.nodes {
		if n.ready && r.matches(n.info.Node) {
			candidates = append(candidates, heapEntry{node: n, svcTasks: n.info.ActiveTasksByService[r.serviceID]})
		}
	}
	w.candidates = candidates
	tree := newSpreadTree(candidates, r.preferences)
	for i, t := range g.tasks {
		n := tree.pick(r)
		if n == nil {
			reason := r.explain(w.infos)
			if reason == "" {
				// Unreachable while the filters agree with the tree;
				// never leave a task without a reason.
				reason = "no suitable node"
			}
			unplace(res, g.tasks[i:], reason)
			return
		}
		res.Assigned = append(res.Assigned, Decision{TaskID: t.GetId(), NodeID: n.id})
	}
}

func unplace(res *Result, tasks []*shoalpb.Task, reason string) {
	for _, t := range tasks {
		res.Unplaced = append(res.Unplaced, Unplaced{TaskID: t.GetId(), Reason: reason})
	}
}
