package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/manager/caller"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// fakeAssignmentStream records what the dispatcher sends.
type fakeAssignmentStream struct {
	grpc.ServerStream
	ctx  context.Context
	mu   sync.Mutex
	msgs []*shoalpb.AssignmentsMessage
}

func (s *fakeAssignmentStream) Context() context.Context { return s.ctx }

func (s *fakeAssignmentStream) Send(m *shoalpb.AssignmentsMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	return nil
}

func (s *fakeAssignmentStream) received() []*shoalpb.AssignmentsMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*shoalpb.AssignmentsMessage(nil), s.msgs...)
}

func taskOn(id, node string, state shoalpb.TaskState) *shoalpb.StoreAction {
	return &shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Task{Task: &shoalpb.Task{
		Id: id, ServiceId: "svc", NodeId: node, DesiredState: shoalpb.TaskState_TASK_STATE_RUNNING,
		Status: &shoalpb.TaskStatus{State: state},
	}}}
}

// startAssignments runs an assignment stream for node until the test ends.
func (e *env) startAssignments(node string) (*fakeAssignmentStream, <-chan error) {
	ctx, cancel := context.WithCancel(caller.With(context.Background(), caller.Caller{NodeID: node, Role: caller.Worker}))
	s := &fakeAssignmentStream{ctx: ctx}
	errc := make(chan error, 1)
	go func() { errc <- e.d.Assignments(&shoalpb.AssignmentsRequest{}, s) }()
	e.t.Cleanup(cancel)
	return s, errc
}

// assignmentState replays the messages into the set of tasks the node
// would hold, and reports whether a complete set was seen.
func assignmentState(msgs []*shoalpb.AssignmentsMessage) (map[string]*shoalpb.Task, bool) {
	set := map[string]*shoalpb.Task{}
	complete, inComplete := false, false
	for _, m := range msgs {
		if m.Type == shoalpb.AssignmentsMessage_TYPE_COMPLETE && !inComplete {
			set = map[string]*shoalpb.Task{}
			inComplete = true
		}
		for _, t := range m.UpdateTasks {
			set[t.Id] = t
		}
		for _, id := range m.RemoveTasks {
			delete(set, id)
		}
		if m.Last {
			if inComplete {
				complete = true
			}
			inComplete = false
		}
	}
	return set, complete
}

func TestAssignmentsCompleteThenIncremental(t *testing.T) {
	e := newEnv(t, time.Second)
	e.addNode("w1", shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_READY)
	e.addNode("w2", shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_READY)
	e.propose(
		taskOn("a", "w1", shoalpb.TaskState_TASK_STATE_ASSIGNED),
		taskOn("b", "w1", shoalpb.TaskState_TASK_STATE_RUNNING),
		taskOn("pending", "w1", shoalpb.TaskState_TASK_STATE_PENDING), // not placed yet
		taskOn("other", "w2", shoalpb.TaskState_TASK_STATE_ASSIGNED),
	)
	s, _ := e.startAssignments("w1")
	waitFor(t, "the complete set", func() bool { _, ok := assignmentState(s.received()); return ok })
	set, _ := assignmentState(s.received())
	if len(set) != 2 || set["a"] == nil || set["b"] == nil {
		t.Fatalf("complete set = %v, want a and b", keys(set))
	}

	// Placement, a desired-state change, a task of another node and a
	// deletion arrive as changes.
	e.propose(&shoalpb.StoreAction{Target: &shoalpb.StoreAction_TaskStatusPatch{TaskStatusPatch: &shoalpb.TaskStatusPatch{TaskId: "pending", Status: &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_ASSIGNED}}}})
	e.propose(&shoalpb.StoreAction{Target: &shoalpb.StoreAction_TaskDesiredStatePatch{TaskDesiredStatePatch: &shoalpb.TaskDesiredStatePatch{TaskId: "b", DesiredState: shoalpb.TaskState_TASK_STATE_SHUTDOWN}}})
	e.propose(taskOn("other2", "w2", shoalpb.TaskState_TASK_STATE_ASSIGNED))
	e.propose(&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_REMOVE, Target: &shoalpb.StoreAction_Task{Task: &shoalpb.Task{Id: "a"}}})
	waitFor(t, "the changes", func() bool {
		set, _ := assignmentState(s.received())
		return len(set) == 2 && set["pending"] != nil && set["b"].GetDesiredState() == shoalpb.TaskState_TASK_STATE_SHUTDOWN
	})
	for _, m := range s.received()[1:] {
		if m.Type != shoalpb.AssignmentsMessage_TYPE_INCREMENTAL {
			t.Fatalf("change sent as %v", m.Type)
		}
		for _, tk := range m.UpdateTasks {
			if tk.NodeId != "w1" {
				t.Fatalf("task %s of node %s sent to w1", tk.Id, tk.NodeId)
			}
		}
	}
}

