package manager

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

func newSchedulingLoop(t *testing.T) (*schedulingLoop, *store.LocalProposer) {
	t.Helper()
	st := store.New()
	p := &store.LocalProposer{Store: st}
	fixed := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return &schedulingLoop{store: st, proposer: p, now: func() time.Time { return fixed }, log: slog.New(slog.NewTextHandler(io.Discard, nil))}, p
}

func mustApply(t *testing.T, p store.Proposer, actions ...*shoalpb.StoreAction) {
	t.Helper()
	if _, err := p.Propose(context.Background(), &shoalpb.Command{Actions: actions}); err != nil {
		t.Fatal(err)
	}
}

func readyNode(id string, labels map[string]string, avail shoalpb.NodeAvailability) *shoalpb.StoreAction {
	return &shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Node{Node: &shoalpb.Node{
		Id:          id,
		Spec:        &shoalpb.NodeSpec{Labels: labels, Availability: avail},
		Description: &shoalpb.NodeDescription{Hostname: id, Resources: &shoalpb.Resources{NanoCpus: 2e9, MemoryBytes: 1 << 30}},
		Status:      &shoalpb.NodeStatus{State: shoalpb.NodeState_NODE_STATE_READY},
	}}}
}

func pending(id, node string, constraints ...string) *shoalpb.StoreAction {
	return &shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Task{Task: &shoalpb.Task{
		Id: id, ServiceId: "svc", NodeId: node, DesiredState: shoalpb.TaskState_TASK_STATE_RUNNING,
		Spec:   &shoalpb.TaskSpec{Placement: &shoalpb.Placement{Constraints: constraints}},
		Status: &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_PENDING},
	}}}
}

func TestSchedulingPassSpreadsAndExplains(t *testing.T) {
	l, p := newSchedulingLoop(t)
	mustApply(t, p,
		readyNode("n1", nil, shoalpb.NodeAvailability_NODE_AVAILABILITY_ACTIVE),
		readyNode("n2", nil, shoalpb.NodeAvailability_NODE_AVAILABILITY_ACTIVE),
		readyNode("n3", nil, shoalpb.NodeAvailability_NODE_AVAILABILITY_DRAIN),
	)
	var tasks []*shoalpb.StoreAction
	for i := 0; i < 6; i++ {
		tasks = append(tasks, pending(fmt.Sprintf("t%d", i), ""))
	}
	tasks = append(tasks,
		pending("mars", "", "node.labels.zone==mars"),
		pending("global-drained", "n3"),
		pending("global-gone", "n9"),
	)
	mustApply(t, p, tasks...)
	l.pass(context.Background())

	perNode := map[string]int{}
	l.store.View(func(tx store.ReadTx) {
		for i := 0; i < 6; i++ {
			tk := tx.Task(fmt.Sprintf("t%d", i))
			if tk.Status.State != shoalpb.TaskState_TASK_STATE_ASSIGNED {
				t.Fatalf("task %s is %v, want ASSIGNED", tk.Id, tk.Status.State)
			}
			perNode[tk.NodeId]++
		}
		for id, want := range map[string]string{"mars": "constraint node.labels.zone==mars", "global-drained": "not available", "global-gone": "not part of the swarm"} {
			tk := tx.Task(id)
			if tk.Status.State != shoalpb.TaskState_TASK_STATE_PENDING || !strings.Contains(tk.Status.Err, want) {
				t.Errorf("task %s: state %v err %q; want PENDING with %q", id, tk.Status.State, tk.Status.Err, want)
			}
		}
	})
	if perNode["n1"] != 3 || perNode["n2"] != 3 || perNode["n3"] != 0 {
		t.Fatalf("placement per node = %v, want 3/3/0", perNode)
	}

	// A second pass has nothing new to say: nothing is written.
	before := l.store.AppliedIndex()
	l.pass(context.Background())
	if after := l.store.AppliedIndex(); after != before {
		t.Fatalf("an idle pass wrote %d entries", after-before)
	}
}

