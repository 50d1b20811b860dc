package raftstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// writer proposes unique values through whichever node accepts them until
// stopped, recording the values whose Apply returned nil.
type writer struct {
	id    int
	nodes []*Node

	mu    sync.Mutex
	acked []string
}

func (w *writer) run(ctx context.Context, progress chan<- struct{}) {
	cursor := 0
	for seq := 0; ctx.Err() == nil; seq++ {
		// Every attempt uses a fresh value, so a retry after an uncertain
		// error can never duplicate an acknowledged write.
		val := fmt.Sprintf("w%d-%d", w.id, seq)
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := w.nodes[cursor].Apply(actx, []byte(val))
		cancel()
		if err != nil {
			cursor = (cursor + 1) % len(w.nodes)
			continue
		}
		w.mu.Lock()
		w.acked = append(w.acked, val)
		w.mu.Unlock()
		select {
		case progress <- struct{}{}:
		default:
		}
	}
}

func (w *writer) Acked() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.acked)
}

// waitProgress waits for n acknowledged writes reported on progress.
func waitProgress(t *testing.T, progress <-chan struct{}, n int, what string) {
	t.Helper()
	deadline := time.NewTimer(TestWaitTimeout)
	defer deadline.Stop()
	for i := 0; i < n; i++ {
		select {
		case <-progress:
		case <-deadline.C:
			t.Fatalf("only %d of %d acknowledged writes %s", i, n, what)
		}
	}
}

// checkConverged waits until every running node has applied a final marker
// and checks they hold identical lists up to it, containing every
// acknowledged write exactly once. Writes abandoned when the writers
// stopped may still commit after the marker, so only the prefix is compared.
func checkConverged(t *testing.T, c *TestCluster, writers []*writer) {
	t.Helper()
	final := c.Apply(t, []byte("final"))
	c.WaitApplied(t, final)
	upToFinal := func(n *Node) []string {
		items := listOf(n).Items()
		return items[:slices.Index(items, "final")+1]
	}

	want := upToFinal(c.Leader(t))
	present := make(map[string]int, len(want))
	for _, v := range want {
		present[v]++
	}
	for _, n := range c.Nodes() {
		if got := upToFinal(n); !slices.Equal(got, want) {
			t.Fatalf("node %s diverged:\n got %v\nwant %v", n.ID(), got, want)
		}
	}
	total := 0
	for _, w := range writers {
		for _, v := range w.Acked() {
			total++
			if present[v] != 1 {
				t.Errorf("acknowledged write %s appears %d times", v, present[v])
			}
		}
	}
	if total == 0 {
		t.Fatal("no write was acknowledged")
	}
	t.Logf("%d acknowledged writes, %d entries in the log", total, len(want))
}

func startWriters(c *TestCluster, count int) (writers []*writer, progress chan struct{}, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	progress = make(chan struct{}, 1)
	var wg sync.WaitGroup
	for i := 0; i < count; i++ {
		w := &writer{id: i, nodes: c.Nodes()}
		writers = append(writers, w)
		wg.Go(func() { w.run(ctx, progress) })
	}
	return writers, progress, func() { cancel(); wg.Wait() }
}

func TestPartitionedLeaderFailover(t *testing.T) {
	c := NewTestCluster(t, 3, newListSM)
	old := c.Leader(t)

	writers, progress, stop := startWriters(c, 4)
	defer stop()
	waitProgress(t, progress, 10, "before the partition")

	c.Partition(old.ID())
	fresh := c.Leader(t)
	if fresh == old {
		t.Fatal("isolated node is still the majority's leader")
	}
	waitFor(t, old, "step-down of the isolated leader", func(v LeaderChange) bool { return !v.IsLeader })
	waitProgress(t, progress, 10, "while the old leader is partitioned")

	c.Heal()
	waitProgress(t, progress, 5, "after healing")
	stop()

	checkConverged(t, c, writers)
}

func TestStoppedLeaderFailover(t *testing.T) {
	c := NewTestCluster(t, 3, newListSM)
	old := c.Leader(t)

	writers, progress, stop := startWriters(c, 3)
	defer stop()
	waitProgress(t, progress, 10, "before stopping the leader")

	c.Stop(old.ID())
	if fresh := c.Leader(t); fresh == old {
		t.Fatal("stopped node reported as leader")
	}
	waitProgress(t, progress, 10, "after stopping the leader")
	stop()

	checkConverged(t, c, writers)
}

func TestMinorityLeaderFailsPromptly(t *testing.T) {
	c := NewTestCluster(t, 3, newListSM)
	old := c.Leader(t)
	mustApply(t, old, "before")

	c.Partition(old.ID())

	// The deadline is far beyond the expected answer so that reaching it
	// would show up as a failure rather than a slow pass.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err := old.Apply(ctx, []byte("isolated"))
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("Apply on a minority leader succeeded")
	}
	if !errors.Is(err, ErrLeadershipLost) && !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Apply on a minority leader = %v, want ErrLeadershipLost or ErrNotLeader", err)
	}
	if elapsed > 5*time.Second {
		t.Fatalf("minority leader took %s to fail", elapsed)
	}
	t.Logf("minority leader failed after %s: %v", elapsed, err)

	if err := old.VerifyLeader(testCtx(t)); err == nil {
		t.Fatal("VerifyLeader succeeded on a partitioned old leader")
	}
	if fresh := c.Leader(t); fresh == old {
		t.Fatal("isolated node is the majority's leader")
	}

	c.Heal()
	idx := c.Apply(t, []byte("after"))
	c.WaitApplied(t, idx)
	for _, n := range c.Nodes() {
		items := listOf(n).Items()
		if !slices.Contains(items, "before") || !slices.Contains(items, "after") {
			t.Fatalf("node %s items = %v", n.ID(), items)
		}
	}
}

