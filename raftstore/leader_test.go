package raftstore

import (
	"testing"
)

func TestLeadershipHubKeepsLatest(t *testing.T) {
	var h leadershipHub
	h.init(LeaderChange{State: "Follower"})

	ch, cancel := h.subscribe()
	if v := <-ch; v.State != "Follower" {
		t.Fatalf("first value = %+v, want the current state", v)
	}

	// A subscriber that does not read keeps only the newest value.
	for term := uint64(1); term <= 5; term++ {
		h.publish(LeaderChange{State: "Leader", IsLeader: true, Term: term})
	}
	if v := <-ch; v.Term != 5 || !v.IsLeader {
		t.Fatalf("after burst got %+v, want term 5", v)
	}
	select {
	case v := <-ch:
		t.Fatalf("unexpected extra value %+v", v)
	default:
	}

	// Publishing an unchanged value delivers nothing.
	h.publish(LeaderChange{State: "Leader", IsLeader: true, Term: 5})
	select {
	case v := <-ch:
		t.Fatalf("duplicate delivered: %+v", v)
	default:
	}

	// A late subscriber starts from the current value.
	late, cancelLate := h.subscribe()
	if v := <-late; v.Term != 5 {
		t.Fatalf("late subscriber got %+v", v)
	}

	cancel()
	cancel() // idempotent
	if _, ok := <-ch; ok {
		t.Fatal("cancelled channel not closed")
	}

	h.close(LeaderChange{State: "Shutdown"})
	if v, ok := <-late; !ok || v.State != "Shutdown" {
		t.Fatalf("final value = %+v, %v; want Shutdown", v, ok)
	}
	if _, ok := <-late; ok {
		t.Fatal("channel not closed after shutdown")
	}
	cancelLate()

	after, cancelAfter := h.subscribe()
	defer cancelAfter()
	if v, ok := <-after; !ok || v.State != "Shutdown" {
		t.Fatalf("subscription after close got %+v, %v", v, ok)
	}
	if _, ok := <-after; ok {
		t.Fatal("subscription after close is not closed")
	}
}

func TestWatchLeaderFollowsElections(t *testing.T) {
	c := NewTestCluster(t, 3, newListSM)
	leader := c.Leader(t)

	ch, cancel := leader.WatchLeader()
	defer cancel()
	first := <-ch
	if !first.IsLeader || first.State != "Leader" || first.LeaderID != leader.ID() || first.Term == 0 {
		t.Fatalf("leader's first view = %+v", first)
	}

	var follower *Node
	for _, n := range c.Nodes() {
		if n != leader {
			follower = n
			break
		}
	}
	fv := waitFor(t, follower, "knowing the leader", func(v LeaderChange) bool { return v.LeaderID == leader.ID() })
	if fv.IsLeader || fv.State != "Follower" || fv.LeaderAddr != leader.Addr() {
		t.Fatalf("follower's view = %+v", fv)
	}

	if err := leader.TransferLeadership(testCtx(t)); err != nil {
		t.Fatalf("TransferLeadership: %v", err)
	}
	next := c.Leader(t)
	lost := waitFor(t, leader, "losing leadership", func(v LeaderChange) bool { return !v.IsLeader })
	if lost.State == "Leader" {
		t.Fatalf("view after losing leadership = %+v", lost)
	}
	nv := waitFor(t, next, "confirmed leadership", func(v LeaderChange) bool { return v.IsLeader })
	if nv.Term <= first.Term {
		t.Fatalf("new leader term %d not after %d", nv.Term, first.Term)
	}

	// Shutdown delivers a final value and closes the channel.
	stopCh, stopCancel := next.WatchLeader()
	defer stopCancel()
	c.Stop(next.ID())
	var last LeaderChange
	for v := range stopCh {
		last = v
	}
	if last.State != "Shutdown" || last.IsLeader {
		t.Fatalf("final view after Shutdown = %+v", last)
	}
}
