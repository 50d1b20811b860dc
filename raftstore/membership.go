package raftstore

import (
	"context"
	"errors"

	"github.com/hashicorp/raft"
)

// Server is one member of the cluster configuration.
type Server struct {
	ID    string
	Addr  string
	Voter bool
}

// AddVoter adds (or re-addresses) a voting member and waits until the new
// configuration is committed. It must be called on the leader. The new
// member should already be running with empty state and reachable: until it
// answers, a configuration that needs its vote cannot commit and the call
// waits until ctx ends.
func (n *Node) AddVoter(ctx context.Context, id, addr string) error {
	if id == "" || addr == "" {
		return errors.New("raftstore: add voter: id and addr are required")
	}
	timeout, err := n.precheck(ctx, "add voter", true)
	if err != nil {
		return err
	}
	_, err = n.await(ctx, "add voter "+id, func() raft.Future {
		return n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeout)
	})
	if err == nil {
		n.logger.Info("raftstore: added voter", "id", id, "addr", addr)
	}
	return err
}

// RemoveServer removes a member and waits until the new configuration is
// committed. It must be called on the leader. Removing an unknown ID
// succeeds without effect. The removed member is not told: its raft keeps
// running, cut off from the cluster, until its owner shuts it down. When the
// leader removes itself it steps down and stops its raft instance once the
// change commits (State becomes "Shutdown"), so prefer TransferLeadership
// first.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	if id == "" {
		return errors.New("raftstore: remove server: id is required")
	}
	timeout, err := n.precheck(ctx, "remove server", true)
	if err != nil {
		return err
	}
	_, err = n.await(ctx, "remove server "+id, func() raft.Future {
		return n.raft.RemoveServer(raft.ServerID(id), 0, timeout)
	})
	if err == nil {
		n.logger.Info("raftstore: removed server", "id", id)
	}
	return err
}

// TransferLeadership hands leadership to the most up-to-date voter and
// waits until this node has stepped down. It must be called on the leader
// and needs at least one other voter.
func (n *Node) TransferLeadership(ctx context.Context) error {
	if _, err := n.precheck(ctx, "transfer leadership", true); err != nil {
		return err
	}
	_, err := n.await(ctx, "transfer leadership", n.raft.LeadershipTransfer)
	if err == nil {
		n.logger.Info("raftstore: transferred leadership")
	}
	return err
}

// Servers returns the latest cluster configuration known to this node
// (possibly not yet committed).
func (n *Node) Servers() ([]Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, n.translate("get configuration", err)
	}
	conf := f.Configuration()
	out := make([]Server, 0, len(conf.Servers))
	for _, s := range conf.Servers {
		out = append(out, Server{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}
