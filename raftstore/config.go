package raftstore

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"
)

// Defaults applied by Open when the corresponding Config field is zero.
const (
	// DefaultRetainSnapshots is how many snapshots the file snapshot store
	// keeps.
	DefaultRetainSnapshots = 2

	// NetworkMaxPool is how many idle connections per peer
	// NewNetworkTransport keeps.
	NetworkMaxPool = 3

	// NetworkTimeout is the I/O deadline NewNetworkTransport applies to
	// RPCs (scaled up for large snapshots by raft).
	NetworkTimeout = 10 * time.Second
)

// Config describes one raft node.
type Config struct {
	// NodeID is this node's raft ServerID. It must be stable for the life
	// of the node's data directory.
	NodeID string

	// Addr is the raft address other members dial to reach this node
	// (ServerAddress). If empty, Transport.LocalAddr() is used.
	Addr string

	// Dir holds raft.db and snapshots/. Required unless InMemory is set.
	Dir string

	// Transport carries raft RPCs. Required for Open. Production passes the
	// result of NewNetworkTransport; tests pass raft in-memory transports.
	// Once Open succeeds the node owns the transport and closes it on
	// Shutdown; if Open fails the caller still owns it.
	Transport raft.Transport

	// Logger receives raft's logs and this package's own. Nil discards.
	Logger *slog.Logger

	// SnapshotThreshold is how many log entries since the last snapshot
	// trigger a new one. 0 means the hashicorp default (8192).
	SnapshotThreshold uint64

	// TrailingLogs is how many log entries are kept after a snapshot so
	// slightly lagging followers can catch up without a snapshot. 0 means
	// the hashicorp default (10240).
	TrailingLogs uint64

	// SnapshotInterval is how often raft checks whether SnapshotThreshold
	// has been crossed. 0 means the hashicorp default (120s).
	SnapshotInterval time.Duration

	// RetainSnapshots is how many snapshots are kept on disk. 0 means
	// DefaultRetainSnapshots.
	RetainSnapshots int

	// Timing. Zero values mean the hashicorp/raft defaults: HeartbeatTimeout
	// 1s, ElectionTimeout 1s, LeaderLeaseTimeout 500ms, CommitTimeout 50ms.
	// A zero ElectionTimeout is raised to HeartbeatTimeout and a zero
	// LeaderLeaseTimeout is lowered to HeartbeatTimeout when needed to keep
	// the combination valid; explicit values are validated as given.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration

	// InMemory keeps the log, stable store and snapshots in memory instead
	// of under Dir. Only for tests: nothing survives Shutdown.
	InMemory bool
}

// normalized returns a copy of c with defaults filled in, or an error
// describing what is missing.
func (c Config) normalized() (Config, error) {
	if c.NodeID == "" {
		return c, errors.New("raftstore: config: NodeID is required")
	}
	if c.Transport == nil {
		return c, errors.New("raftstore: config: Transport is required")
	}
	if c.Addr == "" {
		c.Addr = string(c.Transport.LocalAddr())
	}
	if c.Addr == "" {
		return c, errors.New("raftstore: config: Addr is required (transport has no local address)")
	}
	if !c.InMemory && c.Dir == "" {
		return c, errors.New("raftstore: config: Dir is required")
	}
	if c.RetainSnapshots < 0 {
		return c, fmt.Errorf("raftstore: config: RetainSnapshots must not be negative (got %d)", c.RetainSnapshots)
	}
	if c.RetainSnapshots == 0 {
		c.RetainSnapshots = DefaultRetainSnapshots
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// raftConfig builds the hashicorp configuration for c (already normalized).
func (c Config) raftConfig() (*raft.Config, error) {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.NodeID)
	rc.Logger = newHCLogger(c.Logger, "raft")

	if c.HeartbeatTimeout > 0 {
		rc.HeartbeatTimeout = c.HeartbeatTimeout
	}
	if c.ElectionTimeout > 0 {
		rc.ElectionTimeout = c.ElectionTimeout
	} else if rc.ElectionTimeout < rc.HeartbeatTimeout {
		rc.ElectionTimeout = rc.HeartbeatTimeout
	}
	if c.LeaderLeaseTimeout > 0 {
		rc.LeaderLeaseTimeout = c.LeaderLeaseTimeout
	} else if rc.LeaderLeaseTimeout > rc.HeartbeatTimeout {
		rc.LeaderLeaseTimeout = rc.HeartbeatTimeout
	}
	if c.CommitTimeout > 0 {
		rc.CommitTimeout = c.CommitTimeout
	}
	if c.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = c.SnapshotThreshold
	}
	if c.TrailingLogs > 0 {
		rc.TrailingLogs = c.TrailingLogs
	}
	if c.SnapshotInterval > 0 {
		rc.SnapshotInterval = c.SnapshotInterval
	}
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("raftstore: config: %w", err)
	}
	return rc, nil
}

// NewNetworkTransport builds the production raft transport over stream
// (typically a mutually authenticated TLS stream layer), keeping up to
// NetworkMaxPool idle connections per peer and applying NetworkTimeout as
// the I/O deadline. raft's transport logs go to logger.
func NewNetworkTransport(stream raft.StreamLayer, logger *slog.Logger) *raft.NetworkTransport {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: NetworkMaxPool,
		Timeout: NetworkTimeout,
		Logger:  newHCLogger(logger, "raft-net"),
	})
}
