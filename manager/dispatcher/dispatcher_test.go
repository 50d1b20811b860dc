package dispatcher

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/manager/caller"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

var t0 = time.Date(2026, time.March, 14, 9, 26, 53, 0, time.UTC)

// clock is a fake clock the test moves by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

type env struct {
	t     *testing.T
	st    *store.Store
	prop  *store.LocalProposer
	clock *clock
	d     *Dispatcher
}

var testManagers = []*shoalpb.Peer{{NodeId: "m1", Addr: "198.18.0.1:4242", GossipAddr: "198.18.0.1:7946"}}

// newEnv stores a cluster whose heartbeat period is period (none when 0).
func newEnv(t *testing.T, period time.Duration) *env {
	t.Helper()
	st := store.New()
	e := &env{t: t, st: st, prop: &store.LocalProposer{Store: st}, clock: &clock{now: t0}}
	e.d = &Dispatcher{
		Store:    st,
		Proposer: e.prop,
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:      e.clock.Now,
		Managers: func() []*shoalpb.Peer { return testManagers },
		LeaderID: func() string { return "m1" },
	}
	spec := &shoalpb.ClusterSpec{Name: "default"}
	if period > 0 {
		spec.Dispatcher = &shoalpb.DispatcherSpec{HeartbeatPeriodNs: int64(period)}
	}
	e.propose(&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Cluster{Cluster: &shoalpb.Cluster{
		Id: "cluster-1", Meta: &shoalpb.Meta{CreatedAt: t0.UnixNano()}, Spec: spec,
	}}})
	return e
}

func (e *env) propose(actions ...*shoalpb.StoreAction) {
	e.t.Helper()
	if _, err := e.prop.Propose(context.Background(), &shoalpb.Command{Actions: actions}); err != nil {
		e.t.Fatalf("propose: %v", err)
	}
}

func (e *env) addNode(id string, role shoalpb.NodeRole, state shoalpb.NodeState) {
	e.t.Helper()
	e.propose(&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Node{Node: &shoalpb.Node{
		Id:     id,
		Meta:   &shoalpb.Meta{CreatedAt: t0.Add(-time.Hour).UnixNano()},
		Spec:   &shoalpb.NodeSpec{DesiredRole: role},
		Status: &shoalpb.NodeStatus{State: state, Addr: "198.18.0.50"},
	}}})
}

func (e *env) node(id string) *shoalpb.Node {
	var n *shoalpb.Node
	e.st.View(func(tx store.ReadTx) { n = tx.Node(id) })
	if n == nil {
		e.t.Fatalf("node %s is not in the store", id)
	}
	return n
}

func (e *env) state(id string) shoalpb.NodeState { return e.node(id).GetStatus().GetState() }

func (e *env) beat(id string, req *shoalpb.HeartbeatRequest) (*shoalpb.HeartbeatResponse, error) {
	if req == nil {
		req = &shoalpb.HeartbeatRequest{}
	}
	return e.d.Heartbeat(caller.With(context.Background(), caller.Caller{NodeID: id, Role: caller.Worker}), req)
}

func (e *env) mustBeat(id string) {
	e.t.Helper()
	if _, err := e.beat(id, nil); err != nil {
		e.t.Fatalf("heartbeat of %s: %v", id, err)
	}
}

