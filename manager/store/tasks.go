package store

import (
	"fmt"

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
	return tx.tasksOf(tableNodeTasks, nodeID)
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

// tasksOf lists the tasks a table of taskRefs holds for owner, in the
// order of their IDs.
func (tx readTx) tasksOf(table, owner string) []*shoalpb.Task {
	if owner == "" {
		return nil
	}
	it, err := tx.txn.Get(table, indexID+"_prefix", owner)
	if err != nil {
		return nil
	}
	var out []*shoalpb.Task
	for o := it.Next(); o != nil; o = it.Next() {
		if t := tx.Task(o.(*taskRef).task); t != nil {
			out = append(out, t)
		}
	}
	return out
}

// taskRef lists a task under its owner (its node) in the table of the
// tasks of each node.
type taskRef struct{ owner, task string }

// taskRefIndex keys a taskRef by owner, then task: the refs of an owner
// are found by prefix (memdb's "id_prefix" lookup, given the owner).
type taskRefIndex struct{}

func (taskRefIndex) FromObject(obj any) (bool, []byte, error) {
	r, ok := obj.(*taskRef)
	if !ok {
		return false, nil, fmt.Errorf("task reference index: unexpected %T", obj)
	}
	k := make([]byte, 0, len(r.owner)+len(r.task)+2)
	k = append(append(k, r.owner...), 0)
	k = append(append(k, r.task...), 0)
	return true, k, nil
}

func (taskRefIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("task reference index: want owner and task, got %d arguments", len(args))
	}
	owner, ok1 := args[0].(string)
	task, ok2 := args[1].(string)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("task reference index: arguments are %T and %T, not strings", args[0], args[1])
	}
	_, k, err := taskRefIndex{}.FromObject(&taskRef{owner, task})
	return k, err
}

func (taskRefIndex) PrefixFromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("task reference index: want an owner, got %d arguments", len(args))
	}
	owner, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("task reference index: argument is %T, not a string", args[0])
	}
	return indexKey(owner), nil
}

// putTask stores t in place of old (nil for a new task) and keeps the
// table of each node's tasks in step: it is only written when the task's
// node changes.
func putTask(txn *memdb.Txn, old, t *shoalpb.Task) error {
	if err := txn.Insert(tableTask, t); err != nil {
		return err
	}
	return moveTaskRef(txn, tableNodeTasks, old.GetNodeId(), t.NodeId, t.Id)
}

// deleteTask removes a stored task and its reference.
func deleteTask(txn *memdb.Txn, old *shoalpb.Task) error {
	if err := txn.Delete(tableTask, old); err != nil {
		return err
	}
	return moveTaskRef(txn, tableNodeTasks, old.NodeId, "", old.Id)
}

// moveTaskRef lists task under to instead of from ("" for none).
func moveTaskRef(txn *memdb.Txn, table, from, to, task string) error {
	if from == to {
		return nil
	}
	if from != "" {
		if err := txn.Delete(table, &taskRef{from, task}); err != nil {
			return fmt.Errorf("%s: %s of task %s: %w", table, from, task, err)
		}
	}
	if to != "" {
		return txn.Insert(table, &taskRef{to, task})
	}
	return nil
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
	if err := putTask(txn, old, t); err != nil {
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
	if err := putTask(txn, old, t); err != nil {
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
	if err := putTask(txn, old, t); err != nil {
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
	if err := putTask(txn, old, t); err != nil {
		return nil, nil, err
	}
	return old, t, nil
}
