package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Role names in the state file.
const (
	roleManager = "manager"
	roleWorker  = "worker"
)

// State is what a node remembers of its cluster membership.
type State struct {
	NodeID        string  `json:"node_id"`
	ClusterID     string  `json:"cluster_id"`
	Role          string  `json:"role"`
	AdvertiseAddr string  `json:"advertise_addr"` // host:port of the cluster API
	ListenAddr    string  `json:"listen_addr"`
	GossipAddr    string  `json:"gossip_addr"` // host:port
	GossipKey     []byte  `json:"gossip_key"`
	Managers      []*Peer `json:"managers"`
	// HeartbeatPeriodNs is the last period the managers asked for.
	HeartbeatPeriodNs int64 `json:"heartbeat_period_ns"`
}

// Peer is a manager the node knows of.
type Peer struct {
	NodeID     string `json:"node_id"`
	Addr       string `json:"addr"`
	GossipAddr string `json:"gossip_addr"`
}

func peersFromProto(ps []*shoalpb.Peer) []*Peer {
	out := make([]*Peer, 0, len(ps))
	for _, p := range ps {
		out = append(out, &Peer{NodeID: p.NodeId, Addr: p.Addr, GossipAddr: p.GossipAddr})
	}
	return out
}

func peersToProto(ps []*Peer) []*shoalpb.Peer {
	out := make([]*shoalpb.Peer, 0, len(ps))
	for _, p := range ps {
		out = append(out, &shoalpb.Peer{NodeId: p.NodeID, Addr: p.Addr, GossipAddr: p.GossipAddr})
	}
	return out
}

// layout names the files of a data directory.
type layout struct{ root string }

func (l layout) swarmDir() string  { return filepath.Join(l.root, "swarm") }
func (l layout) stateFile() string { return filepath.Join(l.swarmDir(), "state.json") }
func (l layout) certDir() string   { return filepath.Join(l.swarmDir(), "certificates") }
func (l layout) raftDir() string   { return filepath.Join(l.swarmDir(), "raft") }

// loadState reads the state file; a missing file means "not in a swarm".
// A file that exists but cannot be read or parsed is an error: the daemon
// refuses to start rather than forget its membership.
func loadState(l layout) (*State, error) {
	b, err := os.ReadFile(l.stateFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read swarm state %s: %w", l.stateFile(), err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("swarm state %s is corrupt (%v); refusing to start. Restore it from a backup, or move %s away to leave the swarm", l.stateFile(), err, l.swarmDir())
	}
	if st.NodeID == "" || st.ClusterID == "" || (st.Role != roleManager && st.Role != roleWorker) {
		return nil, fmt.Errorf("swarm state %s is incomplete (node %q, cluster %q, role %q); refusing to start", l.stateFile(), st.NodeID, st.ClusterID, st.Role)
	}
	return &st, nil
}

// saveState writes the state file atomically.
func saveState(l layout, st *State) error {
	if err := os.MkdirAll(l.swarmDir(), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", l.swarmDir(), err)
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := l.stateFile() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, l.stateFile()); err != nil {
		return fmt.Errorf("replace %s: %w", l.stateFile(), err)
	}
	if d, err := os.Open(l.swarmDir()); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
