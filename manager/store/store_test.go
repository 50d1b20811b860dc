package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

func nodeAction(kind shoalpb.ActionKind, n *shoalpb.Node) *shoalpb.StoreAction {
	return &shoalpb.StoreAction{Kind: kind, Target: &shoalpb.StoreAction_Node{Node: n}}
}

func mustPropose(t *testing.T, p Proposer, actions ...*shoalpb.StoreAction) uint64 {
	t.Helper()
	idx, err := p.Propose(context.Background(), &shoalpb.Command{Actions: actions})
	if err != nil {
		t.Fatalf("propose: %v", err)
	}
	return idx
}

func TestCreateUpdateRemoveVersions(t *testing.T) {
	s := New()
	p := &LocalProposer{Store: s}
	idx := mustPropose(t, p, nodeAction(shoalpb.ActionKind_ACTION_KIND_CREATE, &shoalpb.Node{Id: "n1", Meta: &shoalpb.Meta{CreatedAt: 10}, Description: &shoalpb.NodeDescription{Hostname: "h1"}}))

	var n *shoalpb.Node
	s.View(func(tx ReadTx) { n = tx.Node("n1") })
	if n == nil || n.Meta.Version != idx || n.Meta.CreatedAt != 10 {
		t.Fatalf("created node = %v, want version %d", n, idx)
	}

	// A second create of the same ID fails and changes nothing.
	_, err := p.Propose(context.Background(), &shoalpb.Command{Actions: []*shoalpb.StoreAction{nodeAction(shoalpb.ActionKind_ACTION_KIND_CREATE, &shoalpb.Node{Id: "n1"})}})
	if !errors.Is(err, ErrExist) {
		t.Fatalf("duplicate create: err = %v, want ErrExist", err)
	}

	// An update carrying a stale version is refused.
	stale := clone(n)
	stale.Meta.Version = idx - 1
	_, err = p.Propose(context.Background(), &shoalpb.Command{Actions: []*shoalpb.StoreAction{nodeAction(shoalpb.ActionKind_ACTION_KIND_UPDATE, stale)}})
	if !errors.Is(err, ErrSequenceConflict) {
		t.Fatalf("stale update: err = %v, want ErrSequenceConflict", err)
	}
	upd := clone(n)
	upd.Description.Hostname = "h1b"
	idx2 := mustPropose(t, p, nodeAction(shoalpb.ActionKind_ACTION_KIND_UPDATE, upd))
	s.View(func(tx ReadTx) { n = tx.Node("n1") })
	if n.Description.Hostname != "h1b" || n.Meta.Version != idx2 || n.Meta.CreatedAt != 10 {
		t.Fatalf("updated node = %v", n)
	}

	mustPropose(t, p, nodeAction(shoalpb.ActionKind_ACTION_KIND_REMOVE, &shoalpb.Node{Id: "n1"}))
	s.View(func(tx ReadTx) { n = tx.Node("n1") })
	if n != nil {
		t.Fatalf("node still present after remove: %v", n)
	}
}

func TestCommandIsAtomic(t *testing.T) {
	s := New()
	p := &LocalProposer{Store: s}
	_, err := p.Propose(context.Background(), &shoalpb.Command{Actions: []*shoalpb.StoreAction{
		nodeAction(shoalpb.ActionKind_ACTION_KIND_CREATE, &shoalpb.Node{Id: "a"}),
		nodeAction(shoalpb.ActionKind_ACTION_KIND_UPDATE, &shoalpb.Node{Id: "missing"}),
	}})
	if !errors.Is(err, ErrNotExist) {
		t.Fatalf("err = %v, want ErrNotExist", err)
	}
	s.View(func(tx ReadTx) {
		if len(tx.Nodes()) != 0 {
			t.Fatalf("failed command left %d nodes", len(tx.Nodes()))
		}
	})
}