func wantCode(t *testing.T, err error, c codes.Code, parts ...string) {
	t.Helper()
	st, ok := status.FromError(err)
	if err == nil || !ok || st.Code() != c {
		t.Fatalf("err = %v, want code %v", err, c)
	}
	for _, p := range parts {
		if !strings.Contains(st.Message(), p) {
			t.Fatalf("message %q does not contain %q", st.Message(), p)
		}
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

func TestHeartbeatRefusesUnknownCallers(t *testing.T) {
	e := newEnv(t, 0)
	e.addNode("w1", shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_UNKNOWN)

	_, err := e.d.Heartbeat(context.Background(), &shoalpb.HeartbeatRequest{})
	wantCode(t, err, codes.Unauthenticated)

	_, err = e.beat("removed-node", nil)
	wantCode(t, err, codes.NotFound, "removed-node")

	if e.st.AppliedIndex() != 2 || e.state("w1") != shoalpb.NodeState_NODE_STATE_UNKNOWN {
		t.Fatal("a refused heartbeat wrote to the store")
	}
}

func TestHeartbeatRecordsReadyOnce(t *testing.T) {
	e := newEnv(t, 0)
	e.addNode("w1", shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_UNKNOWN)
	desc := &shoalpb.NodeDescription{
		Hostname:      "worker-1",
		Platform:      &shoalpb.Platform{Os: "linux", Architecture: "x86_64"},
		Resources:     &shoalpb.Resources{NanoCpus: 4e9, MemoryBytes: 8 << 30},
		EngineVersion: "1.0.0",
		EngineLabels:  map[string]string{"disk": "ssd"},
	}
	req := &shoalpb.HeartbeatRequest{Description: desc, AdvertiseAddr: "198.18.0.50:4242", GossipAddr: "198.18.0.50:7946"}

	if _, err := e.beat("w1", req); err != nil {
		t.Fatalf("first heartbeat: %v", err)
	}
	n := e.node("w1")
	if n.Status.State != shoalpb.NodeState_NODE_STATE_READY {
		t.Fatalf("state = %v, want ready", n.Status.State)
	}
	if n.Status.Addr != "198.18.0.50" {
		t.Fatalf("status address = %q, want it kept", n.Status.Addr)
	}
	if !proto.Equal(n.Description, desc) {
		t.Fatalf("description = %v, want %v", n.Description, desc)
	}
	if n.AdvertiseAddr != "198.18.0.50:4242" || n.GossipAddr != "198.18.0.50:7946" {
		t.Fatalf("addresses %q %q", n.AdvertiseAddr, n.GossipAddr)
	}
	if n.Meta.UpdatedAt != t0.UnixNano() {
		t.Fatalf("updated_at = %d, want the clock's %d", n.Meta.UpdatedAt, t0.UnixNano())
	}
	version, applied := n.Meta.Version, e.st.AppliedIndex()

	// The same heartbeat again says nothing new: no write.
	e.clock.set(t0.Add(time.Second))
	again := proto.Clone(req).(*shoalpb.HeartbeatRequest)
	if _, err := e.beat("w1", again); err != nil {
		t.Fatalf("second heartbeat: %v", err)
	}
	if v := e.node("w1").Meta.Version; v != version {
		t.Fatalf("identical heartbeat changed meta.version from %d to %d", version, v)
	}
	if e.st.AppliedIndex() != applied {
		t.Fatal("identical heartbeat wrote to the store")
	}
	// Nor does a heartbeat without a description.
	e.mustBeat("w1")
	if v := e.node("w1").Meta.Version; v != version {
		t.Fatalf("empty heartbeat changed meta.version from %d to %d", version, v)
	}

	// A changed description is recorded.
	changed := proto.Clone(req).(*shoalpb.HeartbeatRequest)
	changed.Description.EngineLabels["disk"] = "hdd"
	if _, err := e.beat("w1", changed); err != nil {
		t.Fatal(err)
	}
	n = e.node("w1")
	if n.Meta.Version == version || n.Description.EngineLabels["disk"] != "hdd" {
		t.Fatalf("changed description not recorded: version %d, labels %v", n.Meta.Version, n.Description.EngineLabels)
	}
}

func TestHeartbeatRevivesDownNode(t *testing.T) {
	e := newEnv(t, 0)
	e.addNode("w1", shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_DOWN)
	e.propose(&shoalpb.StoreAction{Target: &shoalpb.StoreAction_NodeStatusPatch{NodeStatusPatch: &shoalpb.NodeStatusPatch{
		NodeId: "w1", Status: &shoalpb.NodeStatus{State: shoalpb.NodeState_NODE_STATE_DOWN, Message: "heartbeat failure"},
	}}})
	e.mustBeat("w1")
	if st := e.node("w1").Status; st.State != shoalpb.NodeState_NODE_STATE_READY || st.Message != "" {
		t.Fatalf("status after a heartbeat = %v, want ready with no message", st)
	}
}

func TestHeartbeatResponse(t *testing.T) {
	e := newEnv(t, 7*time.Second)
	e.addNode("mgr", shoalpb.NodeRole_NODE_ROLE_MANAGER, shoalpb.NodeState_NODE_STATE_READY)
	e.addNode("wrk", shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_READY)

	for id, role := range map[string]shoalpb.NodeRole{"mgr": shoalpb.NodeRole_NODE_ROLE_MANAGER, "wrk": shoalpb.NodeRole_NODE_ROLE_WORKER} {
		resp, err := e.beat(id, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.PeriodNs != int64(7*time.Second) {
			t.Fatalf("%s: period = %v, want the cluster's 7s", id, time.Duration(resp.PeriodNs))
		}
		if resp.DesiredRole != role {
			t.Fatalf("%s: desired role = %v, want %v", id, resp.DesiredRole, role)
		}
		if resp.LeaderId != "m1" || len(resp.Managers) != 1 || !proto.Equal(resp.Managers[0], testManagers[0]) {
			t.Fatalf("%s: leader %q managers %v", id, resp.LeaderId, resp.Managers)
		}
	}

	// The response follows a demotion at once.
	e.propose(&shoalpb.StoreAction{Target: &shoalpb.StoreAction_NodeSpecPatch{NodeSpecPatch: &shoalpb.NodeSpecPatch{
		NodeId: "mgr", SetDesiredRole: true, DesiredRole: shoalpb.NodeRole_NODE_ROLE_WORKER,
	}}})
	resp, err := e.beat("mgr", nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.DesiredRole != shoalpb.NodeRole_NODE_ROLE_WORKER {
		t.Fatalf("desired role after demotion = %v", resp.DesiredRole)
	}
}

func TestHeartbeatDefaultPeriod(t *testing.T) {
	e := newEnv(t, 0)
	e.addNode("w1", shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_READY)
	resp, err := e.beat("w1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.PeriodNs != int64(DefaultHeartbeatPeriod) {
		t.Fatalf("period = %v, want the default %v", time.Duration(resp.PeriodNs), DefaultHeartbeatPeriod)
	}
}

// TestHeartbeatPeriodScalesWithNodes: a cluster of more than
// MaxHeartbeatRate nodes is told to beat less often, one node in
// MaxHeartbeatRate per second, and its nodes' TTLs follow; the count is
// taken again once a second.
func TestHeartbeatPeriodScalesWithNodes(t *testing.T) {
	e := newEnv(t, 0)
	for i := range MaxHeartbeatRate {
		e.addNode(fmt.Sprintf("w%03d", i), shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_READY)
	}
	period := func() time.Duration {
		t.Helper()
		resp, err := e.beat("w000", nil)
		if err != nil {
			t.Fatal(err)
		}
		return time.Duration(resp.PeriodNs)
	}
	if got := period(); got != DefaultHeartbeatPeriod {
		t.Fatalf("%d nodes: period %v, want %v", MaxHeartbeatRate, got, DefaultHeartbeatPeriod)
	}
	for i := range 3 * MaxHeartbeatRate {
		e.addNode(fmt.Sprintf("x%03d", i), shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_READY)
	}
	if got := period(); got != DefaultHeartbeatPeriod {
		t.Fatalf("within a second of the last count: period %v, want %v still", got, DefaultHeartbeatPeriod)
	}
	e.clock.set(t0.Add(time.Second))
	if got := period(); got != 4*time.Second {
		t.Fatalf("%d nodes: period %v, want 4s", 4*MaxHeartbeatRate, got)
	}
	// A configured period longer than the floor wins.
	if got := effectivePeriod(7*time.Second, 4*MaxHeartbeatRate); got != 7*time.Second {
		t.Fatalf("configured 7s with %d nodes: %v", 4*MaxHeartbeatRate, got)
	}
	// The node's TTL is three of these periods.
	e.d.mu.Lock()
	dl := e.d.deadlines["w000"]
	e.d.mu.Unlock()
	if want := t0.Add(time.Second + TTLPeriods*4*time.Second); !dl.Equal(want) {
		t.Fatalf("deadline %v, want %v", dl, want)
	}
}

// TestExpireHonoursTTL drives single liveness passes by hand.
func TestExpireHonoursTTL(t *testing.T) {
	const period = time.Second
	e := newEnv(t, period)
	ctx := context.Background()
	e.addNode("beating", shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_READY)
	e.addNode("late", shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_READY)
	e.addNode("silent", shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_READY)

	e.mustBeat("beating")
	e.mustBeat("late")
	e.d.expire(ctx) // "silent" is seen for the first time: a full TTL of grace

	ttl := TTLPeriods * period
	e.clock.set(t0.Add(period))
	e.mustBeat("beating")

	// At exactly the TTL nothing is due yet.
	e.clock.set(t0.Add(ttl))
	e.d.expire(ctx)
	for _, id := range []string{"beating", "late", "silent"} {
		if s := e.state(id); s != shoalpb.NodeState_NODE_STATE_READY {
			t.Fatalf("%s is %v at exactly the TTL", id, s)
		}
	}

	e.clock.set(t0.Add(ttl + time.Nanosecond))
	e.d.expire(ctx)
	for id, want := range map[string]shoalpb.NodeState{
		"beating": shoalpb.NodeState_NODE_STATE_READY,
		"late":    shoalpb.NodeState_NODE_STATE_DOWN,
		"silent":  shoalpb.NodeState_NODE_STATE_DOWN,
	} {
		if s := e.state(id); s != want {
			t.Fatalf("%s is %v just past the TTL, want %v", id, s, want)
		}
	}
	if msg := e.node("late").Status.Message; msg != "heartbeat failure" {
		t.Fatalf("down message = %q", msg)
	}
	if e.node("late").Status.Addr != "198.18.0.50" {
		t.Fatal("marking a node down lost its address")
	}

	// A node already down is not written again.
	version := e.node("late").Meta.Version
	e.clock.set(t0.Add(10 * ttl))
	e.d.expire(ctx)
	if v := e.node("late").Meta.Version; v != version {
		t.Fatalf("down node rewritten: version %d -> %d", version, v)
	}
	if s := e.state("beating"); s != shoalpb.NodeState_NODE_STATE_DOWN {
		t.Fatalf("beating node is %v long after its last heartbeat, want down", s)
	}
}

// startRun runs the liveness loop until the test ends and waits until it
// has set up its deadlines.
func (e *env) startRun(dead <-chan string) {
	e.t.Helper()
	var nodes int
	e.st.View(func(tx store.ReadTx) { nodes = len(tx.Nodes()) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.d.Run(ctx, dead)
	}()
	e.t.Cleanup(func() {
		cancel()
		<-done
	})
	waitFor(e.t, "the liveness loop to start", func() bool {
		e.d.mu.Lock()
		defer e.d.mu.Unlock()
		return len(e.d.deadlines) == nodes
	})
}

func TestRunMarksSilentNodeDown(t *testing.T) {
	const period = 50 * time.Millisecond
	e := newEnv(t, period)
	e.addNode("silent", shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_READY)
	e.addNode("beating", shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_READY)
	e.startRun(nil)

	// Two periods in, nobody is down: the loop gives every node a full
	// TTL from its start. A pass run by hand at this time proves it.
	e.clock.set(t0.Add(2 * period))
	e.mustBeat("beating")
	e.d.expire(context.Background())
	if s := e.state("silent"); s != shoalpb.NodeState_NODE_STATE_READY {
		t.Fatalf("silent node is %v before its TTL", s)
	}

	// Past three periods the loop, by itself, marks the silent node down;
	// the beating one has a later deadline.
	e.clock.set(t0.Add(TTLPeriods*period + time.Millisecond))
	e.mustBeat("beating")
	waitFor(t, "the silent node to be marked down", func() bool {
		return e.state("silent") == shoalpb.NodeState_NODE_STATE_DOWN
	})
	if msg := e.node("silent").Status.Message; msg != "heartbeat failure" {
		t.Fatalf("down message = %q", msg)
	}
	if s := e.state("beating"); s != shoalpb.NodeState_NODE_STATE_READY {
		t.Fatalf("beating node is %v", s)
	}

	// Keep beating for many more TTLs: the node stays ready throughout,
	// with the loop running each step.
	for i := 1; i <= 10; i++ {
		e.clock.set(t0.Add(TTLPeriods*period + time.Duration(i)*period))
		e.mustBeat("beating")
		e.d.expire(context.Background())
		if s := e.state("beating"); s != shoalpb.NodeState_NODE_STATE_READY {
			t.Fatalf("beating node is %v after %d more periods", s, i)
		}
	}

	// Once it stops, the loop catches it too.
	e.clock.set(t0.Add(TTLPeriods*period + 10*period + TTLPeriods*period + time.Millisecond))
	waitFor(t, "the formerly beating node to be marked down", func() bool {
		return e.state("beating") == shoalpb.NodeState_NODE_STATE_DOWN
	})
}

func TestRunMarksGossipDeadNodeDownBeforeTTL(t *testing.T) {
	const period = 50 * time.Millisecond
	e := newEnv(t, period)
	e.addNode("silent", shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_READY)
	e.addNode("recent", shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_READY)
	dead := make(chan string) // unbuffered: each send is taken by the loop
	e.startRun(dead)

	e.mustBeat("recent")
	// Well inside the TTL; "recent" beat less than a period ago.
	e.clock.set(t0.Add(period / 2))
	dead <- "recent"
	dead <- "silent"
	// The loop handles one notice fully before taking the next, so once
	// "silent" is down, "recent" has been dealt with.
	waitFor(t, "the gossip-dead node to be marked down", func() bool {
		return e.state("silent") == shoalpb.NodeState_NODE_STATE_DOWN
	})
	if msg := e.node("silent").Status.Message; !strings.Contains(msg, "gossip") {
		t.Fatalf("down message = %q, want it to name gossip", msg)
	}
	if s := e.state("recent"); s != shoalpb.NodeState_NODE_STATE_READY {
		t.Fatalf("node that beat recently is %v after a gossip notice", s)
	}

	// A notice about a node whose last beat is a period old counts.
	e.clock.set(t0.Add(period))
	dead <- "recent"
	waitFor(t, "the stale node to be marked down", func() bool {
		return e.state("recent") == shoalpb.NodeState_NODE_STATE_DOWN
	})
}
