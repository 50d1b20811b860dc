package store

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

func svcAction(kind shoalpb.ActionKind, s *shoalpb.Service) *shoalpb.StoreAction {
	return &shoalpb.StoreAction{Kind: kind, Target: &shoalpb.StoreAction_Service{Service: s}}
}

func taskAction(kind shoalpb.ActionKind, t *shoalpb.Task) *shoalpb.StoreAction {
	return &shoalpb.StoreAction{Kind: kind, Target: &shoalpb.StoreAction_Task{Task: t}}
}

func TestServiceNamesAreUnique(t *testing.T) {
	s := New()
	p := &LocalProposer{Store: s}
	create := shoalpb.ActionKind_ACTION_KIND_CREATE
	mustPropose(t, p, svcAction(create, &shoalpb.Service{Id: "s1", Spec: &shoalpb.ServiceSpec{Name: "web"}}))
	_, err := p.Propose(context.Background(), &shoalpb.Command{Actions: []*shoalpb.StoreAction{
		svcAction(create, &shoalpb.Service{Id: "s2", Spec: &shoalpb.ServiceSpec{Name: "WEB"}}),
	}})
	if !errors.Is(err, ErrExist) {
		t.Fatalf("duplicate name: err = %v, want ErrExist", err)
	}
	mustPropose(t, p, svcAction(create, &shoalpb.Service{Id: "s2", Spec: &shoalpb.ServiceSpec{Name: "db"}}))
	// Renaming onto a taken name is refused too.
	var db *shoalpb.Service
	s.View(func(tx ReadTx) { db = tx.Service("s2") })
	renamed := clone(db)
	renamed.Spec.Name = "web"
	if _, err := p.Propose(context.Background(), &shoalpb.Command{Actions: []*shoalpb.StoreAction{svcAction(shoalpb.ActionKind_ACTION_KIND_UPDATE, renamed)}}); !errors.Is(err, ErrExist) {
		t.Fatalf("rename onto a taken name: err = %v", err)
	}
	s.View(func(tx ReadTx) {
		for ref, want := range map[string]string{"web": "s1", "Web": "s1", "s2": "s2", "db": "s2"} {
			got, err := tx.FindService(ref)
			if err != nil || got.Id != want {
				t.Errorf("FindService(%q) = %v, %v; want %s", ref, got, err, want)
			}
		}
		if _, err := tx.FindService("s"); !errors.Is(err, ErrAmbiguous) {
			t.Errorf("FindService(s) err = %v, want ErrAmbiguous", err)
		}
		if _, err := tx.FindService("nope"); !errors.Is(err, ErrNotExist) {
			t.Errorf("FindService(nope) err = %v, want ErrNotExist", err)
		}
	})
	// Once removed, the name is free again.
	mustPropose(t, p, svcAction(shoalpb.ActionKind_ACTION_KIND_REMOVE, &shoalpb.Service{Id: "s1"}))
	mustPropose(t, p, svcAction(create, &shoalpb.Service{Id: "s3", Spec: &shoalpb.ServiceSpec{Name: "web"}}))
}

