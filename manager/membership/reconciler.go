package membership

import (
	"context"
	"log/slog"
	"time"

	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Reconciler runs on the leader and turns the desired manager set into the
// Raft voter set.
type Reconciler struct {
	Deps
	Log *slog.Logger
	// Interval is how often the voter set is checked besides store changes.
	Interval time.Duration
}

// Run reconciles until ctx ends.
func (r *Reconciler) Run(ctx context.Context) {
	events, cancel := r.Store.Watch()
	defer func() { cancel() }()
	interval := r.Interval
	if interval == 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	r.reconcile(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events, cancel = r.Store.Watch()
				break // re-read everything below
			}
			// Only node changes (and restores) can change the wanted
			// managers; task churn must not cost a pass each.
			if _, isNode := ev.Object.(*shoalpb.Node); !isNode && ev.Kind != store.EventRestore {
				continue
			}
		case <-t.C:
		}
		r.reconcile(ctx)
	}
}

func (r *Reconciler) reconcile(ctx context.Context) {
	if !r.Raft.IsLeader() {
		return
	}
	servers, err := r.Raft.Servers()
	if err != nil {
		return
	}
	leaderID, _ := r.Raft.Leader()
	now := r.Now().UnixNano()
	for _, srv := range servers {
		if !srv.Voter {
			continue
		}
		var n *shoalpb.Node
		r.Store.View(func(tx store.ReadTx) { n = tx.Node(srv.ID) })
		if n != nil && n.GetSpec().GetDesiredRole() == shoalpb.NodeRole_NODE_ROLE_MANAGER {
			continue
		}
		if srv.ID == r.NodeID {
			// The leader is being demoted: hand leadership to another
			// manager, which then removes this one.
			if ok, _, remaining := reachableMajorityWithout(servers, srv.ID, "", r.Gossip); ok && remaining > 0 {
				r.Log.Info("transferring leadership before demotion")
				tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				if err := r.Raft.TransferLeadership(tctx); err != nil {
					r.Log.Warn("leadership transfer failed", "err", err)
				}
				cancel()
			}
			return
		}
		if ok, reachable, remaining := reachableMajorityWithout(servers, srv.ID, leaderID, r.Gossip); !ok {
			r.Log.Warn("not removing manager: the rest would lack quorum", "node", srv.ID, "reachable", reachable, "remaining", remaining)
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := r.Raft.RemoveServer(rctx, srv.ID)
		cancel()
		if err != nil {
			r.Log.Warn("remove raft voter failed", "node", srv.ID, "err", err)
			continue
		}
		r.Log.Info("removed raft voter", "node", srv.ID)
		if n != nil {
			r.setRole(ctx, n.Id, shoalpb.NodeRole_NODE_ROLE_WORKER, now)
		}
		return // the configuration changed; re-read it on the next pass
	}
	// Nodes recorded as managers that are not voters (demoted while
	// unreachable, or dropped by a forced new cluster) become workers.
	var stale []string
	r.Store.View(func(tx store.ReadTx) {
		for _, n := range tx.Nodes() {
			if n.Role == shoalpb.NodeRole_NODE_ROLE_MANAGER && n.GetSpec().GetDesiredRole() == shoalpb.NodeRole_NODE_ROLE_WORKER && !isVoter(servers, n.Id) {
				stale = append(stale, n.Id)
			}
		}
	})
	for _, id := range stale {
		r.setRole(ctx, id, shoalpb.NodeRole_NODE_ROLE_WORKER, now)
	}
}

func (r *Reconciler) setRole(ctx context.Context, id string, role shoalpb.NodeRole, now int64) {
	patch := &shoalpb.NodeStatusPatch{NodeId: id, SetRole: true, Role: role, UpdatedAt: now}
	if _, err := r.Proposer.Propose(ctx, &shoalpb.Command{Actions: []*shoalpb.StoreAction{{Target: &shoalpb.StoreAction_NodeStatusPatch{NodeStatusPatch: patch}}}}); err != nil {
		r.Log.Warn("record node role failed", "node", id, "err", err)
	}
}
