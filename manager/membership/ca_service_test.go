package membership

import (
	"bytes"
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/identity"
	"github.com/shoal-project/shoal/manager/ca"
	"github.com/shoal-project/shoal/manager/caller"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

func TestJoinClusterWithWorkerToken(t *testing.T) {
	e := newEnv(t)
	e.addNodes(manager("m1"))
	e.raft.setVoters("m1")
	srv := &CAServer{Deps: e.deps}

	key, csr := newCSR(t)
	desc := &shoalpb.NodeDescription{Hostname: "joiner", EngineLabels: map[string]string{"os": "linux"}}
	resp, err := srv.JoinCluster(context.Background(), &shoalpb.JoinClusterRequest{
		Token:         e.cluster().JoinTokens.Worker,
		CsrDer:        csr,
		Description:   desc,
		AdvertiseAddr: "198.18.0.9:4242",
		GossipAddr:    "198.18.0.9:7946",
	})
	if err != nil {
		t.Fatalf("JoinCluster: %v", err)
	}
	const wantID = "node000000000000000000001"
	if resp.NodeId != wantID || resp.ClusterId != clusterID {
		t.Fatalf("response node %q cluster %q, want %q %q", resp.NodeId, resp.ClusterId, wantID, clusterID)
	}
	if resp.Role != shoalpb.NodeRole_NODE_ROLE_WORKER {
		t.Fatalf("response role = %v, want worker", resp.Role)
	}
	if !bytes.Equal(resp.RootCaPem, e.root.CertPEM) {
		t.Fatal("response does not carry the root CA certificate")
	}
	if !bytes.Equal(resp.GossipKey, e.cluster().GossipKey) {
		t.Fatal("response does not carry the gossip key")
	}
	if resp.HeartbeatPeriodNs != int64(5*time.Second) {
		t.Fatalf("heartbeat period = %d", resp.HeartbeatPeriodNs)
	}
	if len(resp.Managers) != 1 || resp.Managers[0].NodeId != "m1" || resp.Managers[0].Addr != addrOf("m1") || resp.Managers[0].GossipAddr != "m1.test:7946" {
		t.Fatalf("managers = %v", resp.Managers)
	}

	cert, id := e.checkCert(resp.CertPem, key)
	if want := (identity.Identity{NodeID: wantID, ClusterID: clusterID, Role: identity.RoleWorker}); id != want {
		t.Fatalf("certificate identity = %+v, want %+v", id, want)
	}

	n := e.mustNode(wantID)
	if n.Spec.DesiredRole != shoalpb.NodeRole_NODE_ROLE_WORKER || n.Role != shoalpb.NodeRole_NODE_ROLE_WORKER {
		t.Fatalf("node roles desired %v observed %v, want worker and worker", n.Spec.DesiredRole, n.Role)
	}
	if n.Status.State != shoalpb.NodeState_NODE_STATE_UNKNOWN || n.Status.Addr != "198.18.0.9" {
		t.Fatalf("node status = %v, want unknown at 198.18.0.9", n.Status)
	}
	if n.AdvertiseAddr != "198.18.0.9:4242" || n.GossipAddr != "198.18.0.9:7946" {
		t.Fatalf("node addresses %q %q", n.AdvertiseAddr, n.GossipAddr)
	}
	if !proto.Equal(n.Description, desc) {
		t.Fatalf("node description = %v, want %v", n.Description, desc)
	}
	if n.Certificate.GetSerial() != cert.SerialNumber.Text(16) || n.Certificate.GetNotAfter() != cert.NotAfter.UnixNano() || n.Certificate.GetRole() != shoalpb.NodeRole_NODE_ROLE_WORKER {
		t.Fatalf("recorded certificate = %v, issued serial %s", n.Certificate, cert.SerialNumber.Text(16))
	}
	if n.Meta.CreatedAt != fixed.UnixNano() {
		t.Fatalf("created_at = %d, want the fixed clock", n.Meta.CreatedAt)
	}
}

func TestJoinClusterWithManagerToken(t *testing.T) {
	e := newEnv(t)
	srv := &CAServer{Deps: e.deps}
	key, csr := newCSR(t)
	resp, err := srv.JoinCluster(context.Background(), &shoalpb.JoinClusterRequest{
		Token: e.cluster().JoinTokens.Manager, CsrDer: csr, AdvertiseAddr: "198.18.0.10:4242",
	})
	if err != nil {
		t.Fatalf("JoinCluster: %v", err)
	}
	if resp.Role != shoalpb.NodeRole_NODE_ROLE_MANAGER {
		t.Fatalf("response role = %v, want manager", resp.Role)
	}
	_, id := e.checkCert(resp.CertPem, key)
	if want := (identity.Identity{NodeID: resp.NodeId, ClusterID: clusterID, Role: identity.RoleManager}); id != want {
		t.Fatalf("certificate identity = %+v, want %+v", id, want)
	}
	n := e.mustNode(resp.NodeId)
	if n.Spec.DesiredRole != shoalpb.NodeRole_NODE_ROLE_MANAGER {
		t.Fatalf("desired role = %v, want manager", n.Spec.DesiredRole)
	}
	// It becomes a manager in the observed sense only once it is a voter.
	if n.Role != shoalpb.NodeRole_NODE_ROLE_WORKER {
		t.Fatalf("observed role = %v before joining Raft, want worker", n.Role)
	}
	if n.Certificate.GetRole() != shoalpb.NodeRole_NODE_ROLE_MANAGER {
		t.Fatalf("recorded certificate role = %v", n.Certificate.GetRole())
	}

	// Two joins give two distinct nodes.
	_, csr2 := newCSR(t)
	resp2, err := srv.JoinCluster(context.Background(), &shoalpb.JoinClusterRequest{
		Token: e.cluster().JoinTokens.Worker, CsrDer: csr2, AdvertiseAddr: "198.18.0.11:4242",
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp2.NodeId == resp.NodeId || e.nodeCount() != 2 {
		t.Fatalf("second join: id %s (first %s), %d nodes stored", resp2.NodeId, resp.NodeId, e.nodeCount())
	}
}

func TestJoinClusterRefusals(t *testing.T) {
	e := newEnv(t)
	srv := &CAServer{Deps: e.deps}
	cl := e.cluster()

	forged, err := identity.GenerateJoinToken(e.root.Digest, nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ca.NewRootCA(fixed)
	if err != nil {
		t.Fatal(err)
	}
	otherTok, _, err := other.NewJoinTokens()
	if err != nil {
		t.Fatal(err)
	}
	_, csr := newCSR(t)

	for _, tc := range []struct {
		name  string
		req   *shoalpb.JoinClusterRequest
		code  codes.Code // OK means "any error"
		parts []string
	}{
		{"forged secret", &shoalpb.JoinClusterRequest{Token: forged, CsrDer: csr, AdvertiseAddr: "198.18.0.9:4242"}, codes.PermissionDenied, []string{"invalid join token"}},
		{"worker token with a flipped character", &shoalpb.JoinClusterRequest{Token: flipLast(cl.JoinTokens.Worker), CsrDer: csr, AdvertiseAddr: "198.18.0.9:4242"}, codes.PermissionDenied, nil},
		{"malformed", &shoalpb.JoinClusterRequest{Token: "SHLTKN-1-not-a-token", CsrDer: csr, AdvertiseAddr: "198.18.0.9:4242"}, codes.OK, nil},
		{"empty", &shoalpb.JoinClusterRequest{CsrDer: csr, AdvertiseAddr: "198.18.0.9:4242"}, codes.OK, nil},
		{"another CA's token", &shoalpb.JoinClusterRequest{Token: otherTok, CsrDer: csr, AdvertiseAddr: "198.18.0.9:4242"}, codes.OK, nil},
		{"no advertise address", &shoalpb.JoinClusterRequest{Token: cl.JoinTokens.Worker, CsrDer: csr}, codes.InvalidArgument, []string{"advertise address"}},
		{"bad CSR", &shoalpb.JoinClusterRequest{Token: cl.JoinTokens.Worker, CsrDer: []byte("not a csr"), AdvertiseAddr: "198.18.0.9:4242"}, codes.InvalidArgument, []string{"CSR"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			applied := e.st.AppliedIndex()
			resp, err := srv.JoinCluster(context.Background(), tc.req)
			if tc.code == codes.OK {
				if err == nil {
					t.Fatalf("JoinCluster accepted it: node %s", resp.GetNodeId())
				}
			} else {
				wantCode(t, err, tc.code, tc.parts...)
			}
			if resp != nil {
				t.Fatalf("response %v alongside an error", resp)
			}
			if e.nodeCount() != 0 || e.st.AppliedIndex() != applied {
				t.Fatalf("a refused join wrote to the store (%d nodes)", e.nodeCount())
			}
		})
	}
}

// flipLast changes the token's last character to another valid one.
func flipLast(tok string) string {
	b := []byte(tok)
	if b[len(b)-1] == '0' {
		b[len(b)-1] = '1'
	} else {
		b[len(b)-1] = '0'
	}
	return string(b)
}

func TestRenewCertificate(t *testing.T) {
	e := newEnv(t)
	e.addNodes(manager("m1"), manager("m2"), worker("w1"), worker("demoted"), manager("promoted"))
	e.setDesiredRole("demoted", shoalpb.NodeRole_NODE_ROLE_WORKER)
	// "demoted" still votes; "promoted" does not yet.
	e.raft.setVoters("m1", "m2", "demoted")
	srv := &CAServer{Deps: e.deps}

	for _, tc := range []struct {
		id   string
		want shoalpb.NodeRole
	}{
		{"w1", shoalpb.NodeRole_NODE_ROLE_WORKER},
		{"m2", shoalpb.NodeRole_NODE_ROLE_MANAGER},
		{"demoted", shoalpb.NodeRole_NODE_ROLE_MANAGER},
		{"promoted", shoalpb.NodeRole_NODE_ROLE_MANAGER},
	} {
		t.Run(tc.id, func(t *testing.T) {
			// The certificate the caller presents does not decide the role.
			ctx := caller.With(context.Background(), caller.Caller{NodeID: tc.id, Role: caller.Worker})
			key, csr := newCSR(t)
			resp, err := srv.RenewCertificate(ctx, &shoalpb.RenewCertificateRequest{CsrDer: csr})
			if err != nil {
				t.Fatalf("RenewCertificate: %v", err)
			}
			if resp.Role != tc.want {
				t.Fatalf("role = %v, want %v", resp.Role, tc.want)
			}
			cert, id := e.checkCert(resp.CertPem, key)
			if want := (identity.Identity{NodeID: tc.id, ClusterID: clusterID, Role: toIdentityRole(tc.want)}); id != want {
				t.Fatalf("identity = %+v, want %+v", id, want)
			}
			n := e.mustNode(tc.id)
			if n.Certificate.GetSerial() != cert.SerialNumber.Text(16) || n.Certificate.GetRole() != tc.want {
				t.Fatalf("recorded certificate = %v, want serial %s role %v", n.Certificate, cert.SerialNumber.Text(16), tc.want)
			}
		})
	}

	// The demoted manager gets a worker certificate once it has left.
	e.raft.setVoters("m1", "m2")
	ctx := caller.With(context.Background(), caller.Caller{NodeID: "demoted", Role: caller.Manager})
	_, csr := newCSR(t)
	resp, err := srv.RenewCertificate(ctx, &shoalpb.RenewCertificateRequest{CsrDer: csr})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Role != shoalpb.NodeRole_NODE_ROLE_WORKER {
		t.Fatalf("role after leaving the voters = %v, want worker", resp.Role)
	}
}

func TestRenewCertificateRefusals(t *testing.T) {
	e := newEnv(t)
	e.addNodes(manager("m1"), worker("w1"), worker("listed"))
	e.raft.setVoters("m1")
	// "gone" was removed: no node object and listed as removed.
	// "listed" is listed as removed although its object is still there.
	cl := proto.Clone(e.cluster()).(*shoalpb.Cluster)
	cl.RemovedNodes = []string{"gone", "listed"}
	e.propose(&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_UPDATE, Target: &shoalpb.StoreAction_Cluster{Cluster: cl}})
	srv := &CAServer{Deps: e.deps}
	_, csr := newCSR(t)

	for _, tc := range []struct {
		name  string
		who   *caller.Caller
		csr   []byte
		code  codes.Code
		parts []string
	}{
		{"anonymous", nil, csr, codes.Unauthenticated, nil},
		{"removed node", &caller.Caller{NodeID: "gone", Role: caller.Worker}, csr, codes.PermissionDenied, []string{"gone", "removed"}},
		{"removed manager", &caller.Caller{NodeID: "gone", Role: caller.Manager}, csr, codes.PermissionDenied, []string{"gone"}},
		{"listed as removed", &caller.Caller{NodeID: "listed", Role: caller.Worker}, csr, codes.PermissionDenied, []string{"listed"}},
		{"never joined", &caller.Caller{NodeID: "stranger", Role: caller.Worker}, csr, codes.PermissionDenied, []string{"stranger"}},
		{"bad CSR", &caller.Caller{NodeID: "w1", Role: caller.Worker}, []byte{1, 2, 3}, codes.InvalidArgument, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.who != nil {
				ctx = caller.With(ctx, *tc.who)
			}
			applied := e.st.AppliedIndex()
			resp, err := srv.RenewCertificate(ctx, &shoalpb.RenewCertificateRequest{CsrDer: tc.csr})
			wantCode(t, err, tc.code, tc.parts...)
			if resp != nil {
				t.Fatalf("response %v alongside an error", resp)
			}
			if e.st.AppliedIndex() != applied {
				t.Fatal("a refused renewal wrote to the store")
			}
		})
	}
}