func TestTaskIndexesAndMonotonicStatus(t *testing.T) {
	s := New()
	p := &LocalProposer{Store: s}
	create := shoalpb.ActionKind_ACTION_KIND_CREATE
	mustPropose(t, p,
		taskAction(create, &shoalpb.Task{Id: "t1", ServiceId: "s1", NodeId: "n1", DesiredState: shoalpb.TaskState_TASK_STATE_RUNNING}),
		taskAction(create, &shoalpb.Task{Id: "t2", ServiceId: "s1", NodeId: "n2", DesiredState: shoalpb.TaskState_TASK_STATE_RUNNING}),
		taskAction(create, &shoalpb.Task{Id: "t3", ServiceId: "s2", DesiredState: shoalpb.TaskState_TASK_STATE_RUNNING}),
	)
	s.View(func(tx ReadTx) {
		if n := len(tx.TasksByService("s1")); n != 2 {
			t.Errorf("tasks of s1 = %d, want 2", n)
		}
		if ts := tx.TasksByNode("n2"); len(ts) != 1 || ts[0].Id != "t2" {
			t.Errorf("tasks on n2 = %v", ts)
		}
		// Unassigned tasks are not in the node index.
		if n := len(tx.TasksByNode("")); n != 0 {
			t.Errorf("TasksByNode(\"\") = %d tasks, want 0", n)
		}
	})
	status := func(st shoalpb.TaskState) *shoalpb.StoreAction {
		return &shoalpb.StoreAction{Target: &shoalpb.StoreAction_TaskStatusPatch{TaskStatusPatch: &shoalpb.TaskStatusPatch{TaskId: "t1", Status: &shoalpb.TaskStatus{State: st}}}}
	}
	mustPropose(t, p, status(shoalpb.TaskState_TASK_STATE_RUNNING))
	mustPropose(t, p, status(shoalpb.TaskState_TASK_STATE_STARTING)) // late report: ignored
	mustPropose(t, p, status(shoalpb.TaskState_TASK_STATE_RUNNING))  // repeated: fine
	s.View(func(tx ReadTx) {
		if st := tx.Task("t1").Status.State; st != shoalpb.TaskState_TASK_STATE_RUNNING {
			t.Fatalf("state = %v, want RUNNING", st)
		}
	})
	desired := func(st shoalpb.TaskState) *shoalpb.StoreAction {
		return &shoalpb.StoreAction{Target: &shoalpb.StoreAction_TaskDesiredStatePatch{TaskDesiredStatePatch: &shoalpb.TaskDesiredStatePatch{TaskId: "t1", DesiredState: st}}}
	}
	mustPropose(t, p, desired(shoalpb.TaskState_TASK_STATE_SHUTDOWN))
	mustPropose(t, p, desired(shoalpb.TaskState_TASK_STATE_RUNNING)) // never lowered
	s.View(func(tx ReadTx) {
		if d := tx.Task("t1").DesiredState; d != shoalpb.TaskState_TASK_STATE_SHUTDOWN {
			t.Fatalf("desired = %v, want SHUTDOWN", d)
		}
	})
	// A report for a task that is gone is not an error.
	mustPropose(t, p, &shoalpb.StoreAction{Target: &shoalpb.StoreAction_TaskStatusPatch{TaskStatusPatch: &shoalpb.TaskStatusPatch{TaskId: "gone", Status: &shoalpb.TaskStatus{}}}})

	s2 := New()
	restoreInto(t, s, s2)
	s2.View(func(tx ReadTx) {
		if len(tx.Tasks()) != 3 || tx.Task("t1").DesiredState != shoalpb.TaskState_TASK_STATE_SHUTDOWN {
			t.Fatalf("restored tasks: %v", tx.Tasks())
		}
	})
}