func TestLabelPatchesMerge(t *testing.T) {
	s := New()
	p := &LocalProposer{Store: s}
	mustPropose(t, p, nodeAction(shoalpb.ActionKind_ACTION_KIND_CREATE, &shoalpb.Node{Id: "n1", Spec: &shoalpb.NodeSpec{Labels: map[string]string{"keep": "1", "drop": "1"}}}))
	patch := func(p2 *shoalpb.NodeSpecPatch) *shoalpb.StoreAction {
		return &shoalpb.StoreAction{Target: &shoalpb.StoreAction_NodeSpecPatch{NodeSpecPatch: p2}}
	}
	mustPropose(t, p, patch(&shoalpb.NodeSpecPatch{NodeId: "n1", LabelsAdd: map[string]string{"a": "1"}}))
	mustPropose(t, p, patch(&shoalpb.NodeSpecPatch{NodeId: "n1", LabelsAdd: map[string]string{"b": "2"}, LabelsRm: []string{"drop"}}))
	mustPropose(t, p, patch(&shoalpb.NodeSpecPatch{NodeId: "n1", SetAvailability: true, Availability: shoalpb.NodeAvailability_NODE_AVAILABILITY_DRAIN}))
	s.View(func(tx ReadTx) {
		n := tx.Node("n1")
		want := map[string]string{"keep": "1", "a": "1", "b": "2"}
		if len(n.Spec.Labels) != len(want) {
			t.Fatalf("labels = %v, want %v", n.Spec.Labels, want)
		}
		for k, v := range want {
			if n.Spec.Labels[k] != v {
				t.Fatalf("labels = %v, want %v", n.Spec.Labels, want)
			}
		}
		if n.Spec.Availability != shoalpb.NodeAvailability_NODE_AVAILABILITY_DRAIN {
			t.Fatalf("availability = %v", n.Spec.Availability)
		}
	})
}

func TestConditionalStatusPatch(t *testing.T) {
	s := New()
	p := &LocalProposer{Store: s}
	mustPropose(t, p, nodeAction(shoalpb.ActionKind_ACTION_KIND_CREATE, &shoalpb.Node{Id: "n1", Status: &shoalpb.NodeStatus{State: shoalpb.NodeState_NODE_STATE_READY, Addr: "198.18.0.1"}}))
	down := &shoalpb.StoreAction{Target: &shoalpb.StoreAction_NodeStatusPatch{NodeStatusPatch: &shoalpb.NodeStatusPatch{
		NodeId: "n1", Status: &shoalpb.NodeStatus{State: shoalpb.NodeState_NODE_STATE_DOWN}, CheckState: true, OnlyIfState: shoalpb.NodeState_NODE_STATE_UNKNOWN,
	}}}
	mustPropose(t, p, down) // condition false: no-op
	s.View(func(tx ReadTx) {
		if st := tx.Node("n1").Status.State; st != shoalpb.NodeState_NODE_STATE_READY {
			t.Fatalf("state = %v after a patch whose condition failed", st)
		}
	})
	down.GetNodeStatusPatch().OnlyIfState = shoalpb.NodeState_NODE_STATE_READY
	mustPropose(t, p, down)
	s.View(func(tx ReadTx) {
		n := tx.Node("n1")
		if n.Status.State != shoalpb.NodeState_NODE_STATE_DOWN || n.Status.Addr != "198.18.0.1" {
			t.Fatalf("status = %v, want DOWN keeping the address", n.Status)
		}
	})
}

func TestFindNode(t *testing.T) {
	s := New()
	p := &LocalProposer{Store: s}
	for _, n := range []*shoalpb.Node{
		{Id: "abc111", Description: &shoalpb.NodeDescription{Hostname: "alpha"}},
		{Id: "abc222", Description: &shoalpb.NodeDescription{Hostname: "beta"}},
		{Id: "xyz333", Description: &shoalpb.NodeDescription{Hostname: "beta"}},
	} {
		mustPropose(t, p, nodeAction(shoalpb.ActionKind_ACTION_KIND_CREATE, n))
	}
	s.View(func(tx ReadTx) {
		for ref, want := range map[string]string{"abc111": "abc111", "alpha": "abc111", "xyz": "xyz333"} {
			n, err := tx.FindNode(ref)
			if err != nil || n.Id != want {
				t.Errorf("FindNode(%q) = %v, %v; want %s", ref, n, err, want)
			}
		}
		for ref, want := range map[string]error{"abc": ErrAmbiguous, "beta": ErrAmbiguous, "nope": ErrNotExist} {
			if _, err := tx.FindNode(ref); !errors.Is(err, want) {
				t.Errorf("FindNode(%q) err = %v, want %v", ref, err, want)
			}
		}
	})
}

