package membership

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/identity"
	"github.com/shoal-project/shoal/manager/ca"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/raftstore"
)

// fixed is the only time the components under test ever see.
var fixed = time.Date(2026, time.March, 14, 9, 26, 53, 0, time.UTC)

const (
	clusterID      = "cluster-test-1"
	testCertExpiry = 12 * time.Hour
)

// fakeRaft is a settable Raft configuration that records the membership
// changes asked of it.
type fakeRaft struct {
	mu        sync.Mutex
	notLeader bool
	leader    string
	servers   []raftstore.Server
	addErr    error

	added     []raftstore.Server
	removed   []string
	transfers int
}

func (r *fakeRaft) IsLeader() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.notLeader
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
	return slices.Clone(r.servers), nil
}

func (r *fakeRaft) AddVoter(_ context.Context, id, addr string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.addErr != nil {
		return r.addErr
	}
	r.added = append(r.added, raftstore.Server{ID: id, Addr: addr, Voter: true})
	r.servers = slices.DeleteFunc(r.servers, func(s raftstore.Server) bool { return s.ID == id })
	r.servers = append(r.servers, raftstore.Server{ID: id, Addr: addr, Voter: true})
	return nil
}

func (r *fakeRaft) RemoveServer(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removed = append(r.removed, id)
	r.servers = slices.DeleteFunc(r.servers, func(s raftstore.Server) bool { return s.ID == id })
	return nil
}

func (r *fakeRaft) TransferLeadership(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.transfers++
	return nil
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

type raftCalls struct {
	added     []raftstore.Server
	removed   []string
	transfers int
}

func (r *fakeRaft) calls() raftCalls {
	r.mu.Lock()
	defer r.mu.Unlock()
	return raftCalls{added: slices.Clone(r.added), removed: slices.Clone(r.removed), transfers: r.transfers}
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
	deps   Deps
	nextID int
}

// newEnv stores a cluster with a real root CA and join tokens. The
// manager running the components is "m1".
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
	e := &env{t: t, st: st, prop: &store.LocalProposer{Store: st}, raft: &fakeRaft{}, gossip: &fakeGossip{}, root: root}
	e.deps = Deps{
		NodeID:   "m1",
		Store:    st,
		Proposer: e.prop,
		Raft:     e.raft,
		Gossip:   e.gossip,
		Now:      func() time.Time { return fixed },
		NewNodeID: func() string {
			e.nextID++
			return fmt.Sprintf("node%021d", e.nextID)
		},
	}
	e.propose(&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Cluster{Cluster: &shoalpb.Cluster{
		Id:   clusterID,
		Meta: &shoalpb.Meta{CreatedAt: fixed.UnixNano()},
		Spec: &shoalpb.ClusterSpec{
			Name:       "default",
			Dispatcher: &shoalpb.DispatcherSpec{HeartbeatPeriodNs: int64(5 * time.Second)},
			Ca:         &shoalpb.CASpec{NodeCertExpiryNs: int64(testCertExpiry)},
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

func (e *env) setDesiredRole(id string, role shoalpb.NodeRole) {
	e.t.Helper()
	e.propose(&shoalpb.StoreAction{Target: &shoalpb.StoreAction_NodeSpecPatch{NodeSpecPatch: &shoalpb.NodeSpecPatch{
		NodeId: id, SetDesiredRole: true, DesiredRole: role,
	}}})
}

func (e *env) node(id string) *shoalpb.Node {
	var n *shoalpb.Node
	e.st.View(func(tx store.ReadTx) { n = tx.Node(id) })
	return n
}

func (e *env) mustNode(id string) *shoalpb.Node {
	e.t.Helper()
	n := e.node(id)
	if n == nil {
		e.t.Fatalf("node %s is not in the store", id)
	}
	return n
}

func (e *env) nodeCount() int {
	var c int
	e.st.View(func(tx store.ReadTx) { c = len(tx.Nodes()) })
	return c
}

func (e *env) cluster() *shoalpb.Cluster {
	var c *shoalpb.Cluster
	e.st.View(func(tx store.ReadTx) { c = tx.Cluster() })
	return c
}

// newNode returns a node with the same desired and observed role.
func newNode(id string, role shoalpb.NodeRole) *shoalpb.Node {
	return &shoalpb.Node{
		Id:            id,
		Meta:          &shoalpb.Meta{CreatedAt: fixed.Add(-time.Hour).UnixNano()},
		Spec:          &shoalpb.NodeSpec{DesiredRole: role},
		Description:   &shoalpb.NodeDescription{Hostname: "host-" + id},
		Status:        &shoalpb.NodeStatus{State: shoalpb.NodeState_NODE_STATE_READY, Addr: "198.18.0.1"},
		Role:          role,
		AdvertiseAddr: addrOf(id),
		GossipAddr:    id + ".test:7946",
	}
}

func manager(id string) *shoalpb.Node { return newNode(id, shoalpb.NodeRole_NODE_ROLE_MANAGER) }
func worker(id string) *shoalpb.Node  { return newNode(id, shoalpb.NodeRole_NODE_ROLE_WORKER) }

// newCSR returns a fresh key and a CSR for it.
func newCSR(t *testing.T) (crypto.Signer, []byte) {
	t.Helper()
	key, _, err := identity.NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := identity.CreateCSR(key)
	if err != nil {
		t.Fatal(err)
	}
	return key, csr
}

// checkCert parses certPEM, verifies it against the root at the fixed
// time, checks it certifies key, and returns its identity.
func (e *env) checkCert(certPEM []byte, key crypto.Signer) (*x509.Certificate, identity.Identity) {
	e.t.Helper()
	cert, err := identity.ParseCertificatePEM(certPEM)
	if err != nil {
		e.t.Fatalf("parse issued certificate: %v", err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: e.root.Pool(), CurrentTime: fixed, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		e.t.Fatalf("issued certificate does not chain to the root: %v", err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		e.t.Fatal("issued certificate is not for the requested key")
	}
	if want := fixed.Add(testCertExpiry); !cert.NotAfter.Equal(want) {
		e.t.Fatalf("certificate expires %v, want %v (the cluster's expiry from the fixed clock)", cert.NotAfter, want)
	}
	id, err := identity.IdentityFromCert(cert)
	if err != nil {
		e.t.Fatalf("read identity: %v", err)
	}
	return cert, id
}

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

func (e *env) nodeUnchanged(before *shoalpb.Node) {
	e.t.Helper()
	if after := e.node(before.Id); !proto.Equal(before, after) {
		e.t.Fatalf("node %s changed:\nbefore %v\nafter  %v", before.Id, before, after)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

var errInjected = errors.New("injected failure")
