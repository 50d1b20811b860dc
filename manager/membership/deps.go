package membership

import (
	"context"
	"time"

	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/raftstore"
)

// Raft is the consensus layer as membership uses it.
type Raft interface {
	IsLeader() bool
	Leader() (id, addr string)
	Servers() ([]raftstore.Server, error)
	AddVoter(ctx context.Context, id, addr string) error
	RemoveServer(ctx context.Context, id string) error
	TransferLeadership(ctx context.Context) error
}

// Gossip tells whether gossip currently sees a node alive.
type Gossip interface {
	Alive(nodeID string) bool
}

// Deps are what the membership components need.
type Deps struct {
	NodeID   string // this manager's node ID
	Store    *store.Store
	Proposer store.Proposer
	Raft     Raft
	Gossip   Gossip
	Now      func() time.Time
	// NewNodeID makes a fresh random node ID.
	NewNodeID func() string
}

// Managers lists the current Raft voters as peers, with the gossip
// addresses the store knows for them.
func Managers(st *store.Store, r Raft) []*shoalpb.Peer {
	servers, err := r.Servers()
	if err != nil {
		return nil
	}
	var out []*shoalpb.Peer
	st.View(func(tx store.ReadTx) {
		for _, s := range servers {
			if !s.Voter {
				continue
			}
			p := &shoalpb.Peer{NodeId: s.ID, Addr: s.Addr}
			if n := tx.Node(s.ID); n != nil {
				p.GossipAddr = n.GossipAddr
			}
			out = append(out, p)
		}
	})
	return out
}

// reachableMajorityWithout reports whether the voters other than id, that
// are reachable now, are a majority of the voters other than id.
func reachableMajorityWithout(servers []raftstore.Server, id, leaderID string, g Gossip) (ok bool, reachable, remaining int) {
	for _, s := range servers {
		if !s.Voter || s.ID == id {
			continue
		}
		remaining++
		if s.ID == leaderID || g.Alive(s.ID) {
			reachable++
		}
	}
	return reachable >= remaining/2+1, reachable, remaining
}

func isVoter(servers []raftstore.Server, id string) bool {
	for _, s := range servers {
		if s.ID == id && s.Voter {
			return true
		}
	}
	return false
}