func TestTaskAssignmentOnlyPlacesPendingTasks(t *testing.T) {
	s := New()
	p := &LocalProposer{Store: s}
	create := shoalpb.ActionKind_ACTION_KIND_CREATE
	pending := &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_PENDING}
	running := shoalpb.TaskState_TASK_STATE_RUNNING
	node := func(id string, state shoalpb.NodeState, avail shoalpb.NodeAvailability) *shoalpb.StoreAction {
		return nodeAction(create, &shoalpb.Node{Id: id, Spec: &shoalpb.NodeSpec{Availability: avail}, Status: &shoalpb.NodeStatus{State: state}})
	}
	ready, active := shoalpb.NodeState_NODE_STATE_READY, shoalpb.NodeAvailability_NODE_AVAILABILITY_ACTIVE
	mustPropose(t, p, node("n1", ready, active), node("n2", ready, active), node("n3", ready, active),
		node("down", shoalpb.NodeState_NODE_STATE_DOWN, active),
		node("drained", ready, shoalpb.NodeAvailability_NODE_AVAILABILITY_DRAIN),
		node("paused", ready, shoalpb.NodeAvailability_NODE_AVAILABILITY_PAUSE))
	mustPropose(t, p,
		taskAction(create, &shoalpb.Task{Id: "late", ServiceId: "s", DesiredState: running, Status: pending}),
		taskAction(create, &shoalpb.Task{Id: "free", ServiceId: "s", DesiredState: running, Status: pending}),
		taskAction(create, &shoalpb.Task{Id: "global", ServiceId: "s", NodeId: "n1", DesiredState: running, Status: pending}),
		taskAction(create, &shoalpb.Task{Id: "stopped", ServiceId: "s", DesiredState: shoalpb.TaskState_TASK_STATE_SHUTDOWN, Status: pending}),
	)
	assign := func(task, node string) *shoalpb.StoreAction {
		return &shoalpb.StoreAction{Target: &shoalpb.StoreAction_TaskAssignment{TaskAssignment: &shoalpb.TaskAssignment{
			TaskId: task, NodeId: node, Status: &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_ASSIGNED},
		}}}
	}
	mustPropose(t, p, assign("free", "n2"), assign("global", "n2"), assign("stopped", "n2"), assign("missing", "n2"))
	mustPropose(t, p, assign("free", "n3")) // already placed: no-op
	// Decisions made before a node went down, was drained or paused, or
	// was removed do not apply.
	for _, n := range []string{"down", "drained", "paused", "gone"} {
		mustPropose(t, p, assign("late", n))
	}
	s.View(func(tx ReadTx) {
		if tk := tx.Task("free"); tk.NodeId != "n2" || tk.Status.State != shoalpb.TaskState_TASK_STATE_ASSIGNED {
			t.Errorf("free task: node %q state %v, want n2 ASSIGNED", tk.NodeId, tk.Status.State)
		}
		if tk := tx.Task("global"); tk.NodeId != "n1" || tk.Status.State != shoalpb.TaskState_TASK_STATE_PENDING {
			t.Errorf("task preset to n1 moved: node %q state %v", tk.NodeId, tk.Status.State)
		}
		if tk := tx.Task("late"); tk.NodeId != "" || tk.Status.State != shoalpb.TaskState_TASK_STATE_PENDING {
			t.Errorf("task placed on a node that takes no tasks: node %q state %v", tk.NodeId, tk.Status.State)
		}
		if tk := tx.Task("stopped"); tk.NodeId != "" {
			t.Errorf("unwanted task placed on %q", tk.NodeId)
		}
	})
}

// TestPatchCopyKeepsEveryField fails when Task gains a field that
// patchCopy does not carry over.
func TestPatchCopyKeepsEveryField(t *testing.T) {
	full := &shoalpb.Task{
		Id: "t", Meta: &shoalpb.Meta{Version: 1}, ServiceId: "s", Slot: 2, NodeId: "n",
		Spec: &shoalpb.TaskSpec{ForceUpdate: 1}, SpecVersion: 3, ServiceName: "svc",
		Status: &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_RUNNING}, DesiredState: shoalpb.TaskState_TASK_STATE_SHUTDOWN,
		JobIteration: 4,
		Networks:     []*shoalpb.NetworkAttachment{{NetworkId: "net"}},
		Endpoint:     &shoalpb.Endpoint{VirtualIps: []*shoalpb.VirtualIP{{NetworkId: "net"}}},
	}
	fields := full.ProtoReflect().Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		if fd := fields.Get(i); !full.ProtoReflect().Has(fd) {
			t.Fatalf("the fixture does not set Task.%s: set it here and carry it over in patchCopy", fd.Name())
		}
	}
	if got := patchCopy(full); !proto.Equal(got, full) {
		t.Fatalf("patchCopy lost fields:\n got %v\nwant %v", got, full)
	}
}
