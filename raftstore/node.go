package raftstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Node is one member of a raft cluster replicating a StateMachine. All
// methods are safe for concurrent use.
type Node struct {
	cfg    Config
	logger *slog.Logger
	raft   *raft.Raft
	fsm    *fsm
	store  *storage

	// ctx is cancelled when Shutdown starts; every wait selects on it.
	ctx    context.Context
	cancel context.CancelFunc

	// stopped is closed when raft is seen in the Shutdown state, whether
	// through Shutdown or because raft stopped itself (a leader that
	// removed itself from the configuration).
	stopped     chan struct{}
	stoppedOnce sync.Once

	// retryInterval paces retries of a failed leadership barrier.
	retryInterval time.Duration

	observer     *raft.Observer
	observations chan raft.Observation
	observerDone chan struct{}
	leadership   leadershipHub

	shutdownOnce sync.Once
	shutdownErr  error

	// What CaughtUp needs: the log's last index and the time at start,
	// and whether the state machine has caught up since.
	startIndex uint64
	started    time.Time
	caughtUp   atomic.Bool
}

// catchUpGiveUp bounds how long CaughtUp waits for the entries of the
// node's own log from before a restart to be committed: a tail never
// committed (written by a leader that lost its term) may be replaced by
// fewer entries.
const catchUpGiveUp = 30 * time.Second

// Open starts a raft node on the state in cfg.Dir (or in memory), restoring
// sm from the latest snapshot and replaying the log as entries are known to
// be committed. A node with no state waits to be bootstrapped
// (BootstrapSingle) or added to an existing cluster by its leader
// (AddVoter). Open refuses to start on a raft.db that cannot be opened or
// read and reports the file in the error; it never deletes data.
func Open(cfg Config, sm StateMachine) (*Node, error) {
	if sm == nil {
		return nil, errors.New("raftstore: open: state machine is required")
	}
	cfg, err := cfg.normalized()
	if err != nil {
		return nil, err
	}
	rc, err := cfg.raftConfig()
	if err != nil {
		return nil, err
	}
	st, err := openStorage(cfg)
	if err != nil {
		return nil, err
	}
	f := newFSM(sm, cfg.Logger)
	r, err := raft.NewRaft(rc, f, st.logs, st.stable, st.snaps, cfg.Transport)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("raftstore: start raft on %s: %w", st.where, err), st.close())
	}

	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		cfg:          cfg,
		logger:       cfg.Logger,
		raft:         r,
		fsm:          f,
		store:        st,
		ctx:          ctx,
		cancel:       cancel,
		stopped:      make(chan struct{}),
		observations: make(chan raft.Observation, 64),
		observerDone: make(chan struct{}),

		retryInterval: rc.HeartbeatTimeout,

		startIndex: r.LastIndex(),
		started:    time.Now(),
	}
	n.leadership.init(LeaderChange{State: r.State().String()})
	n.observer = raft.NewObserver(n.observations, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.RaftState, raft.LeaderObservation:
			return true
		}
		return false
	})
	r.RegisterObserver(n.observer)
	go n.observeLeadership()

	n.logger.Info("raftstore: node started", "node_id", cfg.NodeID, "addr", cfg.Addr,
		"storage", st.where, "applied_index", f.applied.Load())
	return n, nil
}

// BootstrapSingle starts a new cluster whose only member is this node. It
// fails with ErrExistingState if the node already has raft state (it was
// bootstrapped before, joined a cluster, or was recovered).
func (n *Node) BootstrapSingle() error {
	return n.bootstrap([]Server{{ID: n.cfg.NodeID, Addr: n.cfg.Addr, Voter: true}})
}

// bootstrap writes the initial configuration. Every member listed must be
// bootstrapped with the identical list.
func (n *Node) bootstrap(servers []Server) error {
	if n.ctx.Err() != nil {
		return fmt.Errorf("raftstore: bootstrap: %w", ErrShutdown)
	}
	var conf raft.Configuration
	for _, s := range servers {
		suffrage := raft.Nonvoter
		if s.Voter {
			suffrage = raft.Voter
		}
		conf.Servers = append(conf.Servers, raft.Server{
			Suffrage: suffrage,
			ID:       raft.ServerID(s.ID),
			Address:  raft.ServerAddress(s.Addr),
		})
	}
	// raft only serves bootstrap requests while it is an idle follower, so
	// refuse up front when there is state (a node with state may already be
	// leader and would never answer).
	has, err := raft.HasExistingState(n.store.logs, n.store.stable, n.store.snaps)
	if err != nil {
		return fmt.Errorf("raftstore: bootstrap: inspect %s: %w", n.store.where, err)
	}
	if has {
		return fmt.Errorf("raftstore: bootstrap on %s: %w", n.store.where, ErrExistingState)
	}
	_, err = n.await(n.ctx, "bootstrap", func() raft.Future { return n.raft.BootstrapCluster(conf) })
	switch {
	case err == nil:
		n.logger.Info("raftstore: bootstrapped cluster", "servers", len(servers))
		return nil
	case errors.Is(err, raft.ErrCantBootstrap):
		return fmt.Errorf("raftstore: bootstrap on %s: %w", n.store.where, ErrExistingState)
	default:
		return err
	}
}