func TestSnapshotRestoreAndWatch(t *testing.T) {
	s := New()
	p := &LocalProposer{Store: s}
	ch, cancel := s.Watch()
	defer cancel()
	mustPropose(t, p, nodeAction(shoalpb.ActionKind_ACTION_KIND_CREATE, &shoalpb.Node{Id: "n1"}))
	mustPropose(t, p, &shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Cluster{Cluster: &shoalpb.Cluster{Id: "c1", GossipKey: []byte("k")}}})
	for i, want := range []EventKind{EventCreate, EventCreate} {
		ev := <-ch
		if ev.Kind != want || ev.Index != uint64(i+1) {
			t.Fatalf("event %d = %+v, want kind %v index %d", i, ev, want, i+1)
		}
	}

	s2 := New()
	restoreInto(t, s, s2)
	s2.View(func(tx ReadTx) {
		if tx.Node("n1") == nil || string(tx.Cluster().GetGossipKey()) != "k" {
			t.Fatalf("restored store lacks objects")
		}
	})
	if s2.AppliedIndex() != 2 {
		t.Fatalf("restored applied index = %d, want 2", s2.AppliedIndex())
	}
	if err := s2.Restore(bytes.NewReader([]byte("garbage\xff"))); err == nil {
		t.Fatal("restore of garbage succeeded")
	}
}

func taskOnNode(kind shoalpb.ActionKind, id, node string) *shoalpb.StoreAction {
	return taskAction(kind, &shoalpb.Task{Id: id, ServiceId: "svc", NodeId: node})
}

// taken waits for the watch to be ready and returns what it holds (nil
// when it ended), or fails after a second.
func taken(t *testing.T, w *NodeTaskWatch) ([]Event, bool) {
	t.Helper()
	select {
	case <-w.Ready():
		return w.Take()
	case <-time.After(time.Second):
		t.Fatal("node task watch not ready")
		return nil, false
	}
}

// idle checks that the watch has nothing waiting.
func idle(t *testing.T, w *NodeTaskWatch, name string) {
	t.Helper()
	select {
	case <-w.Ready():
		evs, ok := w.Take()
		if !ok || len(evs) > 0 {
			t.Fatalf("%s: unexpected events %v (open %v)", name, evs, ok)
		}
	default:
	}
}

func taskIDs(evs []Event) []string {
	var ids []string
	for _, ev := range evs {
		ids = append(ids, ev.Object.(*shoalpb.Task).Id)
	}
	return ids
}

