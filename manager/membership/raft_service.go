package membership

import (
	"context"
	"net"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/manager/caller"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// RaftServer implements shoalpb.RaftMembershipServer on the leader.
type RaftServer struct {
	shoalpb.UnimplementedRaftMembershipServer
	Deps
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// Join makes the calling manager a Raft voter.
func (s *RaftServer) Join(ctx context.Context, req *shoalpb.RaftJoinRequest) (*shoalpb.RaftJoinResponse, error) {
	who := caller.From(ctx)
	if who.Role != caller.Manager {
		return nil, status.Error(codes.PermissionDenied, "joining the managers needs a manager certificate")
	}
	if _, _, err := net.SplitHostPort(req.Addr); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid raft address %q: %v", req.Addr, err)
	}
	var n *shoalpb.Node
	s.Store.View(func(tx store.ReadTx) { n = tx.Node(who.NodeID) })
	if n == nil {
		return nil, status.Errorf(codes.NotFound, "node %s not found", who.NodeID)
	}
	if n.GetSpec().GetDesiredRole() != shoalpb.NodeRole_NODE_ROLE_MANAGER {
		return nil, status.Errorf(codes.FailedPrecondition, "node %s is not wanted as a manager", who.NodeID)
	}
	if err := s.Raft.AddVoter(ctx, n.Id, req.Addr); err != nil {
		return nil, status.Errorf(codes.Unavailable, "add raft voter %s: %v", n.Id, err)
	}
	patch := &shoalpb.NodeStatusPatch{NodeId: n.Id, SetRole: true, Role: shoalpb.NodeRole_NODE_ROLE_MANAGER, AdvertiseAddr: req.Addr, UpdatedAt: s.Now().UnixNano()}
	if _, err := s.Proposer.Propose(ctx, &shoalpb.Command{Actions: []*shoalpb.StoreAction{{Target: &shoalpb.StoreAction_NodeStatusPatch{NodeStatusPatch: patch}}}}); err != nil {
		return nil, status.Errorf(codes.Unavailable, "record manager role: %v", err)
	}
	return &shoalpb.RaftJoinResponse{Managers: Managers(s.Store, s.Raft)}, nil
}

// Leave removes the calling manager from the voters, refusing when that
// would leave the rest without a reachable majority.
func (s *RaftServer) Leave(ctx context.Context, _ *shoalpb.RaftLeaveRequest) (*shoalpb.RaftLeaveResponse, error) {
	who := caller.From(ctx)
	if who.Role != caller.Manager {
		return nil, status.Error(codes.PermissionDenied, "leaving the managers needs a manager certificate")
	}
	servers, err := s.Raft.Servers()
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "read raft configuration: %v", err)
	}
	if isVoter(servers, who.NodeID) {
		leaderID, _ := s.Raft.Leader()
		if who.NodeID == leaderID {
			return nil, status.Error(codes.FailedPrecondition, "the leader cannot leave the managers directly; demote it first")
		}
		if ok, reachable, remaining := reachableMajorityWithout(servers, who.NodeID, leaderID, s.Gossip); !ok || remaining == 0 {
			return nil, status.Errorf(codes.FailedPrecondition, "removing this manager would leave %d reachable of %d managers: the swarm would lose quorum", reachable, remaining)
		}
		if err := s.Raft.RemoveServer(ctx, who.NodeID); err != nil {
			return nil, status.Errorf(codes.Unavailable, "remove raft voter: %v", err)
		}
	}
	now := s.Now().UnixNano()
	_, err = s.Proposer.Propose(ctx, &shoalpb.Command{Actions: []*shoalpb.StoreAction{
		{Target: &shoalpb.StoreAction_NodeSpecPatch{NodeSpecPatch: &shoalpb.NodeSpecPatch{NodeId: who.NodeID, SetDesiredRole: true, DesiredRole: shoalpb.NodeRole_NODE_ROLE_WORKER, UpdatedAt: now}}},
		{Target: &shoalpb.StoreAction_NodeStatusPatch{NodeStatusPatch: &shoalpb.NodeStatusPatch{NodeId: who.NodeID, SetRole: true, Role: shoalpb.NodeRole_NODE_ROLE_WORKER, UpdatedAt: now}}},
	}})
	if err != nil && status.Code(err) != codes.NotFound {
		return nil, status.Errorf(codes.Unavailable, "record role: %v", err)
	}
	return &shoalpb.RaftLeaveResponse{}, nil
}
