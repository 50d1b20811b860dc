package orchestrator

import (
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Nodes indexes the nodes of one store view by ID.
type Nodes map[string]*shoalpb.Node

// ReadNodes indexes every node in tx.
func ReadNodes(tx store.ReadTx) Nodes {
	all := tx.Nodes()
	out := make(Nodes, len(all))
	for _, n := range all {
		out[n.Id] = n
	}
	return out
}

// IsDown reports whether n is gone from the store (nil) or marked DOWN.
func IsDown(n *shoalpb.Node) bool {
	return n == nil || n.GetStatus().GetState() == shoalpb.NodeState_NODE_STATE_DOWN
}

// IsDrained reports whether an operator drained n.
func IsDrained(n *shoalpb.Node) bool {
	return n.GetSpec().GetAvailability() == shoalpb.NodeAvailability_NODE_AVAILABILITY_DRAIN
}

// AcceptsTasks reports whether n may be given new tasks: it is READY and
// ACTIVE. A paused node keeps its tasks but gets no new ones.
func AcceptsTasks(n *shoalpb.Node) bool {
	return n != nil && n.GetStatus().GetState() == shoalpb.NodeState_NODE_STATE_READY &&
		n.GetSpec().GetAvailability() == shoalpb.NodeAvailability_NODE_AVAILABILITY_ACTIVE
}

// NodeChanged reports whether a node event changes anything placement
// depends on: the node's spec, state, role or description, or its
// existence.
func NodeChanged(ev store.Event) bool {
	n, ok := ev.Object.(*shoalpb.Node)
	if !ok {
		return false
	}
	old, _ := ev.Old.(*shoalpb.Node)
	if ev.Kind != store.EventUpdate || old == nil {
		return true
	}
	return old.GetStatus().GetState() != n.GetStatus().GetState() || old.Role != n.Role ||
		!proto.Equal(old.Spec, n.Spec) || !proto.Equal(old.Description, n.Description)
}

// TaskChanged reports whether a task event matters to the orchestrators:
// the task appeared or vanished, its desired state changed, it moved from
// one node to another, or it stopped. Its first placement and the progress
// its node reports on the way to RUNNING change no orchestration decision,
// and reacting to them would make every pass re-read every task.
func TaskChanged(ev store.Event) bool {
	t, ok := ev.Object.(*shoalpb.Task)
	if !ok {
		return false
	}
	old, _ := ev.Old.(*shoalpb.Task)
	if ev.Kind != store.EventUpdate || old == nil {
		return true
	}
	return old.DesiredState != t.DesiredState || (old.NodeId != "" && old.NodeId != t.NodeId) || HasStopped(old) != HasStopped(t)
}

// GlobalFit says what a global-mode service with task spec spec may have
// on node n (nil if gone). keep: its tasks there may go on — the node
// exists, is not DOWN or drained, and meets the constraints. place: new
// tasks may be made there — keep holds and the node accepts tasks (a
// paused node, or one not READY, keeps its tasks but gets none).
func GlobalFit(n *shoalpb.Node, spec *shoalpb.TaskSpec, filter NodeFilter) (keep, place bool) {
	if IsDown(n) || IsDrained(n) || !filter(spec, n) {
		return false, false
	}
	return true, AcceptsTasks(n)
}