func TestWatchNodeTasksRoutesByNode(t *testing.T) {
	s := New()
	p := &LocalProposer{Store: s}
	w1, w1b, w2, w3 := s.WatchNodeTasks("n1"), s.WatchNodeTasks("n1"), s.WatchNodeTasks("n2"), s.WatchNodeTasks("n3")
	all, cancelAll := s.Watch()
	defer cancelAll()
	for _, w := range []*NodeTaskWatch{w1, w1b, w2, w3} {
		defer w.Cancel()
	}

	// One command: tasks on n1 and n2, one on no node, and a node.
	mustPropose(t, p,
		taskOnNode(shoalpb.ActionKind_ACTION_KIND_CREATE, "a", "n1"),
		taskOnNode(shoalpb.ActionKind_ACTION_KIND_CREATE, "b", "n2"),
		taskOnNode(shoalpb.ActionKind_ACTION_KIND_CREATE, "c", ""),
		taskOnNode(shoalpb.ActionKind_ACTION_KIND_CREATE, "d", "n1"),
		nodeAction(shoalpb.ActionKind_ACTION_KIND_CREATE, &shoalpb.Node{Id: "n1"}),
	)
	for _, w := range []*NodeTaskWatch{w1, w1b} {
		evs, ok := taken(t, w)
		if !ok || !slices.Equal(taskIDs(evs), []string{"a", "d"}) || evs[0].Index != 1 {
			t.Fatalf("n1 watch got %v (open %v), want a and d at index 1", taskIDs(evs), ok)
		}
	}
	if evs, _ := taken(t, w2); !slices.Equal(taskIDs(evs), []string{"b"}) {
		t.Fatalf("n2 watch got %v, want b", taskIDs(evs))
	}
	idle(t, w3, "n3")
	if n := len(all); n != 5 {
		t.Fatalf("watcher of everything got %d events, want 5", n)
	}

	// A task moving from n1 to n2 reaches both; its removal reaches n2.
	s.View(func(tx ReadTx) {
		moved := clone(tx.Task("a"))
		moved.NodeId = "n2"
		mustPropose(t, p, &shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_UPDATE, Target: &shoalpb.StoreAction_Task{Task: moved}})
	})
	for name, w := range map[string]*NodeTaskWatch{"n1": w1, "n2": w2} {
		if evs, _ := taken(t, w); !slices.Equal(taskIDs(evs), []string{"a"}) || evs[0].Kind != EventUpdate {
			t.Fatalf("%s watch got %v after the move, want an update of a", name, taskIDs(evs))
		}
	}
	mustPropose(t, p, taskOnNode(shoalpb.ActionKind_ACTION_KIND_REMOVE, "a", ""))
	if evs, _ := taken(t, w2); !slices.Equal(taskIDs(evs), []string{"a"}) || evs[0].Kind != EventRemove {
		t.Fatalf("n2 watch got %v after the removal, want the removal of a", taskIDs(evs))
	}
	idle(t, w1, "n1 after the removal")
	idle(t, w3, "n3 after the removal")

	// A cancelled watch ends and gets nothing more; the other on its node
	// still does.
	w1b.Cancel()
	for range w1b.Ready() {
		// A wake-up from before the cancel may still be buffered; the
		// loop ends because Ready is closed.
	}
	if _, ok := w1b.Take(); ok {
		t.Fatal("cancelled watch still open")
	}
	mustPropose(t, p, taskOnNode(shoalpb.ActionKind_ACTION_KIND_CREATE, "e", "n1"))
	if evs, _ := taken(t, w1); !slices.Equal(taskIDs(evs), []string{"e"}) {
		t.Fatalf("n1 watch got %v, want e", taskIDs(evs))
	}

	// A restore reaches every node's watch.
	restoreInto(t, s, s)
	for name, w := range map[string]*NodeTaskWatch{"n1": w1, "n2": w2, "n3": w3} {
		if evs, _ := taken(t, w); len(evs) != 1 || evs[0].Kind != EventRestore {
			t.Fatalf("%s watch got %+v after a restore, want one restore", name, evs)
		}
	}
}

func TestWatchNodeTasksEndsWhenBehind(t *testing.T) {
	s := New()
	p := &LocalProposer{Store: s}
	slow := s.WatchNodeTasks("n1")
	defer slow.Cancel()
	busy := s.WatchNodeTasks("n2")
	defer busy.Cancel()
	// The slow watcher takes nothing while more than watchBuffer of its
	// node's changes are committed; a watcher of another node keeps up.
	var actions []*shoalpb.StoreAction
	for i := 0; i <= watchBuffer; i++ {
		actions = append(actions, taskOnNode(shoalpb.ActionKind_ACTION_KIND_CREATE, fmt.Sprintf("t%d", i), "n1"))
	}
	mustPropose(t, p, actions...)
	mustPropose(t, p, taskOnNode(shoalpb.ActionKind_ACTION_KIND_CREATE, "other", "n2"))
	deadline := time.After(time.Second)
	for open := true; open; {
		// The wake-up of its first event may come before the close.
		select {
		case _, open = <-slow.Ready():
		case <-deadline:
			t.Fatal("watch that fell behind not ended")
		}
	}
	if evs, ok := slow.Take(); ok || len(evs) > 0 {
		t.Fatalf("watch that fell behind: Take = %d events, open %v", len(evs), ok)
	}
	if evs, ok := taken(t, busy); !ok || !slices.Equal(taskIDs(evs), []string{"other"}) {
		t.Fatalf("watch of n2 got %v (open %v)", taskIDs(evs), ok)
	}
	// Watching again works.
	again := s.WatchNodeTasks("n1")
	defer again.Cancel()
	mustPropose(t, p, taskOnNode(shoalpb.ActionKind_ACTION_KIND_CREATE, "late", "n1"))
	if evs, _ := taken(t, again); !slices.Equal(taskIDs(evs), []string{"late"}) {
		t.Fatalf("new watch got %v, want late", taskIDs(evs))
	}
}

