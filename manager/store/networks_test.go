package store

import (
	"context"
	"errors"
	"testing"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

func TestNetworksAndStacksByNameAndSnapshot(t *testing.T) {
	s := New()
	p := &LocalProposer{Store: s}
	create := shoalpb.ActionKind_ACTION_KIND_CREATE
	netA := func(id, name string) *shoalpb.StoreAction {
		return &shoalpb.StoreAction{Kind: create, Target: &shoalpb.StoreAction_Network{Network: &shoalpb.Network{Id: id, Spec: &shoalpb.NetworkSpec{Name: name}, Vni: 4097}}}
	}
	stackA := func(id, name string) *shoalpb.StoreAction {
		return &shoalpb.StoreAction{Kind: create, Target: &shoalpb.StoreAction_Stack{Stack: &shoalpb.Stack{Id: id, Name: name, Current: 1}}}
	}
	mustPropose(t, p, netA("n1", "front"), stackA("s1", "app"))
	for _, tc := range []struct {
		what string
		a    *shoalpb.StoreAction
	}{{"network", netA("n2", "front")}, {"stack", stackA("s2", "app")}} {
		_, err := p.Propose(context.Background(), &shoalpb.Command{Actions: []*shoalpb.StoreAction{tc.a}})
		if !errors.Is(err, ErrExist) {
			t.Fatalf("second %s with the same name: err = %v, want ErrExist", tc.what, err)
		}
	}
	// Network names are case-sensitive, as docker's are.
	mustPropose(t, p, netA("n3", "Front"))

	s2 := New()
	restoreInto(t, s, s2)
	s2.View(func(tx ReadTx) {
		if n, err := tx.FindNetwork("front"); err != nil || n.Id != "n1" || n.Vni != 4097 {
			t.Errorf("FindNetwork(front) = %v, %v", n, err)
		}
		if n, err := tx.FindNetwork("n"); !errors.Is(err, ErrAmbiguous) {
			t.Errorf("FindNetwork(n) = %v, %v; want ambiguous", n, err)
		}
		if st := tx.StackByName("app"); st == nil || st.Id != "s1" {
			t.Errorf("StackByName(app) = %v", st)
		}
		if len(tx.Networks()) != 2 || len(tx.Stacks()) != 1 {
			t.Errorf("restored %d networks, %d stacks; want 2, 1", len(tx.Networks()), len(tx.Stacks()))
		}
	})
}
