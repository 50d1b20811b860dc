package controlapi

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Limits on cluster settings.
const (
	MinCertExpiry      = time.Hour
	MinHeartbeatPeriod = 100 * time.Millisecond
	MaxHeartbeatPeriod = time.Minute
)

// Redacted returns the cluster without its secrets that must not leave the
// managers' API (the root CA key).
func Redacted(c *shoalpb.Cluster) *shoalpb.Cluster {
	if c == nil {
		return nil
	}
	c = proto.Clone(c).(*shoalpb.Cluster)
	if c.RootCa != nil {
		c.RootCa.KeyPem = nil
	}
	c.GossipKey = nil
	return c
}

// GetCluster returns the cluster object.
func (s *Server) GetCluster(ctx context.Context, _ *shoalpb.GetClusterRequest) (*shoalpb.GetClusterResponse, error) {
	var c *shoalpb.Cluster
	s.Store.View(func(tx store.ReadTx) { c = tx.Cluster() })
	if c == nil {
		return nil, status.Error(codes.NotFound, "cluster object not found")
	}
	return &shoalpb.GetClusterResponse{Cluster: Redacted(c)}, nil
}

// UpdateCluster changes cluster settings and rotates join tokens.
func (s *Server) UpdateCluster(ctx context.Context, req *shoalpb.UpdateClusterRequest) (*shoalpb.UpdateClusterResponse, error) {
	if req.SetCertExpiry && time.Duration(req.CertExpiryNs) < MinCertExpiry {
		return nil, invalid("invalid certificate expiry %s: minimum is %s", time.Duration(req.CertExpiryNs), MinCertExpiry)
	}
	if req.SetHeartbeatPeriod && (time.Duration(req.HeartbeatPeriodNs) < MinHeartbeatPeriod || time.Duration(req.HeartbeatPeriodNs) > MaxHeartbeatPeriod) {
		return nil, invalid("invalid dispatcher heartbeat period %s: must be between %s and %s", time.Duration(req.HeartbeatPeriodNs), MinHeartbeatPeriod, MaxHeartbeatPeriod)
	}
	if req.SetTaskHistoryLimit && req.TaskHistoryLimit < 0 {
		return nil, invalid("invalid task history retention limit %d: must not be negative", req.TaskHistoryLimit)
	}
	if req.SetSnapshotInterval && req.SnapshotInterval == 0 {
		return nil, invalid("invalid snapshot interval 0: must be positive")
	}
	// Another writer may change the cluster between our read and our
	// write; the versioned update detects it and we read again.
	for attempt := 0; ; attempt++ {
		var cur *shoalpb.Cluster
		s.Store.View(func(tx store.ReadTx) { cur = tx.Cluster() })
		if cur == nil {
			return nil, status.Error(codes.NotFound, "cluster object not found")
		}
		c := proto.Clone(cur).(*shoalpb.Cluster)
		if c.Spec == nil {
			c.Spec = &shoalpb.ClusterSpec{}
		}
		if req.SetCertExpiry {
			c.Spec.Ca = &shoalpb.CASpec{NodeCertExpiryNs: req.CertExpiryNs}
		}
		if req.SetHeartbeatPeriod {
			c.Spec.Dispatcher = &shoalpb.DispatcherSpec{HeartbeatPeriodNs: req.HeartbeatPeriodNs}
		}
		if req.SetTaskHistoryLimit {
			c.Spec.Orchestration = &shoalpb.OrchestrationSpec{TaskHistoryRetentionLimit: req.TaskHistoryLimit}
		}
		if req.SetSnapshotInterval {
			if c.Spec.Raft == nil {
				c.Spec.Raft = &shoalpb.RaftSpec{}
			}
			c.Spec.Raft.SnapshotInterval = req.SnapshotInterval
		}
		if req.RotateWorkerToken || req.RotateManagerToken {
			if c.JoinTokens == nil {
				c.JoinTokens = &shoalpb.JoinTokens{}
			}
			var err error
			if req.RotateWorkerToken {
				if c.JoinTokens.Worker, err = s.NewJoinToken(c.GetRootCa().GetDigest()); err != nil {
					return nil, status.Errorf(codes.Internal, "generate worker join token: %v", err)
				}
			}
			if req.RotateManagerToken {
				if c.JoinTokens.Manager, err = s.NewJoinToken(c.GetRootCa().GetDigest()); err != nil {
					return nil, status.Errorf(codes.Internal, "generate manager join token: %v", err)
				}
			}
		}
		c.Meta.UpdatedAt = s.now()
		err := s.propose(ctx, &shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_UPDATE, Target: &shoalpb.StoreAction_Cluster{Cluster: c}})
		if status.Code(err) == codes.Aborted && attempt < 5 {
			continue
		}
		if err != nil {
			return nil, err
		}
		var out *shoalpb.Cluster
		s.Store.View(func(tx store.ReadTx) { out = tx.Cluster() })
		return &shoalpb.UpdateClusterResponse{Cluster: Redacted(out)}, nil
	}
}
