package raftstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// Timings used by TestCluster: fast enough for quick elections, loose
// enough to stay stable under the race detector.
const (
	testHeartbeatTimeout   = 100 * time.Millisecond
	testElectionTimeout    = 100 * time.Millisecond
	testLeaderLeaseTimeout = 100 * time.Millisecond
	testCommitTimeout      = 10 * time.Millisecond
	testRPCTimeout         = 500 * time.Millisecond

	// TestWaitTimeout bounds every wait performed by TestCluster helpers.
	TestWaitTimeout = 15 * time.Second
)

// TestCluster is a raft cluster whose members talk over in-memory
// transports, for tests of this package and of packages built on it. Its
// helpers must be called from the test goroutine.
type TestCluster struct {
	t      testing.TB
	ids    []string
	nodes  map[string]*Node
	trans  map[string]*raft.InmemTransport
	addrs  map[string]raft.ServerAddress
	logOut *testLogWriter

	mu       sync.Mutex
	stopped  map[string]bool
	isolated map[string]bool // the minority side of the current partition
}

// NewTestCluster starts n in-memory nodes named "n1".."n<n>", bootstraps
// them together as voters, waits for a leader and registers a cleanup that
// shuts every node down. newSM supplies each node's state machine.
func NewTestCluster(t testing.TB, n int, newSM func(id string) StateMachine) *TestCluster {
	t.Helper()
	return newTestCluster(t, n, newSM, nil)
}

// newTestCluster is NewTestCluster with optional on-disk storage: when
// dirFor is non-nil each node keeps its state in dirFor(id).
func newTestCluster(t testing.TB, n int, newSM func(id string) StateMachine, dirFor func(id string) string) *TestCluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("raftstore: test cluster needs at least one node, got %d", n)
	}
	c := &TestCluster{
		t:        t,
		nodes:    make(map[string]*Node),
		trans:    make(map[string]*raft.InmemTransport),
		addrs:    make(map[string]raft.ServerAddress),
		logOut:   &testLogWriter{t: t},
		stopped:  make(map[string]bool),
		isolated: make(map[string]bool),
	}
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("n%d", i)
		addr, trans := raft.NewInmemTransportWithTimeout(raft.ServerAddress("inmem-"+id), testRPCTimeout)
		c.ids = append(c.ids, id)
		c.addrs[id] = addr
		c.trans[id] = trans
	}
	c.connectAll()

	// Registered first so it runs last, after the nodes are down.
	t.Cleanup(c.logOut.stop)
	t.Cleanup(c.shutdownAll)

	servers := make([]Server, 0, n)
	for _, id := range c.ids {
		servers = append(servers, Server{ID: id, Addr: string(c.addrs[id]), Voter: true})
	}
	for _, id := range c.ids {
		cfg := c.nodeConfig(id)
		if dirFor != nil {
			cfg.InMemory = false
			cfg.Dir = dirFor(id)
		}
		node, err := Open(cfg, newSM(id))
		if err != nil {
			t.Fatalf("raftstore: open test node %s: %v", id, err)
		}
		c.mu.Lock()
		c.nodes[id] = node
		c.mu.Unlock()
		if err := node.bootstrap(servers); err != nil {
			t.Fatalf("raftstore: bootstrap test node %s: %v", id, err)
		}
	}
	c.Leader(t)
	return c
}

func (c *TestCluster) nodeConfig(id string) Config {
	return Config{
		NodeID:             id,
		Addr:               string(c.addrs[id]),
		Transport:          c.trans[id],
		Logger:             slog.New(slog.NewTextHandler(c.logOut, &slog.HandlerOptions{Level: slog.LevelWarn})).With("node", id),
		HeartbeatTimeout:   testHeartbeatTimeout,
		ElectionTimeout:    testElectionTimeout,
		LeaderLeaseTimeout: testLeaderLeaseTimeout,
		CommitTimeout:      testCommitTimeout,
		InMemory:           true,
	}
}

// NewNode starts an additional in-memory node with empty state, linked to
// every running node, and shuts it down at cleanup. It is not part of the
// configuration until the leader adds it with AddVoter.
func (c *TestCluster) NewNode(t testing.TB, id string, sm StateMachine) *Node {
	t.Helper()
	c.mu.Lock()
	if _, ok := c.nodes[id]; ok {
		c.mu.Unlock()
		t.Fatalf("raftstore: test node %q already exists", id)
	}
	addr, trans := raft.NewInmemTransportWithTimeout(raft.ServerAddress("inmem-"+id), testRPCTimeout)
	c.ids = append(c.ids, id)
	c.addrs[id] = addr
	c.trans[id] = trans
	c.connectLocked()
	c.mu.Unlock()

	node, err := Open(c.nodeConfig(id), sm)
	if err != nil {
		t.Fatalf("raftstore: open test node %s: %v", id, err)
	}
	c.mu.Lock()
	c.nodes[id] = node
	c.mu.Unlock()
	return node
}

// IDs returns the node IDs in creation order.
func (c *TestCluster) IDs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.ids)
}

// Node returns the node with the given ID, or nil.
func (c *TestCluster) Node(id string) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

// Nodes returns the nodes that have not been stopped through Stop.
func (c *TestCluster) Nodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Node
	for _, id := range c.ids {
		if !c.stopped[id] {
			out = append(out, c.nodes[id])
		}
	}
	return out
}