// Shutdown stops raft, waits for its goroutines, closes the transport and
// the on-disk store. Leadership watchers receive a final "Shutdown" state
// and their channels are closed. It is idempotent; later calls return the
// first call's result.
func (n *Node) Shutdown() error {
	n.shutdownOnce.Do(func() {
		n.cancel()
		raftErr := n.raft.Shutdown().Error()
		n.raft.DeregisterObserver(n.observer)
		<-n.observerDone
		n.markStopped()
		n.leadership.close(LeaderChange{State: raft.Shutdown.String()})
		if raftErr != nil {
			raftErr = fmt.Errorf("raftstore: shut down raft: %w", raftErr)
		}
		n.shutdownErr = errors.Join(raftErr, n.store.close())
		n.logger.Info("raftstore: node stopped", "node_id", n.cfg.NodeID)
	})
	return n.shutdownErr
}

func (n *Node) markStopped() {
	n.stoppedOnce.Do(func() { close(n.stopped) })
}

// ID returns this node's raft ServerID.
func (n *Node) ID() string { return n.cfg.NodeID }

// Addr returns this node's advertised raft address.
func (n *Node) Addr() string { return n.cfg.Addr }

// IsLeader reports whether raft currently considers this node the leader.
// It turns true as soon as the election is won; use WatchLeader to learn
// when the state machine has caught up with the new term.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the ID and address of the leader as this node knows it,
// or empty strings if it knows of none.
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// State returns raft's state: "Leader", "Follower", "Candidate" or
// "Shutdown".
func (n *Node) State() string { return n.raft.State().String() }

// LastContact returns when this node last heard from a leader (zero if
// never). On the leader itself it is not meaningful.
func (n *Node) LastContact() time.Time { return n.raft.LastContact() }

// AppliedIndex returns the index of the last log entry applied to the state
// machine (or restored from a snapshot).
func (n *Node) AppliedIndex() uint64 { return n.fsm.applied.Load() }

// CaughtUp returns nil while this node's state machine may be served as
// the cluster's state: a leader is known, and since the node started its
// state machine has once applied every entry known to be committed,
// including the entries of its own log from before a restart (until then a
// restarted manager holds only its last snapshot). After that, the
// ordinary lag of replication and apply under load is not falling behind:
// it is never refused for it.
func (n *Node) CaughtUp() error {
	if id, _ := n.Leader(); id == "" {
		return errors.New("no leader is known yet")
	}
	if n.caughtUp.Load() {
		return nil
	}
	applied, commit := n.AppliedIndex(), n.raft.CommitIndex()
	if applied < commit {
		return fmt.Errorf("applied index %d is behind the commit index %d", applied, commit)
	}
	if applied < n.startIndex {
		if time.Since(n.started) < catchUpGiveUp {
			return fmt.Errorf("applied index %d is behind the log this node had at start (index %d)", applied, n.startIndex)
		}
		n.logger.Warn("raftstore: the end of the log from before the restart was never committed; serving the committed state", "applied", applied, "log_at_start", n.startIndex)
	}
	n.caughtUp.Store(true)
	return nil
}

// WaitApplied blocks until the state machine has applied index, ctx ends,
// or the node stops. Use it with indexes returned by Apply.
func (n *Node) WaitApplied(ctx context.Context, index uint64) error {
	if err := n.fsm.waitApplied(ctx, index, n.stopped); err != nil {
		return fmt.Errorf("raftstore: wait for index %d: %w", index, err)
	}
	return nil
}

// Stats returns raft's diagnostic counters plus "fsm_applied_index" and
// "node_id".
func (n *Node) Stats() map[string]string {
	s := n.raft.Stats()
	s["fsm_applied_index"] = strconv.FormatUint(n.fsm.applied.Load(), 10)
	s["node_id"] = n.cfg.NodeID
	return s
}

// String describes the node for logs.
func (n *Node) String() string {
	return fmt.Sprintf("raftstore.Node(%s@%s)", n.cfg.NodeID, n.cfg.Addr)
}
