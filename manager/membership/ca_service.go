package membership

import (
	"context"
	"errors"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/identity"
	"github.com/shoal-project/shoal/manager/ca"
	"github.com/shoal-project/shoal/manager/caller"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// CAServer implements shoalpb.CAServer on the leader.
type CAServer struct {
	shoalpb.UnimplementedCAServer
	Deps
}

func (s *CAServer) cluster() (*shoalpb.Cluster, *ca.RootCA, error) {
	var c *shoalpb.Cluster
	s.Store.View(func(tx store.ReadTx) { c = tx.Cluster() })
	if c == nil || c.RootCa == nil {
		return nil, nil, status.Error(codes.FailedPrecondition, "cluster is not initialised")
	}
	root, err := ca.ParseRootCA(c.RootCa.CertPem, c.RootCa.KeyPem)
	if err != nil {
		return nil, nil, status.Errorf(codes.Internal, "load root CA: %v", err)
	}
	return c, root, nil
}

func certExpiry(c *shoalpb.Cluster) time.Duration {
	if d := time.Duration(c.GetSpec().GetCa().GetNodeCertExpiryNs()); d > 0 {
		return d
	}
	return ca.DefaultNodeCertExpiry
}

func toIdentityRole(r shoalpb.NodeRole) identity.Role {
	if r == shoalpb.NodeRole_NODE_ROLE_MANAGER {
		return identity.RoleManager
	}
	return identity.RoleWorker
}

func toNodeRole(r identity.Role) shoalpb.NodeRole {
	if r == identity.RoleManager {
		return shoalpb.NodeRole_NODE_ROLE_MANAGER
	}
	return shoalpb.NodeRole_NODE_ROLE_WORKER
}

// JoinCluster admits a node that proves a current join token.
func (s *CAServer) JoinCluster(ctx context.Context, req *shoalpb.JoinClusterRequest) (*shoalpb.JoinClusterResponse, error) {
	c, root, err := s.cluster()
	if err != nil {
		return nil, err
	}
	role, err := ca.ValidateToken(req.Token, c.GetJoinTokens().GetWorker(), c.GetJoinTokens().GetManager(), c.RootCa.Digest)
	if err != nil {
		if errors.Is(err, identity.ErrInvalidJoinToken) {
			return nil, status.Error(codes.PermissionDenied, err.Error())
		}
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if req.AdvertiseAddr == "" {
		return nil, status.Error(codes.InvalidArgument, "join request has no advertise address")
	}
	now := s.Now()
	id := s.NewNodeID()
	certPEM, cert, err := root.Issue(req.CsrDer, identity.Identity{NodeID: id, ClusterID: c.Id, Role: role}, certExpiry(c), now)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "issue certificate: %v", err)
	}
	nodeRole := toNodeRole(role)
	n := &shoalpb.Node{
		Id:            id,
		Meta:          &shoalpb.Meta{CreatedAt: now.UnixNano(), UpdatedAt: now.UnixNano()},
		Spec:          &shoalpb.NodeSpec{DesiredRole: nodeRole},
		Description:   req.Description,
		Status:        &shoalpb.NodeStatus{State: shoalpb.NodeState_NODE_STATE_UNKNOWN, Addr: hostOf(req.AdvertiseAddr)},
		Role:          shoalpb.NodeRole_NODE_ROLE_WORKER,
		AdvertiseAddr: req.AdvertiseAddr,
		GossipAddr:    req.GossipAddr,
		Certificate:   &shoalpb.NodeCertificate{Serial: cert.SerialNumber.Text(16), NotAfter: cert.NotAfter.UnixNano(), Role: nodeRole},
	}
	if _, err := s.Proposer.Propose(ctx, &shoalpb.Command{Actions: []*shoalpb.StoreAction{{
		Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Node{Node: n},
	}}}); err != nil {
		return nil, status.Errorf(codes.Unavailable, "register node: %v", err)
	}
	return &shoalpb.JoinClusterResponse{
		NodeId:            id,
		ClusterId:         c.Id,
		CertPem:           certPEM,
		RootCaPem:         c.RootCa.CertPem,
		GossipKey:         c.GossipKey,
		Role:              nodeRole,
		Managers:          Managers(s.Store, s.Raft),
		HeartbeatPeriodNs: c.GetSpec().GetDispatcher().GetHeartbeatPeriodNs(),
	}, nil
}

// RenewCertificate issues a new certificate for the calling node. The role
// is manager while the node is wanted as a manager or still a Raft voter,
// so a demoted manager keeps its rights until it has left the voters.
func (s *CAServer) RenewCertificate(ctx context.Context, req *shoalpb.RenewCertificateRequest) (*shoalpb.RenewCertificateResponse, error) {
	who := caller.From(ctx)
	if who.Role == caller.Anonymous {
		return nil, status.Error(codes.Unauthenticated, "certificate renewal needs a node certificate")
	}
	c, root, err := s.cluster()
	if err != nil {
		return nil, err
	}
	var n *shoalpb.Node
	s.Store.View(func(tx store.ReadTx) { n = tx.Node(who.NodeID) })
	if n == nil || slices.Contains(c.RemovedNodes, who.NodeID) {
		return nil, status.Errorf(codes.PermissionDenied, "node %s has been removed from the swarm", who.NodeID)
	}
	role := n.GetSpec().GetDesiredRole()
	if servers, err := s.Raft.Servers(); err == nil && isVoter(servers, n.Id) {
		role = shoalpb.NodeRole_NODE_ROLE_MANAGER
	}
	now := s.Now()
	certPEM, cert, err := root.Issue(req.CsrDer, identity.Identity{NodeID: n.Id, ClusterID: c.Id, Role: toIdentityRole(role)}, certExpiry(c), now)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "issue certificate: %v", err)
	}
	patch := &shoalpb.NodeStatusPatch{
		NodeId:      n.Id,
		Certificate: &shoalpb.NodeCertificate{Serial: cert.SerialNumber.Text(16), NotAfter: cert.NotAfter.UnixNano(), Role: role},
		UpdatedAt:   now.UnixNano(),
	}
	if _, err := s.Proposer.Propose(ctx, &shoalpb.Command{Actions: []*shoalpb.StoreAction{{Target: &shoalpb.StoreAction_NodeStatusPatch{NodeStatusPatch: patch}}}}); err != nil {
		return nil, status.Errorf(codes.Unavailable, "record certificate: %v", err)
	}
	return &shoalpb.RenewCertificateResponse{CertPem: certPEM, Role: role}, nil
}