func TestAssignmentsChunkLargeSets(t *testing.T) {
	e := newEnv(t, time.Second)
	e.addNode("w1", shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_READY)
	const n = 1234
	var actions []*shoalpb.StoreAction
	for i := 0; i < n; i++ {
		actions = append(actions, taskOn(fmt.Sprintf("t%04d", i), "w1", shoalpb.TaskState_TASK_STATE_ASSIGNED))
	}
	e.propose(actions...)
	s, _ := e.startAssignments("w1")
	waitFor(t, "the complete set", func() bool { _, ok := assignmentState(s.received()); return ok })
	msgs := s.received()
	set, _ := assignmentState(msgs)
	if len(set) != n {
		t.Fatalf("complete set has %d tasks, want %d", len(set), n)
	}
	if len(msgs) != 3 {
		t.Fatalf("%d messages for %d tasks, want 3 of at most %d", len(msgs), n, maxAssignmentBatch)
	}
	for _, m := range msgs {
		if len(m.UpdateTasks) > maxAssignmentBatch {
			t.Fatalf("message with %d tasks", len(m.UpdateTasks))
		}
	}
}

func TestAssignmentsRefuseUnknownNode(t *testing.T) {
	e := newEnv(t, time.Second)
	_, errc := e.startAssignments("ghost")
	if err := <-errc; status.Code(err) != codes.NotFound {
		t.Fatalf("unknown node: %v, want NotFound", err)
	}
}

func TestUpdateTaskStatusBatchesAndChecksOwnership(t *testing.T) {
	e := newEnv(t, time.Second)
	e.addNode("w1", shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_READY)
	e.addNode("w2", shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_READY)
	e.propose(taskOn("a", "w1", shoalpb.TaskState_TASK_STATE_ASSIGNED), taskOn("b", "w2", shoalpb.TaskState_TASK_STATE_ASSIGNED))
	ctx := caller.With(context.Background(), caller.Caller{NodeID: "w1", Role: caller.Worker})
	running := &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_RUNNING}

	// Not leading: the batcher is not running, so the report is refused
	// rather than lost.
	if _, err := e.d.UpdateTaskStatus(ctx, &shoalpb.UpdateTaskStatusRequest{Updates: []*shoalpb.TaskStatusUpdate{{TaskId: "a", Status: running}}}); status.Code(err) != codes.Unavailable {
		t.Fatalf("report without a running batcher: %v, want Unavailable", err)
	}
	e.startRun(nil)

	if _, err := e.d.UpdateTaskStatus(ctx, &shoalpb.UpdateTaskStatusRequest{Updates: []*shoalpb.TaskStatusUpdate{{TaskId: "b", Status: running}}}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("report on another node's task: %v, want PermissionDenied", err)
	}
	if _, err := e.d.UpdateTaskStatus(ctx, &shoalpb.UpdateTaskStatusRequest{Updates: []*shoalpb.TaskStatusUpdate{{TaskId: "a"}}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("report without status: %v, want InvalidArgument", err)
	}

	// Many concurrent reports: all are recorded when the calls return, in
	// fewer entries than calls.
	var actions []*shoalpb.StoreAction
	for i := 0; i < 200; i++ {
		actions = append(actions, taskOn(fmt.Sprintf("c%03d", i), "w1", shoalpb.TaskState_TASK_STATE_ASSIGNED))
	}
	e.propose(actions...)
	before := e.st.AppliedIndex()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := e.d.UpdateTaskStatus(ctx, &shoalpb.UpdateTaskStatusRequest{Updates: []*shoalpb.TaskStatusUpdate{
				{TaskId: fmt.Sprintf("c%03d", i), Status: running},
				{TaskId: "vanished", Status: running}, // deleted tasks are dropped quietly
			}})
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("report: %v", err)
		}
	}
	e.st.View(func(tx store.ReadTx) {
		for i := 0; i < 200; i++ {
			if st := tx.Task(fmt.Sprintf("c%03d", i)).GetStatus().GetState(); st != shoalpb.TaskState_TASK_STATE_RUNNING {
				t.Fatalf("task c%03d is %v after its report returned", i, st)
			}
		}
	})
	if entries := e.st.AppliedIndex() - before; entries >= 200 {
		t.Fatalf("200 reports took %d entries; want them batched", entries)
	}
}

