package controlapi_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/identity"
	"github.com/shoal-project/shoal/manager/ca"
	"github.com/shoal-project/shoal/manager/controlapi"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/raftstore"
)

// fixed is the only time the server under test ever sees.
var fixed = time.Date(2026, time.March, 14, 9, 26, 53, 0, time.UTC)

const clusterID = "cluster-test-1"

// fakeRaft is a settable view of the Raft configuration.
type fakeRaft struct {
	mu      sync.Mutex
	leader  string
	servers []raftstore.Server
}

func (r *fakeRaft) Leader() (string, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.servers {
		if s.ID == r.leader {
			return s.ID, s.Addr
		}
	}
	return r.leader, ""
}

func (r *fakeRaft) Servers() ([]raftstore.Server, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]raftstore.Server(nil), r.servers...), nil
}

// setVoters makes ids the voters, the first one leading.
func (r *fakeRaft) setVoters(ids ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.servers = nil
	for _, id := range ids {
		r.servers = append(r.servers, raftstore.Server{ID: id, Addr: addrOf(id), Voter: true})
	}
	r.leader = ""
	if len(ids) > 0 {
		r.leader = ids[0]
	}
}

func (r *fakeRaft) addNonVoter(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.servers = append(r.servers, raftstore.Server{ID: id, Addr: addrOf(id)})
}

func addrOf(id string) string { return id + ".test:4242" }

// fakeGossip is a settable set of live node IDs.
type fakeGossip struct {
	mu    sync.Mutex
	alive map[string]bool
}

func (g *fakeGossip) Alive(id string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.alive[id]
}

func (g *fakeGossip) set(alive bool, ids ...string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.alive == nil {
		g.alive = map[string]bool{}
	}
	for _, id := range ids {
		g.alive[id] = alive
	}
}

type env struct {
	t      *testing.T
	st     *store.Store
	prop   *store.LocalProposer
	raft   *fakeRaft
	gossip *fakeGossip
	root   *ca.RootCA
	srv    *controlapi.Server
	ctx    context.Context
}

func newEnv(t *testing.T) *env {
	t.Helper()
	root, err := ca.NewRootCA(fixed)
	if err != nil {
		t.Fatal(err)
	}
	workerTok, managerTok, err := root.NewJoinTokens()
	if err != nil {
		t.Fatal(err)
	}
	st := store.New()
	e := &env{
		t:      t,
		st:     st,
		prop:   &store.LocalProposer{Store: st},
		raft:   &fakeRaft{},
		gossip: &fakeGossip{},
		root:   root,
		ctx:    context.Background(),
	}
	e.srv = &controlapi.Server{
		Store:        st,
		Proposer:     e.prop,
		Raft:         e.raft,
		Gossip:       e.gossip,
		Now:          func() time.Time { return fixed },
		NewJoinToken: func(d string) (string, error) { return identity.GenerateJoinToken(d, nil) },
	}
	created := fixed.Add(-24 * time.Hour).UnixNano()
	e.propose(&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Cluster{Cluster: &shoalpb.Cluster{
		Id:   clusterID,
		Meta: &shoalpb.Meta{CreatedAt: created, UpdatedAt: created},
		Spec: &shoalpb.ClusterSpec{
			Name:          "default",
			Raft:          &shoalpb.RaftSpec{SnapshotInterval: 10000, KeepOldSnapshots: 0},
			Dispatcher:    &shoalpb.DispatcherSpec{HeartbeatPeriodNs: int64(5 * time.Second)},
			Ca:            &shoalpb.CASpec{NodeCertExpiryNs: int64(90 * 24 * time.Hour)},
			Orchestration: &shoalpb.OrchestrationSpec{TaskHistoryRetentionLimit: 5},
		},
		RootCa:     &shoalpb.RootCA{CertPem: root.CertPEM, KeyPem: root.KeyPEM, Digest: root.Digest},
		JoinTokens: &shoalpb.JoinTokens{Worker: workerTok, Manager: managerTok},
		GossipKey:  []byte("0123456789abcdef0123456789abcdef"),
	}}})
	return e
}

func (e *env) propose(actions ...*shoalpb.StoreAction) {
	e.t.Helper()
	if _, err := e.prop.Propose(context.Background(), &shoalpb.Command{Actions: actions}); err != nil {
		e.t.Fatalf("propose: %v", err)
	}
}

func (e *env) addNodes(nodes ...*shoalpb.Node) {
	e.t.Helper()
	for _, n := range nodes {
		e.propose(&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Node{Node: n}})
	}
}

func (e *env) node(id string) *shoalpb.Node {
	var n *shoalpb.Node
	e.st.View(func(tx store.ReadTx) { n = tx.Node(id) })
	return n
}

func (e *env) cluster() *shoalpb.Cluster {
	var c *shoalpb.Cluster
	e.st.View(func(tx store.ReadTx) { c = tx.Cluster() })
	return c
}

// mustNode returns the stored node, failing the test when it is missing.
func (e *env) mustNode(id string) *shoalpb.Node {
	e.t.Helper()
	n := e.node(id)
	if n == nil {
		e.t.Fatalf("node %s is not in the store", id)
	}
	return n
}

func newNode(id, hostname string, role shoalpb.NodeRole, state shoalpb.NodeState) *shoalpb.Node {
	return &shoalpb.Node{
		Id:          id,
		Meta:        &shoalpb.Meta{CreatedAt: fixed.Add(-time.Hour).UnixNano()},
		Spec:        &shoalpb.NodeSpec{DesiredRole: role},
		Description: &shoalpb.NodeDescription{Hostname: hostname},
		Status:      &shoalpb.NodeStatus{State: state, Addr: "198.18.0.1"},
		Role:        role,
	}
}

func manager(id string) *shoalpb.Node {
	return newNode(id, "host-"+id, shoalpb.NodeRole_NODE_ROLE_MANAGER, shoalpb.NodeState_NODE_STATE_READY)
}

func worker(id string, state shoalpb.NodeState) *shoalpb.Node {
	return newNode(id, "host-"+id, shoalpb.NodeRole_NODE_ROLE_WORKER, state)
}

func ids(nodes []*shoalpb.Node) []string {
	out := make([]string, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, n.Id)
	}
	return out
}

// wantCode fails unless err is a gRPC status with code c whose message
// contains every one of parts.
func wantCode(t *testing.T, err error, c codes.Code, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want %v", c)
	}
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("err = %v (%T), want a gRPC status %v", err, err, c)
	}
	if st.Code() != c {
		t.Fatalf("code = %v (%q), want %v", st.Code(), st.Message(), c)
	}
	for _, p := range parts {
		if !strings.Contains(st.Message(), p) {
			t.Fatalf("message %q does not contain %q", st.Message(), p)
		}
	}
}

// nodeUnchanged fails unless the node is still stored exactly as before.
func (e *env) nodeUnchanged(before *shoalpb.Node) {
	e.t.Helper()
	after := e.node(before.Id)
	if !proto.Equal(before, after) {
		e.t.Fatalf("node %s changed:\nbefore %v\nafter  %v", before.Id, before, after)
	}
}

// clusterUnchanged fails unless the cluster is still stored exactly as before.
func (e *env) clusterUnchanged(before *shoalpb.Cluster) {
	e.t.Helper()
	if after := e.cluster(); !proto.Equal(before, after) {
		e.t.Fatalf("cluster changed:\nbefore %v\nafter  %v", before, after)
	}
}