func TestWatchOfEverythingEndsWhenBehind(t *testing.T) {
	s := New()
	p := &LocalProposer{Store: s}
	ch, cancel := s.Watch()
	defer cancel()
	var actions []*shoalpb.StoreAction
	for i := 0; i <= watchBuffer; i++ {
		actions = append(actions, taskOnNode(shoalpb.ActionKind_ACTION_KIND_CREATE, fmt.Sprintf("t%d", i), ""))
	}
	mustPropose(t, p, actions...)
	n := 0
	for range ch {
		n++
	}
	if n != watchBuffer {
		t.Fatalf("watcher got %d events before being closed, want %d", n, watchBuffer)
	}
}

func TestTaskIndexes(t *testing.T) {
	s := New()
	p := &LocalProposer{Store: s}
	mustPropose(t, p,
		taskAction(shoalpb.ActionKind_ACTION_KIND_CREATE, &shoalpb.Task{Id: "a", ServiceId: "s1", NodeId: "n1"}),
		taskAction(shoalpb.ActionKind_ACTION_KIND_CREATE, &shoalpb.Task{Id: "b", ServiceId: "s1"}),
		taskAction(shoalpb.ActionKind_ACTION_KIND_CREATE, &shoalpb.Task{Id: "c", ServiceId: "s2", NodeId: "n1"}),
		// An ID that starts with another's must not be found for it.
		taskAction(shoalpb.ActionKind_ACTION_KIND_CREATE, &shoalpb.Task{Id: "ab", ServiceId: "s10", NodeId: "n10"}),
	)
	ids := func(ts []*shoalpb.Task) []string {
		var out []string
		for _, t := range ts {
			out = append(out, t.Id)
		}
		slices.Sort(out)
		return out
	}
	s.View(func(tx ReadTx) {
		for _, c := range []struct {
			name      string
			got, want []string
		}{
			{"by service s1", ids(tx.TasksByService("s1")), []string{"a", "b"}},
			{"by service s10", ids(tx.TasksByService("s10")), []string{"ab"}},
			{"by node n1", ids(tx.TasksByNode("n1")), []string{"a", "c"}},
			{"by no node", ids(tx.TasksByNode("")), nil},
			{"all", ids(tx.Tasks()), []string{"a", "ab", "b", "c"}},
		} {
			if !slices.Equal(c.got, c.want) {
				t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
			}
		}
		if tx.Task("a").GetNodeId() != "n1" || tx.Task("x") != nil {
			t.Errorf("lookups by ID wrong")
		}
	})
	// A status report keeps the task where it was listed; an assignment
	// lists it under its node, a move under its new node only, a removal
	// nowhere; a restore lists everything again.
	mustPropose(t, p, nodeAction(shoalpb.ActionKind_ACTION_KIND_CREATE, &shoalpb.Node{Id: "n2", Spec: &shoalpb.NodeSpec{Availability: shoalpb.NodeAvailability_NODE_AVAILABILITY_ACTIVE}, Status: &shoalpb.NodeStatus{State: shoalpb.NodeState_NODE_STATE_READY}}))
	mustPropose(t, p, &shoalpb.StoreAction{Target: &shoalpb.StoreAction_TaskStatusPatch{TaskStatusPatch: &shoalpb.TaskStatusPatch{TaskId: "a", Status: &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_RUNNING}}}})
	mustPropose(t, p, &shoalpb.StoreAction{Target: &shoalpb.StoreAction_TaskAssignment{TaskAssignment: &shoalpb.TaskAssignment{TaskId: "b", NodeId: "n2", Status: &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_ASSIGNED}}}})
	var moved *shoalpb.Task
	s.View(func(tx ReadTx) { moved = clone(tx.Task("c")) })
	moved.NodeId = "n2"
	mustPropose(t, p, taskAction(shoalpb.ActionKind_ACTION_KIND_UPDATE, moved))
	mustPropose(t, p, taskAction(shoalpb.ActionKind_ACTION_KIND_REMOVE, &shoalpb.Task{Id: "ab"}))
	check := func(name string, s *Store) {
		s.View(func(tx ReadTx) {
			for _, c := range []struct {
				name      string
				got, want []string
			}{
				{"by service s1", ids(tx.TasksByService("s1")), []string{"a", "b"}},
				{"by service s10", ids(tx.TasksByService("s10")), nil},
				{"by node n1", ids(tx.TasksByNode("n1")), []string{"a"}},
				{"by node n2", ids(tx.TasksByNode("n2")), []string{"b", "c"}},
				{"by node n10", ids(tx.TasksByNode("n10")), nil},
			} {
				if !slices.Equal(c.got, c.want) {
					t.Errorf("%s: %s: %v, want %v", name, c.name, c.got, c.want)
				}
			}
		})
		// No reference is left behind by a removal or a move.
		txn := s.db.Load().Txn(false)
		defer txn.Abort()
		it, err := txn.Get(tableNodeTasks, indexID)
		if err != nil {
			t.Fatal(err)
		}
		var refs []string
		for o := it.Next(); o != nil; o = it.Next() {
			refs = append(refs, o.(*taskRef).owner+"/"+o.(*taskRef).task)
		}
		if want := []string{"n1/a", "n2/b", "n2/c"}; !slices.Equal(refs, want) {
			t.Errorf("%s: node task references %v, want %v", name, refs, want)
		}
	}
	check("after the changes", s)
	restored := New()
	restoreInto(t, s, restored)
	check("restored", restored)
}