// Leader waits until exactly one node on the majority side of the current
// partition (every node when there is none) reports confirmed leadership
// through WatchLeader, and returns it. It fails the test after
// TestWaitTimeout.
func (c *TestCluster) Leader(t testing.TB) *Node {
	t.Helper()
	group := c.majoritySide()

	changed := make(chan struct{}, 1)
	var cancels []func()
	for _, n := range group {
		ch, cancel := n.WatchLeader()
		cancels = append(cancels, cancel)
		go func() {
			for range ch {
				select {
				case changed <- struct{}{}:
				default:
				}
			}
		}()
	}
	defer func() {
		for _, cancel := range cancels {
			cancel()
		}
	}()

	deadline := time.NewTimer(TestWaitTimeout)
	defer deadline.Stop()
	for {
		var leaders []*Node
		for _, n := range group {
			if n.confirmedLeader() {
				leaders = append(leaders, n)
			}
		}
		if len(leaders) == 1 {
			return leaders[0]
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("raftstore: no single leader among %v after %s (%d leaders)", nodeIDs(group), TestWaitTimeout, len(leaders))
			return nil
		}
	}
}

// confirmedLeader reports whether n has published confirmed leadership and
// raft still agrees (the published view may trail a step-down briefly).
func (n *Node) confirmedLeader() bool {
	v := n.leadership.current()
	return v.IsLeader && n.raft.State() == raft.Leader && n.raft.CurrentTerm() == v.Term
}

func nodeIDs(nodes []*Node) []string {
	ids := make([]string, 0, len(nodes))
	for _, n := range nodes {
		ids = append(ids, n.ID())
	}
	return ids
}

// majoritySide lists the running nodes on the larger side of the current
// partition.
func (c *TestCluster) majoritySide() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var inside, outside []string
	for _, id := range c.ids {
		if c.isolated[id] {
			inside = append(inside, id)
		} else {
			outside = append(outside, id)
		}
	}
	side := outside
	if len(inside) > len(outside) {
		side = inside
	}
	var running []*Node
	for _, id := range side {
		if n := c.nodes[id]; n != nil && !c.stopped[id] {
			running = append(running, n)
		}
	}
	return running
}

// Partition cuts the given nodes off from all others, in both directions.
// Links among the given nodes, and among the others, stay up. A new
// Partition replaces the previous one.
func (c *TestCluster) Partition(ids ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.isolated = make(map[string]bool)
	for _, id := range ids {
		if _, ok := c.nodes[id]; !ok {
			c.t.Fatalf("raftstore: partition: unknown node %q", id)
		}
		c.isolated[id] = true
	}
	c.connectLocked()
}

// Heal reconnects every pair of running nodes.
func (c *TestCluster) Heal() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.isolated = make(map[string]bool)
	c.connectLocked()
}

// Stop shuts a node down and disconnects it from the others. It stays
// stopped; Heal does not bring it back.
func (c *TestCluster) Stop(id string) {
	c.t.Helper()
	c.mu.Lock()
	n := c.nodes[id]
	if n == nil {
		c.mu.Unlock()
		c.t.Fatalf("raftstore: stop: unknown node %q", id)
	}
	c.stopped[id] = true
	c.connectLocked()
	c.mu.Unlock()
	if err := n.Shutdown(); err != nil {
		c.t.Errorf("raftstore: stop %s: %v", id, err)
	}
}

// Apply proposes data through the current leader and returns its index,
// retrying on another leader when the one it tried had already stepped
// down (ErrNotLeader, so the entry was not proposed). Any other error,
// including a state machine rejection, fails the test.
func (c *TestCluster) Apply(t testing.TB, data []byte) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), TestWaitTimeout)
	defer cancel()
	for {
		leader := c.Leader(t)
		idx, err := leader.Apply(ctx, data)
		switch {
		case err == nil:
			return idx
		case errors.Is(err, ErrNotLeader) && ctx.Err() == nil:
			continue
		default:
			t.Fatalf("raftstore: apply %q via %s: %v", data, leader.ID(), err)
			return 0
		}
	}
}

// WaitApplied waits until every running node has applied index.
func (c *TestCluster) WaitApplied(t testing.TB, index uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), TestWaitTimeout)
	defer cancel()
	for _, n := range c.Nodes() {
		if err := n.WaitApplied(ctx, index); err != nil {
			t.Fatalf("raftstore: node %s did not apply index %d (at %d): %v", n.ID(), index, n.AppliedIndex(), err)
		}
	}
}

func (c *TestCluster) connectAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.connectLocked()
}

// connectLocked makes the transport links match the partition and stopped
// sets: two nodes are linked iff both run and they are on the same side.
func (c *TestCluster) connectLocked() {
	for _, a := range c.ids {
		for _, b := range c.ids {
			if a == b {
				continue
			}
			linked := !c.stopped[a] && !c.stopped[b] && c.isolated[a] == c.isolated[b]
			if linked {
				c.trans[a].Connect(c.addrs[b], c.trans[b])
			} else {
				c.trans[a].Disconnect(c.addrs[b])
			}
		}
	}
}

func (c *TestCluster) shutdownAll() {
	c.mu.Lock()
	nodes := make([]*Node, 0, len(c.nodes))
	for _, id := range c.ids {
		if n := c.nodes[id]; n != nil {
			nodes = append(nodes, n)
		}
	}
	c.mu.Unlock()

	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() {
			if err := n.Shutdown(); err != nil {
				c.t.Errorf("raftstore: shut down %s: %v", n.ID(), err)
			}
		})
	}
	wg.Wait()
}

// testLogWriter forwards log output to t.Log until stop is called, so that
// stray output after the test has finished cannot panic.
type testLogWriter struct {
	mu      sync.Mutex
	t       testing.TB
	stopped bool
}

var _ io.Writer = (*testLogWriter)(nil)

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testLogWriter) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
}