func TestSchedulingLoopReactsToNewNodes(t *testing.T) {
	l, p := newSchedulingLoop(t)
	mustApply(t, p, pending("waiting", ""))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.run(ctx) }()
	defer func() { cancel(); <-done }()

	waitUntil(t, "an explanation for the waiting task", func() bool {
		var err string
		l.store.View(func(tx store.ReadTx) { err = tx.Task("waiting").GetStatus().GetErr() })
		return err != ""
	})
	mustApply(t, p, readyNode("n1", nil, shoalpb.NodeAvailability_NODE_AVAILABILITY_ACTIVE))
	waitUntil(t, "the task placed on the new node", func() bool {
		var tk *shoalpb.Task
		l.store.View(func(tx store.ReadTx) { tk = tx.Task("waiting") })
		return tk.NodeId == "n1" && tk.Status.State == shoalpb.TaskState_TASK_STATE_ASSIGNED
	})
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func TestSchedulingPresetTaskReservationCountedOnce(t *testing.T) {
	l, p := newSchedulingLoop(t)
	mustApply(t, p, readyNode("n1", nil, shoalpb.NodeAvailability_NODE_AVAILABILITY_ACTIVE))
	big := pending("big", "n1")
	big.GetTask().Spec.Resources = &shoalpb.ResourceRequirements{Reservations: &shoalpb.Resources{MemoryBytes: 3 << 28}} // 768 MiB of 1 GiB
	mustApply(t, p, big)
	l.pass(context.Background())
	l.store.View(func(tx store.ReadTx) {
		if tk := tx.Task("big"); tk.Status.State != shoalpb.TaskState_TASK_STATE_ASSIGNED {
			t.Fatalf("global task reserving most of its node: %v %q, want ASSIGNED", tk.Status.State, tk.Status.Err)
		}
	})
}

func TestSchedulingPassCountsPlacedTasks(t *testing.T) {
	l, p := newSchedulingLoop(t)
	mustApply(t, p, readyNode("n1", nil, shoalpb.NodeAvailability_NODE_AVAILABILITY_ACTIVE))
	reserve := func(a *shoalpb.StoreAction, mem int64) *shoalpb.StoreAction {
		a.GetTask().Spec.Resources = &shoalpb.ResourceRequirements{Reservations: &shoalpb.Resources{MemoryBytes: mem}}
		return a
	}
	running := reserve(pending("running", "n1"), 3<<28) // 768 MiB of 1 GiB
	running.GetTask().Status.State = shoalpb.TaskState_TASK_STATE_RUNNING
	// A task on a node that is gone takes nothing from n1.
	elsewhere := reserve(pending("elsewhere", "n9"), 3<<28)
	elsewhere.GetTask().Status.State = shoalpb.TaskState_TASK_STATE_RUNNING
	mustApply(t, p, running, elsewhere, reserve(pending("big", ""), 1<<29), reserve(pending("small", ""), 1<<27))
	l.pass(context.Background())
	l.store.View(func(tx store.ReadTx) {
		if tk := tx.Task("big"); tk.Status.State != shoalpb.TaskState_TASK_STATE_PENDING || !strings.Contains(tk.Status.Err, "memory") {
			t.Errorf("512 MiB task beside a 768 MiB one on a 1 GiB node: %v %q, want PENDING for memory", tk.Status.State, tk.Status.Err)
		}
		if tk := tx.Task("small"); tk.Status.State != shoalpb.TaskState_TASK_STATE_ASSIGNED {
			t.Errorf("128 MiB task: %v %q, want ASSIGNED", tk.Status.State, tk.Status.Err)
		}
	})
}

// recordingProposer keeps the commands it applies.
type recordingProposer struct {
	store.LocalProposer
	cmds []*shoalpb.Command
}

func (p *recordingProposer) Propose(ctx context.Context, cmd *shoalpb.Command) (uint64, error) {
	p.cmds = append(p.cmds, cmd)
	return p.LocalProposer.Propose(ctx, cmd)
}