func TestApplyDoesNotKeepTheCallersMessages(t *testing.T) {
	s := New()
	p := &LocalProposer{Store: s}
	task := &shoalpb.Task{Id: "a", ServiceId: "s", Status: &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_PENDING}}
	mustPropose(t, p, taskAction(shoalpb.ActionKind_ACTION_KIND_CREATE, task))
	st := &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_RUNNING, Message: "started"}
	mustPropose(t, p, &shoalpb.StoreAction{Target: &shoalpb.StoreAction_TaskStatusPatch{TaskStatusPatch: &shoalpb.TaskStatusPatch{TaskId: "a", Status: st}}})
	// The caller changing its messages afterwards changes nothing stored.
	task.ServiceId, st.Message = "changed", "changed"
	s.View(func(tx ReadTx) {
		if got := tx.Task("a"); got.ServiceId != "s" || got.Status.Message != "started" || got.Meta == nil {
			t.Fatalf("stored task = %v", got)
		}
	})
	if task.Meta != nil {
		t.Fatalf("the caller's task got a meta: %v", task.Meta)
	}
	// A command decoded by ApplyCommand is the store's own.
	done := &shoalpb.TaskStatusPatch{TaskId: "a", Status: &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_COMPLETE, Message: "done"}}
	data, err := proto.Marshal(&shoalpb.Command{Actions: []*shoalpb.StoreAction{{Target: &shoalpb.StoreAction_TaskStatusPatch{TaskStatusPatch: done}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyCommand(s.AppliedIndex()+1, data); err != nil {
		t.Fatal(err)
	}
	s.View(func(tx ReadTx) {
		if got := tx.Task("a"); got.Status.GetMessage() != "done" || got.Meta.GetVersion() != s.AppliedIndex() {
			t.Fatalf("task after ApplyCommand = %v", got)
		}
	})
}

// restoreInto restores a snapshot of from into to.
func restoreInto(t *testing.T, from, to *Store) {
	t.Helper()
	write, err := from.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := write(&buf); err != nil {
		t.Fatal(err)
	}
	if err := to.Restore(&buf); err != nil {
		t.Fatal(err)
	}
}