func keys(m map[string]*shoalpb.Task) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestAssignmentsDoNotEchoStatusReports checks that a node is not sent its
// own status reports back: only changes of what is asked of it travel.
func TestAssignmentsDoNotEchoStatusReports(t *testing.T) {
	e := newEnv(t, time.Second)
	e.addNode("w1", shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_READY)
	e.propose(taskOn("a", "w1", shoalpb.TaskState_TASK_STATE_ASSIGNED))
	s, _ := e.startAssignments("w1")
	waitFor(t, "the complete set", func() bool { _, ok := assignmentState(s.received()); return ok })

	for _, st := range []shoalpb.TaskState{shoalpb.TaskState_TASK_STATE_ACCEPTED, shoalpb.TaskState_TASK_STATE_RUNNING} {
		e.propose(&shoalpb.StoreAction{Target: &shoalpb.StoreAction_TaskStatusPatch{TaskStatusPatch: &shoalpb.TaskStatusPatch{TaskId: "a", Status: &shoalpb.TaskStatus{State: st}}}})
	}
	// A later change of another task flushes whatever the reports caused.
	e.propose(taskOn("b", "w1", shoalpb.TaskState_TASK_STATE_ASSIGNED))
	waitFor(t, "the new task", func() bool { set, _ := assignmentState(s.received()); return set["b"] != nil })
	for _, m := range s.received()[1:] {
		for _, tk := range m.UpdateTasks {
			if tk.Id == "a" {
				t.Fatalf("status report echoed to the node: task a in state %v", tk.GetStatus().GetState())
			}
		}
	}
	e.propose(&shoalpb.StoreAction{Target: &shoalpb.StoreAction_TaskDesiredStatePatch{TaskDesiredStatePatch: &shoalpb.TaskDesiredStatePatch{TaskId: "a", DesiredState: shoalpb.TaskState_TASK_STATE_SHUTDOWN}}})
	waitFor(t, "the desired-state change", func() bool {
		set, _ := assignmentState(s.received())
		return set["a"].GetDesiredState() == shoalpb.TaskState_TASK_STATE_SHUTDOWN
	})
}

// TestNotReadyManagerServesNoNode checks that a manager still catching up
// sends nodes elsewhere instead of serving its stale store.
func TestNotReadyManagerServesNoNode(t *testing.T) {
	e := newEnv(t, time.Second)
	e.addNode("w1", shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_READY)
	e.propose(taskOn("a", "w1", shoalpb.TaskState_TASK_STATE_RUNNING))
	e.d.Ready = func() error { return errors.New("applied index 3 is behind the commit index 9") }
	if _, err := e.beat("w1", nil); status.Code(err) != codes.Unavailable {
		t.Fatalf("heartbeat to a manager catching up: %v, want Unavailable", err)
	}
	s, errc := e.startAssignments("w1")
	if err := <-errc; status.Code(err) != codes.Unavailable {
		t.Fatalf("assignments from a manager catching up: %v, want Unavailable", err)
	}
	if len(s.received()) != 0 {
		t.Fatalf("a manager catching up sent %d assignment messages", len(s.received()))
	}
	e.d.Ready = func() error { return nil }
	if _, err := e.beat("w1", nil); err != nil {
		t.Fatalf("heartbeat once caught up: %v", err)
	}
}
