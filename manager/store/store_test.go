package store

import (
	"bytes"
	"context"
	"errors"
	"testing"

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

	write, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := write(&buf); err != nil {
		t.Fatal(err)
	}
	s2 := New()
	if err := s2.Restore(&buf); err != nil {
		t.Fatal(err)
	}
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

func TestWatchFiltered(t *testing.T) {
	s := New()
	p := &LocalProposer{Store: s}
	ch, cancel := s.WatchFiltered(func(ev Event) bool {
		n, ok := ev.Object.(*shoalpb.Node)
		return ok && n.Id == "keep"
	})
	defer cancel()
	mustPropose(t, p, nodeAction(shoalpb.ActionKind_ACTION_KIND_CREATE, &shoalpb.Node{Id: "drop"}))
	mustPropose(t, p, nodeAction(shoalpb.ActionKind_ACTION_KIND_CREATE, &shoalpb.Node{Id: "keep"}))
	ev := <-ch
	if n := ev.Object.(*shoalpb.Node); n.Id != "keep" {
		t.Fatalf("filtered watch delivered node %s", n.Id)
	}
	select {
	case ev := <-ch:
		t.Fatalf("unexpected event %+v", ev)
	default:
	}
}
