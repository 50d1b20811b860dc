package raftstore

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestApplyOnLeaderAndFollower(t *testing.T) {
	c := NewTestCluster(t, 3, newListSM)
	leader := c.Leader(t)

	idx := mustApply(t, leader, "a")
	if idx == 0 {
		t.Fatal("Apply returned index 0")
	}

	// A rejected command is committed at its own index and its error comes
	// back unchanged, reachable with errors.Is and errors.As.
	failIdx, err := leader.Apply(testCtx(t), []byte("fail-1"))
	if err == nil {
		t.Fatal("Apply of a failing command returned nil error")
	}
	if failIdx <= idx {
		t.Fatalf("failing command index = %d, want > %d", failIdx, idx)
	}
	if !errors.Is(err, errRejected) {
		t.Fatalf("errors.Is(err, errRejected) = false for %v", err)
	}
	var rej *rejectError
	if !errors.As(err, &rej) || rej.cmd != "fail-1" {
		t.Fatalf("errors.As(*rejectError) failed for %v", err)
	}
	var cmdErr *CommandError
	if !errors.As(err, &cmdErr) || cmdErr.Index != failIdx {
		t.Fatalf("errors.As(*CommandError) = %+v, want index %d", cmdErr, failIdx)
	}
	if err.Error() != rej.Error() {
		t.Fatalf("error message = %q, want the state machine's %q", err.Error(), rej.Error())
	}

	last := mustApply(t, leader, "b")
	c.WaitApplied(t, last)
	for _, n := range c.Nodes() {
		if got := listOf(n).Items(); !slices.Equal(got, []string{"a", "b"}) {
			t.Errorf("node %s items = %v, want [a b]", n.ID(), got)
		}
		if n.AppliedIndex() < last {
			t.Errorf("node %s AppliedIndex = %d, want >= %d", n.ID(), n.AppliedIndex(), last)
		}
	}

	leaderID, leaderAddr := leader.Leader()
	if leaderID != leader.ID() || leaderAddr != leader.Addr() {
		t.Fatalf("leader.Leader() = %q %q, want itself", leaderID, leaderAddr)
	}
	for _, n := range c.Nodes() {
		if n == leader {
			continue
		}
		idx, err := n.Apply(testCtx(t), []byte("x"))
		if !errors.Is(err, ErrNotLeader) || idx != 0 {
			t.Fatalf("Apply on follower %s = %d, %v; want 0, ErrNotLeader", n.ID(), idx, err)
		}
		var nle *NotLeaderError
		if !errors.As(err, &nle) || nle.LeaderID != leader.ID() || nle.LeaderAddr != leader.Addr() {
			t.Fatalf("follower %s: NotLeaderError = %+v, want leader %s", n.ID(), nle, leader.ID())
		}
		if errors.Is(err, ErrNoLeader) {
			t.Fatalf("follower %s with a known leader reported ErrNoLeader", n.ID())
		}
		if err := n.Barrier(testCtx(t)); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("Barrier on follower = %v, want ErrNotLeader", err)
		}
		if err := n.VerifyLeader(testCtx(t)); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("VerifyLeader on follower = %v, want ErrNotLeader", err)
		}
		if n.IsLeader() || n.State() != "Follower" {
			t.Fatalf("follower %s: IsLeader=%v State=%s", n.ID(), n.IsLeader(), n.State())
		}
		if n.LastContact().IsZero() {
			t.Fatalf("follower %s never heard from the leader", n.ID())
		}
	}

	if err := leader.Barrier(testCtx(t)); err != nil {
		t.Fatalf("Barrier on leader: %v", err)
	}
	if err := leader.VerifyLeader(testCtx(t)); err != nil {
		t.Fatalf("VerifyLeader on leader: %v", err)
	}
	if !leader.IsLeader() || leader.State() != "Leader" {
		t.Fatalf("leader: IsLeader=%v State=%s", leader.IsLeader(), leader.State())
	}
	if s := leader.Stats(); s["state"] != "Leader" || s["node_id"] != leader.ID() || s["fsm_applied_index"] == "" {
		t.Fatalf("unexpected stats %v", s)
	}
}

func TestApplyHonoursContext(t *testing.T) {
	c := NewTestCluster(t, 1, newListSM)
	leader := c.Leader(t)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := leader.Apply(ctx, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply with cancelled context = %v, want context.Canceled", err)
	}

	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	if _, err := leader.Apply(expired, []byte("x")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Apply with expired deadline = %v, want DeadlineExceeded", err)
	}
	if got := listOf(leader).Items(); len(got) != 0 {
		t.Fatalf("items after refused applies = %v, want none", got)
	}

	// WaitApplied for an index that will never come ends with ctx...
	short, cancel3 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel3()
	if err := leader.WaitApplied(short, 1<<40); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitApplied = %v, want DeadlineExceeded", err)
	}

	// ...or with ErrShutdown when the node stops.
	errc := make(chan error, 1)
	go func() { errc <- leader.WaitApplied(context.Background(), 1<<40) }()
	if err := leader.Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrShutdown) {
			t.Fatalf("WaitApplied after Shutdown = %v, want ErrShutdown", err)
		}
	case <-time.After(TestWaitTimeout):
		t.Fatal("WaitApplied did not return after Shutdown")
	}

	if _, err := leader.Apply(testCtx(t), []byte("x")); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Apply after Shutdown = %v, want ErrShutdown", err)
	}
	if err := leader.Shutdown(); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if leader.State() != "Shutdown" {
		t.Fatalf("State after Shutdown = %s", leader.State())
	}
}

func TestNotLeaderErrorMatching(t *testing.T) {
	known := &NotLeaderError{LeaderID: "n1", LeaderAddr: "10.0.0.1:4242"}
	if !errors.Is(known, ErrNotLeader) || errors.Is(known, ErrNoLeader) {
		t.Fatalf("known leader: Is(ErrNotLeader)=%v Is(ErrNoLeader)=%v", errors.Is(known, ErrNotLeader), errors.Is(known, ErrNoLeader))
	}
	unknown := &NotLeaderError{}
	if !errors.Is(unknown, ErrNotLeader) || !errors.Is(unknown, ErrNoLeader) {
		t.Fatal("unknown leader must match ErrNotLeader and ErrNoLeader")
	}
	if errors.Is(known, ErrLeadershipLost) {
		t.Fatal("NotLeaderError must not match ErrLeadershipLost")
	}
}
