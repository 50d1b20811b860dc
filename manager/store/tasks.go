package store

import (
	memdb "github.com/hashicorp/go-memdb"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

func (tx readTx) Task(id string) *shoalpb.Task {
	o, err := tx.txn.First(tableTask, indexID, id)
	if err != nil || o == nil {
		return nil
	}
	return o.(*shoalpb.Task)
}

func (tx readTx) Tasks() []*shoalpb.Task { return tx.tasks(indexID) }

func (tx readTx) TasksByService(serviceID string) []*shoalpb.Task {
	return tx.tasks(indexService, serviceID)
}

func (tx readTx) TasksByNode(nodeID string) []*shoalpb.Task {
	return tx.tasks(indexNode, nodeID)
}

func (tx readTx) tasks(index string, args ...any) []*shoalpb.Task {
	it, err := tx.txn.Get(tableTask, index, args...)
	if err != nil {
		return nil
	}
	var out []*shoalpb.Task
	for o := it.Next(); o != nil; o = it.Next() {
		out = append(out, o.(*shoalpb.Task))
	}
	return out
}

func getTask(txn *memdb.Txn, id string) *shoalpb.Task { return readTx{txn: txn}.Task(id) }

// patchCopy copies a stored task for a patch that changes only its top
// level (status, desired state, node, meta). The spec is shared, not
// copied: stored objects are never changed in place, and the spec is the
// bulk of a task, so deep copies would dominate the cost of status
// reports.
func patchCopy(old *shoalpb.Task) *shoalpb.Task {
	return &shoalpb.Task{
		Id:           old.Id,
		Meta:         old.Meta,
		ServiceId:    old.ServiceId,
		Slot:         old.Slot,
		NodeId:       old.NodeId,
		Spec:         old.Spec,
		SpecVersion:  old.SpecVersion,
		ServiceName:  old.ServiceName,
		Status:       old.Status,
		DesiredState: old.DesiredState,
		JobIteration: old.JobIteration,
		Networks:     old.Networks,
		Endpoint:     old.Endpoint,
	}
}

// applyTaskStatus records a reported status when it does not move the
// task's state backwards. A stale report is ignored, not an error: workers
// may repeat reports after reconnecting.
func applyTaskStatus(txn *memdb.Txn, index uint64, owned bool, p *shoalpb.TaskStatusPatch) (*shoalpb.Task, *shoalpb.Task, error) {
	old := getTask(txn, p.TaskId)
	if old == nil || p.Status == nil {
		// The task may have been removed since the worker reported.
		return nil, nil, nil
	}
	if p.Status.State < old.GetStatus().GetState() {
		return old, nil, nil
	}
	t := patchCopy(old)
	t.Status = keep(owned, p.Status)
	t.Meta = touched(t.Meta, index, p.Status.Timestamp)
	if err := txn.Insert(tableTask, t); err != nil {
		return nil, nil, err
	}
	return old, t, nil
}

// applyTaskDesiredState raises a task's desired state.
func applyTaskDesiredState(txn *memdb.Txn, index uint64, p *shoalpb.TaskDesiredStatePatch) (*shoalpb.Task, *shoalpb.Task, error) {
	old := getTask(txn, p.TaskId)
	if old == nil || p.DesiredState <= old.DesiredState {
		return old, nil, nil
	}
	t := patchCopy(old)
	t.DesiredState = p.DesiredState
	t.Meta = touched(t.Meta, index, p.UpdatedAt)
	if err := txn.Insert(tableTask, t); err != nil {
		return nil, nil, err
	}
	return old, t, nil
}

// acceptsTasks reports whether new tasks may be placed on n: it exists,
// is READY and ACTIVE. Checking it when the assignment applies closes the
// race with a node going down or being drained or paused after the
// scheduler read it, which no orchestrator would otherwise notice.
func acceptsTasks(n *shoalpb.Node) bool {
	return n != nil && n.GetStatus().GetState() == shoalpb.NodeState_NODE_STATE_READY &&
		n.GetSpec().GetAvailability() == shoalpb.NodeAvailability_NODE_AVAILABILITY_ACTIVE
}

// applyTaskAssignment places a task that is still pending and wanted, on a
// node that takes new tasks.
func applyTaskAssignment(txn *memdb.Txn, index uint64, owned bool, p *shoalpb.TaskAssignment) (*shoalpb.Task, *shoalpb.Task, error) {
	old := getTask(txn, p.TaskId)
	if old == nil || p.NodeId == "" || p.Status == nil ||
		old.GetStatus().GetState() >= shoalpb.TaskState_TASK_STATE_ASSIGNED ||
		old.DesiredState > shoalpb.TaskState_TASK_STATE_RUNNING ||
		(old.NodeId != "" && old.NodeId != p.NodeId) ||
		!acceptsTasks(getNode(txn, p.NodeId)) {
		return old, nil, nil
	}
	t := patchCopy(old)
	t.NodeId = p.NodeId
	t.Status = keep(owned, p.Status)
	t.Meta = touched(t.Meta, index, p.Status.Timestamp)
	if err := txn.Insert(tableTask, t); err != nil {
		return nil, nil, err
	}
	return old, t, nil
}

// applyTaskAllocation gives a task still NEW its network attachments and
// endpoint and moves it to the patch's status (PENDING). A task no longer
// NEW (or gone) is left alone: the allocation was decided on a stale view.
func applyTaskAllocation(txn *memdb.Txn, index uint64, owned bool, p *shoalpb.TaskAllocation) (*shoalpb.Task, *shoalpb.Task, error) {
	old := getTask(txn, p.TaskId)
	if old == nil || p.Status == nil || old.GetStatus().GetState() != shoalpb.TaskState_TASK_STATE_NEW {
		return old, nil, nil
	}
	t := patchCopy(old)
	t.Networks = make([]*shoalpb.NetworkAttachment, len(p.Networks))
	for i, a := range p.Networks {
		t.Networks[i] = keep(owned, a)
	}
	t.Endpoint = nil
	if p.Endpoint != nil {
		t.Endpoint = keep(owned, p.Endpoint)
	}
	t.Status = keep(owned, p.Status)
	t.Meta = touched(t.Meta, index, p.Status.Timestamp)
	if err := txn.Insert(tableTask, t); err != nil {
		return nil, nil, err
	}
	return old, t, nil
}
