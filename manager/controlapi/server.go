// Package controlapi implements the Control gRPC service, the cluster API
// the CLI uses. Handlers run on the Raft leader (followers forward to it):
// they validate requests, decide IDs and timestamps, and write through the
// store's Proposer. It must not import raft, worker/, node/ or cmd/.
package controlapi

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/raftstore"
)

// Raft is the view of the consensus layer the handlers need.
type Raft interface {
	Leader() (id, addr string)
	Servers() ([]raftstore.Server, error)
}

// Gossip tells whether gossip currently sees a node alive.
type Gossip interface {
	Alive(nodeID string) bool
}

// Server implements shoalpb.ControlServer.
type Server struct {
	shoalpb.UnimplementedControlServer

	Store    *store.Store
	Proposer store.Proposer
	Raft     Raft
	Gossip   Gossip
	// Now is the clock; IDs and timestamps are decided here, never in the FSM.
	Now func() time.Time
	// NewJoinToken makes a join token pinned to the given CA digest.
	NewJoinToken func(caDigest string) (string, error)
	// NewID makes a fresh object ID (25 base-36 characters) for services.
	NewID func() string

	// networkMu serialises the allocation of networks (VNIs, subnets)
	// with their write: see lockNetworks.
	networkMu sync.Mutex
}

func (s *Server) now() int64 { return s.Now().UnixNano() }

func (s *Server) propose(ctx context.Context, actions ...*shoalpb.StoreAction) error {
	_, err := s.Proposer.Propose(ctx, &shoalpb.Command{Actions: actions})
	return storeError(err)
}

// storeError maps store and replication errors to gRPC statuses.
func storeError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, store.ErrNotExist):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, store.ErrExist):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, store.ErrSequenceConflict):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, store.ErrAmbiguous):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, raftstore.ErrNotLeader), errors.Is(err, raftstore.ErrLeadershipLost), errors.Is(err, raftstore.ErrShutdown):
		return status.Error(codes.Unavailable, NoLeaderMessage+" ("+err.Error()+")")
	}
	return status.Error(codes.Internal, err.Error())
}

// NoLeaderMessage is the error a manager gives when no quorum can be reached.
const NoLeaderMessage = "The swarm does not have a leader (no quorum). It's possible that too few managers are online. Make sure more than half of the managers are online."

func invalid(format string, args ...any) error {
	return status.Error(codes.InvalidArgument, fmt.Sprintf(format, args...))
}

func precondition(format string, args ...any) error {
	return status.Error(codes.FailedPrecondition, fmt.Sprintf(format, args...))
}
