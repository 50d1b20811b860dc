package raftstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
)

var (
	// ErrNotLeader reports that the operation needs the leader and this node
	// is not it. The operation was not started; retrying on the leader is
	// safe. Errors matching ErrNotLeader are *NotLeaderError values carrying
	// the leader this node currently knows about, if any.
	ErrNotLeader = errors.New("not the raft leader")

	// ErrNoLeader reports that this node knows of no leader at the moment
	// (an election is in progress or this node is cut off). It accompanies
	// ErrNotLeader when no leader can be named.
	ErrNoLeader = errors.New("no raft leader known")

	// ErrLeadershipLost reports that this node lost leadership after the
	// entry was appended to its log but before it was known to be
	// committed. The entry may or may not be committed later.
	ErrLeadershipLost = errors.New("raft leadership lost before the entry was known to be committed")

	// ErrShutdown reports that the node has been shut down, by Shutdown or
	// by raft itself after a leader removed itself from the configuration.
	ErrShutdown = errors.New("raft node is shut down")

	// ErrExistingState reports an attempt to bootstrap a node that already
	// holds raft state.
	ErrExistingState = errors.New("raft state already exists")
)

// NotLeaderError is returned when an operation that needs the leader is
// attempted on another node. It matches ErrNotLeader with errors.Is, and
// also ErrNoLeader when LeaderID and LeaderAddr are empty. Use errors.As to
// find where to forward the request.
type NotLeaderError struct {
	LeaderID   string
	LeaderAddr string
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" && e.LeaderAddr == "" {
		return "raftstore: not the leader and no leader is known"
	}
	return fmt.Sprintf("raftstore: not the leader (leader is %q at %s)", e.LeaderID, e.LeaderAddr)
}

// Is makes NotLeaderError match the ErrNotLeader and ErrNoLeader sentinels.
func (e *NotLeaderError) Is(target error) bool {
	switch target {
	case ErrNotLeader:
		return true
	case ErrNoLeader:
		return e.LeaderID == "" && e.LeaderAddr == ""
	}
	return false
}

// CommandError carries an error returned by StateMachine.ApplyCommand back
// to the proposer. The command was committed to the log at Index but, as the
// StateMachine contract requires, changed nothing. Error returns the state
// machine's message unchanged and Unwrap exposes the original error, so
// errors.Is and errors.As see through it.
type CommandError struct {
	Index uint64
	Err   error
}

func (e *CommandError) Error() string { return e.Err.Error() }

// Unwrap returns the state machine's error.
func (e *CommandError) Unwrap() error { return e.Err }

// notLeaderError builds a NotLeaderError naming the leader this node
// currently knows of. If raft still names this node (it is stepping down or
// handing leadership over), no leader is reported, so callers forwarding
// requests never loop back here.
func (n *Node) notLeaderError() error {
	addr, id := n.raft.LeaderWithID()
	if string(id) == n.cfg.NodeID {
		return &NotLeaderError{}
	}
	return &NotLeaderError{LeaderID: string(id), LeaderAddr: string(addr)}
}

// translate maps an error returned by a raft future onto this package's
// sentinels. op names the operation for the message.
func (n *Node) translate(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return n.notLeaderError()
	case errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("raftstore: %s: %w", op, ErrLeadershipLost)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("raftstore: %s: %w", op, ErrShutdown)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		// raft only times out enqueueing when we passed it the context's
		// deadline, so report it the way the context would.
		return fmt.Errorf("raftstore: %s: %w (%w)", op, context.DeadlineExceeded, err)
	default:
		return fmt.Errorf("raftstore: %s: %w", op, err)
	}
}