func TestMembershipChanges(t *testing.T) {
	c := NewTestCluster(t, 3, newListSM)
	leader := c.Leader(t)
	mustApply(t, leader, "a")

	joiner := c.NewNode(t, "n4", &listSM{})
	if err := leader.AddVoter(testCtx(t), joiner.ID(), joiner.Addr()); err != nil {
		t.Fatalf("AddVoter: %v", err)
	}
	assertServers(t, leader, map[string]bool{"n1": true, "n2": true, "n3": true, "n4": true})
	idx := mustApply(t, leader, "b")
	c.WaitApplied(t, idx)
	if got := listOf(joiner).Items(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("joiner items = %v, want [a b]", got)
	}

	// Only the leader changes membership.
	var follower *Node
	for _, n := range c.Nodes() {
		if n != leader {
			follower = n
			break
		}
	}
	if err := follower.AddVoter(testCtx(t), "n9", "nowhere"); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("AddVoter on follower = %v, want ErrNotLeader", err)
	}
	if err := follower.RemoveServer(testCtx(t), "n4"); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("RemoveServer on follower = %v, want ErrNotLeader", err)
	}
	if err := follower.TransferLeadership(testCtx(t)); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("TransferLeadership on follower = %v, want ErrNotLeader", err)
	}

	if err := leader.RemoveServer(testCtx(t), joiner.ID()); err != nil {
		t.Fatalf("RemoveServer: %v", err)
	}
	assertServers(t, leader, map[string]bool{"n1": true, "n2": true, "n3": true})
	// The removed node is not told; its owner stops it.
	c.Stop(joiner.ID())
	if _, err := joiner.Apply(testCtx(t), []byte("x")); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Apply on stopped node = %v, want ErrShutdown", err)
	}

	if err := leader.TransferLeadership(testCtx(t)); err != nil {
		t.Fatalf("TransferLeadership: %v", err)
	}
	next := c.Leader(t)
	if next == leader {
		t.Fatal("leadership did not move")
	}
	if leader.IsLeader() {
		t.Fatal("old leader still reports IsLeader after transfer")
	}
	idx = mustApply(t, next, "c")
	c.WaitApplied(t, idx)
	for _, n := range c.Nodes() {
		if got := listOf(n).Items(); !slices.Equal(got, []string{"a", "b", "c"}) {
			t.Fatalf("node %s items = %v, want [a b c]", n.ID(), got)
		}
		assertServers(t, n, map[string]bool{"n1": true, "n2": true, "n3": true})
	}
}

// assertServers checks n's configuration: want maps ID to voter status.
func assertServers(t *testing.T, n *Node, want map[string]bool) {
	t.Helper()
	servers, err := n.Servers()
	if err != nil {
		t.Fatalf("Servers on %s: %v", n.ID(), err)
	}
	got := make(map[string]bool, len(servers))
	for _, s := range servers {
		got[s.ID] = s.Voter
		if s.Addr != "inmem-"+s.ID {
			t.Errorf("server %s has address %q", s.ID, s.Addr)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("Servers on %s = %+v, want %v", n.ID(), servers, want)
	}
	for id, voter := range want {
		if v, ok := got[id]; !ok || v != voter {
			t.Fatalf("Servers on %s = %+v, want %v", n.ID(), servers, want)
		}
	}
}

func TestCaughtUp(t *testing.T) {
	c := NewTestCluster(t, 3, newListSM)
	leader := c.Leader(t)
	if _, err := leader.Apply(context.Background(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes() {
		deadline := time.Now().Add(10 * time.Second)
		for n.CaughtUp() != nil {
			if time.Now().After(deadline) {
				t.Fatalf("%s never caught up: %v", n.ID(), n.CaughtUp())
			}
			time.Sleep(10 * time.Millisecond) // polling the node's indexes
		}
	}
	// Once caught up, the lag of replication and apply under a stream of
	// writes is not falling behind: no node refuses while writes go on.
	const writes = 300
	done := make(chan error, 1)
	go func() {
		var err error
		for i := 0; i < writes && err == nil; i++ {
			_, err = leader.Apply(context.Background(), []byte(fmt.Sprintf("w%d", i)))
		}
		done <- err
	}()
	for checking := true; checking; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			checking = false
		default:
		}
		for _, n := range c.Nodes() {
			if err := n.CaughtUp(); err != nil {
				t.Fatalf("%s refused while writes went on: %v", n.ID(), err)
			}
		}
	}
	// Cut off, a follower soon knows no leader and stops claiming to be
	// current.
	var follower *Node
	for _, n := range c.Nodes() {
		if n != leader {
			follower = n
			break
		}
	}
	c.Partition(follower.ID())
	deadline := time.Now().Add(10 * time.Second)
	for follower.CaughtUp() == nil {
		if time.Now().After(deadline) {
			t.Fatal("a partitioned follower still says it is caught up")
		}
		time.Sleep(10 * time.Millisecond) // polling the node's view
	}
}
