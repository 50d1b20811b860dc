package store

import (
	"testing"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// TestTaskAllocationAppliesOnlyToNewTasks checks that an allocation moves
// a NEW task to PENDING with its attachments, keeps what others changed
// meanwhile (the desired state), and is ignored once the task left NEW.
func TestTaskAllocationAppliesOnlyToNewTasks(t *testing.T) {
	s := New()
	p := &LocalProposer{Store: s}
	create := shoalpb.ActionKind_ACTION_KIND_CREATE
	newTask := &shoalpb.Task{Id: "t1", ServiceId: "s1", DesiredState: shoalpb.TaskState_TASK_STATE_RUNNING,
		Status: &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_NEW, Err: "network front: no IPv4 address left in 10.0.1.0/29"}}
	mustPropose(t, p, &shoalpb.StoreAction{Kind: create, Target: &shoalpb.StoreAction_Task{Task: newTask}})
	mustPropose(t, p, &shoalpb.StoreAction{Target: &shoalpb.StoreAction_TaskDesiredStatePatch{TaskDesiredStatePatch: &shoalpb.TaskDesiredStatePatch{TaskId: "t1", DesiredState: shoalpb.TaskState_TASK_STATE_SHUTDOWN}}})

	alloc := func(addr string) *shoalpb.StoreAction {
		return &shoalpb.StoreAction{Target: &shoalpb.StoreAction_TaskAllocation{TaskAllocation: &shoalpb.TaskAllocation{
			TaskId:   "t1",
			Networks: []*shoalpb.NetworkAttachment{{NetworkId: "n1", Vni: 4097, Addresses: []string{addr}}},
			Endpoint: &shoalpb.Endpoint{VirtualIps: []*shoalpb.VirtualIP{{NetworkId: "n1", Addr: "10.0.1.2/24"}}},
			Status:   &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_PENDING, Timestamp: 42, Message: "pending"},
		}}}
	}
	mustPropose(t, p, alloc("10.0.1.3/24"))
	var got *shoalpb.Task
	s.View(func(tx ReadTx) { got = tx.Task("t1") })
	if got.GetStatus().GetState() != shoalpb.TaskState_TASK_STATE_PENDING || got.GetStatus().GetErr() != "" {
		t.Errorf("status after allocation = %v, want PENDING without the old error", got.GetStatus())
	}
	if got.DesiredState != shoalpb.TaskState_TASK_STATE_SHUTDOWN {
		t.Errorf("desired state = %v: the allocation overwrote it", got.DesiredState)
	}
	if len(got.Networks) != 1 || got.Networks[0].Addresses[0] != "10.0.1.3/24" || got.Endpoint.GetVirtualIps()[0].GetAddr() != "10.0.1.2/24" {
		t.Errorf("attachments = %v, endpoint = %v", got.Networks, got.Endpoint)
	}
	if got.Meta.UpdatedAt != 42 {
		t.Errorf("updated_at = %d, want the status timestamp 42", got.Meta.UpdatedAt)
	}

	// A second allocation (decided on a stale view) changes nothing.
	before := got.Meta.Version
	mustPropose(t, p, alloc("10.0.1.9/24"))
	s.View(func(tx ReadTx) { got = tx.Task("t1") })
	if got.Meta.Version != before || got.Networks[0].Addresses[0] != "10.0.1.3/24" {
		t.Errorf("stale allocation applied: %v", got)
	}
	// An allocation of a task that no longer exists is a no-op, not an error.
	mustPropose(t, p, &shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_REMOVE, Target: &shoalpb.StoreAction_Task{Task: &shoalpb.Task{Id: "t1"}}})
	mustPropose(t, p, alloc("10.0.1.3/24"))
}

// TestNodeAttachmentsPatch checks that the patch replaces a node's
// attachments only, and that a patch of a removed node is a no-op.
func TestNodeAttachmentsPatch(t *testing.T) {
	s := New()
	p := &LocalProposer{Store: s}
	mustPropose(t, p, nodeAction(shoalpb.ActionKind_ACTION_KIND_CREATE, &shoalpb.Node{Id: "n1", Spec: &shoalpb.NodeSpec{Labels: map[string]string{"a": "b"}},
		Attachments: []*shoalpb.NodeAttachment{{NetworkId: "old", Addr: "10.0.0.9/24"}}}))
	patch := func(id string, atts ...*shoalpb.NodeAttachment) *shoalpb.StoreAction {
		return &shoalpb.StoreAction{Target: &shoalpb.StoreAction_NodeAttachmentsPatch{NodeAttachmentsPatch: &shoalpb.NodeAttachmentsPatch{NodeId: id, Attachments: atts, UpdatedAt: 7}}}
	}
	mustPropose(t, p, patch("n1", &shoalpb.NodeAttachment{NetworkId: "ing", Addr: "10.0.0.5/24"}))
	var n *shoalpb.Node
	s.View(func(tx ReadTx) { n = tx.Node("n1") })
	if len(n.Attachments) != 1 || n.Attachments[0].NetworkId != "ing" || n.Spec.Labels["a"] != "b" || n.Meta.UpdatedAt != 7 {
		t.Fatalf("patched node %v", n)
	}
	mustPropose(t, p, patch("gone"))
}