func TestSchedulingPassGroupsEntriesByNode(t *testing.T) {
	l, p := newSchedulingLoop(t)
	const nodes, perNode = 3, 700 // 2,100 decisions: three entries
	for i := 0; i < nodes; i++ {
		mustApply(t, p, readyNode(fmt.Sprintf("n%d", i), nil, shoalpb.NodeAvailability_NODE_AVAILABILITY_ACTIVE))
	}
	var tasks []*shoalpb.StoreAction
	for i := 0; i < nodes*perNode; i++ {
		tasks = append(tasks, pending(fmt.Sprintf("t%04d", i), ""))
	}
	mustApply(t, p, tasks...)
	rec := &recordingProposer{LocalProposer: store.LocalProposer{Store: l.store}}
	l.proposer = rec
	l.pass(context.Background())
	if len(rec.cmds) != 3 {
		t.Fatalf("%d entries, want 3", len(rec.cmds))
	}
	// Each node's decisions are in as few entries as possible: 1, 2, 2.
	entries := map[string]map[int]bool{}
	placed := 0
	for i, cmd := range rec.cmds {
		for _, a := range cmd.Actions {
			d := a.GetTaskAssignment()
			if d == nil {
				t.Fatalf("entry %d holds %v", i, a)
			}
			if entries[d.NodeId] == nil {
				entries[d.NodeId] = map[int]bool{}
			}
			entries[d.NodeId][i] = true
			placed++
		}
	}
	total := 0
	for _, e := range entries {
		total += len(e)
	}
	if placed != nodes*perNode || len(entries) != nodes || total > nodes+len(rec.cmds)-1 {
		t.Fatalf("%d placed on %d nodes, nodes spread over %d entries in all (%v); want %d on %d in at most %d", placed, len(entries), total, entries, nodes*perNode, nodes, nodes+len(rec.cmds)-1)
	}
}

func TestSchedulingRelevantChanges(t *testing.T) {
	task := func(state, desired shoalpb.TaskState, node string) *shoalpb.Task {
		return &shoalpb.Task{Id: "t", NodeId: node, DesiredState: desired, Status: &shoalpb.TaskStatus{State: state}}
	}
	const (
		pending  = shoalpb.TaskState_TASK_STATE_PENDING
		assigned = shoalpb.TaskState_TASK_STATE_ASSIGNED
		running  = shoalpb.TaskState_TASK_STATE_RUNNING
		failed   = shoalpb.TaskState_TASK_STATE_FAILED
		shutdown = shoalpb.TaskState_TASK_STATE_SHUTDOWN
	)
	upd := func(old, new *shoalpb.Task) store.Event {
		return store.Event{Kind: store.EventUpdate, Old: old, Object: new}
	}
	for _, tc := range []struct {
		name    string
		waiting bool
		ev      store.Event
		want    bool
	}{
		{"new pending task", false, store.Event{Kind: store.EventCreate, Object: task(pending, running, "")}, true},
		{"node change", false, store.Event{Kind: store.EventUpdate, Object: &shoalpb.Node{Id: "n"}}, true},
		{"restore", false, store.Event{Kind: store.EventRestore}, true},
		{"progress report", false, upd(task(assigned, running, "n"), task(running, running, "n")), false},
		{"progress report while tasks wait", true, upd(task(assigned, running, "n"), task(running, running, "n")), false},
		{"reason of an unplaced task", true, upd(task(pending, running, ""), task(pending, running, "")), false},
		{"task failed, nothing waits", false, upd(task(running, running, "n"), task(failed, running, "n")), false},
		{"task failed while tasks wait", true, upd(task(running, running, "n"), task(failed, running, "n")), true},
		{"task shut down while tasks wait", true, upd(task(running, running, "n"), task(running, shutdown, "n")), true},
		{"task removed while tasks wait", true, store.Event{Kind: store.EventRemove, Object: task(running, running, "n")}, true},
	} {
		l := &schedulingLoop{waiting: tc.waiting}
		if got := l.relevant(tc.ev); got != tc.want {
			t.Errorf("%s: relevant = %v, want %v", tc.name, got, tc.want)
		}
	}
}
