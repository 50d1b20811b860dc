package membership

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

func newReconciler(e *env) *Reconciler {
	return &Reconciler{Deps: e.deps, Log: discardLogger(), Interval: 20 * time.Millisecond}
}

// threeManagers stores managers m1 (this one, leading), m2 and m3, all
// voters, and a worker.
func threeManagers(t *testing.T) *env {
	e := newEnv(t)
	e.addNodes(manager("m1"), manager("m2"), manager("m3"), worker("w1"))
	e.raft.setVoters("m1", "m2", "m3")
	return e
}

func TestReconcileRemovesDemotedVoter(t *testing.T) {
	e := threeManagers(t)
	e.gossip.set(true, "m2", "m3")
	e.setDesiredRole("m3", shoalpb.NodeRole_NODE_ROLE_WORKER)

	newReconciler(e).reconcile(context.Background())

	calls := e.raft.calls()
	if !slices.Equal(calls.removed, []string{"m3"}) || calls.transfers != 0 {
		t.Fatalf("raft calls = %+v, want m3 removed and no transfer", calls)
	}
	n := e.mustNode("m3")
	if n.Role != shoalpb.NodeRole_NODE_ROLE_WORKER {
		t.Fatalf("observed role = %v, want worker", n.Role)
	}
	if n.Meta.UpdatedAt != fixed.UnixNano() {
		t.Fatalf("updated_at = %d, want the fixed clock", n.Meta.UpdatedAt)
	}
	for _, id := range []string{"m1", "m2"} {
		if r := e.mustNode(id).Role; r != shoalpb.NodeRole_NODE_ROLE_MANAGER {
			t.Fatalf("%s observed role = %v", id, r)
		}
	}

	// A second pass finds nothing left to do.
	before := e.st.AppliedIndex()
	newReconciler(e).reconcile(context.Background())
	if calls := e.raft.calls(); len(calls.removed) != 1 {
		t.Fatalf("second pass removed again: %v", calls.removed)
	}
	if e.st.AppliedIndex() != before {
		t.Fatal("second pass wrote to the store")
	}
}

func TestReconcileKeepsDemotedVoterWithoutQuorum(t *testing.T) {
	e := threeManagers(t)
	// m2 is dead: without m3 only m1 of {m1, m2} is reachable.
	e.gossip.set(true, "m3")
	e.setDesiredRole("m3", shoalpb.NodeRole_NODE_ROLE_WORKER)
	before := e.mustNode("m3")

	r := newReconciler(e)
	r.reconcile(context.Background())

	if calls := e.raft.calls(); len(calls.removed) != 0 || calls.transfers != 0 {
		t.Fatalf("raft calls = %+v, want none", calls)
	}
	e.nodeUnchanged(before)

	// Once m2 is back the removal goes ahead.
	e.gossip.set(true, "m2")
	r.reconcile(context.Background())
	if calls := e.raft.calls(); !slices.Equal(calls.removed, []string{"m3"}) {
		t.Fatalf("RemoveServer calls = %v, want [m3]", calls.removed)
	}
}

func TestReconcileTransfersLeadershipBeforeDemotingLeader(t *testing.T) {
	e := threeManagers(t)
	e.gossip.set(true, "m2", "m3")
	e.setDesiredRole("m1", shoalpb.NodeRole_NODE_ROLE_WORKER)
	before := e.mustNode("m1")

	newReconciler(e).reconcile(context.Background())

	calls := e.raft.calls()
	if calls.transfers != 1 {
		t.Fatalf("TransferLeadership calls = %d, want 1", calls.transfers)
	}
	if len(calls.removed) != 0 {
		t.Fatalf("RemoveServer called on the leader's demotion: %v", calls.removed)
	}
	e.nodeUnchanged(before)
}

func TestReconcileLeaderDemotionWaitsForReachablePeers(t *testing.T) {
	e := threeManagers(t)
	// Neither other manager is reachable: handing over would stall.
	e.setDesiredRole("m1", shoalpb.NodeRole_NODE_ROLE_WORKER)
	newReconciler(e).reconcile(context.Background())
	if calls := e.raft.calls(); calls.transfers != 0 || len(calls.removed) != 0 {
		t.Fatalf("raft calls = %+v, want none", calls)
	}
}

func TestReconcileRemovesVoterWithoutNode(t *testing.T) {
	e := threeManagers(t)
	e.gossip.set(true, "m2")
	e.propose(&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_REMOVE, Target: &shoalpb.StoreAction_Node{Node: &shoalpb.Node{Id: "m3"}}})

	newReconciler(e).reconcile(context.Background())

	if calls := e.raft.calls(); !slices.Equal(calls.removed, []string{"m3"}) || calls.transfers != 0 {
		t.Fatalf("raft calls = %+v, want m3 removed", calls)
	}
	if e.node("m3") != nil {
		t.Fatal("the reconciler recreated the removed node")
	}
}

func TestReconcileLeavesWantedManagersAlone(t *testing.T) {
	e := threeManagers(t)
	e.gossip.set(true, "m2", "m3")
	applied := e.st.AppliedIndex()
	newReconciler(e).reconcile(context.Background())
	if calls := e.raft.calls(); len(calls.removed) != 0 || calls.transfers != 0 || len(calls.added) != 0 {
		t.Fatalf("raft calls = %+v, want none", calls)
	}
	if e.st.AppliedIndex() != applied {
		t.Fatal("a pass with nothing to do wrote to the store")
	}
}

func TestReconcileDoesNothingOffLeader(t *testing.T) {
	e := threeManagers(t)
	e.gossip.set(true, "m2", "m3")
	e.setDesiredRole("m3", shoalpb.NodeRole_NODE_ROLE_WORKER)
	e.raft.mu.Lock()
	e.raft.notLeader = true
	e.raft.mu.Unlock()
	newReconciler(e).reconcile(context.Background())
	if calls := e.raft.calls(); len(calls.removed) != 0 || calls.transfers != 0 {
		t.Fatalf("raft calls = %+v off the leader", calls)
	}
}

func TestReconcileFixesRoleOfManagerThatIsNoVoter(t *testing.T) {
	e := threeManagers(t)
	e.gossip.set(true, "m2", "m3")
	// m4 is recorded as a manager and wanted as a worker, but is not a
	// voter (demoted while cut off).
	e.addNodes(manager("m4"))
	e.setDesiredRole("m4", shoalpb.NodeRole_NODE_ROLE_WORKER)

	newReconciler(e).reconcile(context.Background())

	if r := e.mustNode("m4").Role; r != shoalpb.NodeRole_NODE_ROLE_WORKER {
		t.Fatalf("m4 observed role = %v, want worker", r)
	}
	if calls := e.raft.calls(); len(calls.removed) != 0 {
		t.Fatalf("RemoveServer called: %v", calls.removed)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

func TestReconcilerRunReactsToDemotion(t *testing.T) {
	e := threeManagers(t)
	e.gossip.set(true, "m2", "m3")
	r := newReconciler(e)
	r.Interval = time.Hour // only store events drive it

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()

	e.setDesiredRole("m2", shoalpb.NodeRole_NODE_ROLE_WORKER)
	waitFor(t, "m2 to leave the voters and become a worker", func() bool {
		n := e.node("m2")
		return slices.Contains(e.raft.calls().removed, "m2") && n != nil && n.Role == shoalpb.NodeRole_NODE_ROLE_WORKER
	})
	if calls := e.raft.calls(); len(calls.removed) != 1 || calls.transfers != 0 {
		t.Fatalf("raft calls = %+v, want only m2 removed", calls)
	}
}
