// Package dispatcher is the managers' side of the node sessions: it takes
// every node's heartbeats, tells nodes how often to beat, which role and
// managers they should know and the network configuration their overlay
// data plane needs (workers hold no store), and, on the leader, decides
// node liveness — Ready while heartbeats arrive, Down once the TTL (3
// periods) passes without one, or sooner when gossip declares the node
// dead.
//
// It must not import raft, worker/, node/ or cmd/.
package dispatcher

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/manager/allocator"
	"github.com/shoal-project/shoal/manager/caller"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// DefaultHeartbeatPeriod is used when the cluster sets none.
const DefaultHeartbeatPeriod = time.Second

// TTLPeriods is how many heartbeat periods a node may miss before it is Down.
const TTLPeriods = 3

// Dispatcher implements shoalpb.DispatcherServer and the liveness tracker.
type Dispatcher struct {
	shoalpb.UnimplementedDispatcherServer

	Store    *store.Store
	Proposer store.Proposer
	Log      *slog.Logger
	Now      func() time.Time
	// Managers lists the current managers for heartbeat responses.
	Managers func() []*shoalpb.Peer
	// LeaderID returns the current leader's node ID.
	LeaderID func() string
	// Ready, when set, says whether this manager's store may be served to
	// nodes (nil) or not yet (why): a manager catching up after a restart
	// would otherwise hand out stale assignments.
	Ready func() error

	mu        sync.Mutex
	lastBeat  map[string]time.Time
	deadlines map[string]time.Time

	countMu   sync.Mutex
	nodes     int       // nodes in the cluster, as last counted
	countedAt time.Time // when

	batcher statusBatcher
}

// MaxHeartbeatRate bounds the heartbeats per second a cluster's nodes send
// in all: a cluster of more nodes beats less often than its configured
// period says, one node in MaxHeartbeatRate per second (so 1,000 nodes beat
// every 5 s, Docker Swarm's default). A leader under load then is not
// flooded, and a node is not declared Down because the leader was slow to
// take its heartbeats. Nodes that really die are still found at once
// by gossip's failure detection.
const MaxHeartbeatRate = 200

// effectivePeriod is the heartbeat period of a cluster of nodes whose spec
// says configured (DefaultHeartbeatPeriod when zero).
func effectivePeriod(configured time.Duration, nodes int) time.Duration {
	if configured <= 0 {
		configured = DefaultHeartbeatPeriod
	}
	return max(configured, time.Duration(nodes)*time.Second/MaxHeartbeatRate)
}

// period returns the heartbeat period now.
func (d *Dispatcher) period() time.Duration {
	var p time.Duration
	d.Store.View(func(tx store.ReadTx) { p = d.periodLocked(tx) })
	return p
}

// Heartbeat records that the calling node is alive.
func (d *Dispatcher) Heartbeat(ctx context.Context, req *shoalpb.HeartbeatRequest) (*shoalpb.HeartbeatResponse, error) {
	who := caller.From(ctx)
	if who.Role == caller.Anonymous {
		return nil, status.Error(codes.Unauthenticated, "heartbeats need a node certificate")
	}
	if err := d.ready(); err != nil {
		return nil, err
	}
	var (
		n  *shoalpb.Node
		ov *shoalpb.OverlayConfig
	)
	d.Store.View(func(tx store.ReadTx) {
		n = tx.Node(who.NodeID)
		if n != nil {
			ov = overlayConfig(tx, n)
		}
	})
	if n == nil {
		return nil, status.Errorf(codes.NotFound, "node %s is not part of the swarm; it may have been removed", who.NodeID)
	}
	period := d.period()
	now := d.Now()
	d.mu.Lock()
	if d.lastBeat == nil {
		d.lastBeat, d.deadlines = map[string]time.Time{}, map[string]time.Time{}
	}
	d.lastBeat[n.Id] = now
	d.deadlines[n.Id] = now.Add(TTLPeriods * period)
	d.mu.Unlock()

	if patch := readyPatch(n, req, now); patch != nil {
		_, err := d.Proposer.Propose(ctx, &shoalpb.Command{Actions: []*shoalpb.StoreAction{{Target: &shoalpb.StoreAction_NodeStatusPatch{NodeStatusPatch: patch}}}})
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "record node status: %v", err)
		}
	}
	return &shoalpb.HeartbeatResponse{
		PeriodNs:    int64(period),
		DesiredRole: n.GetSpec().GetDesiredRole(),
		Managers:    d.Managers(),
		LeaderId:    d.LeaderID(),
		Overlay:     ov,
	}, nil
}

// overlayConfig is what node n's overlay data plane needs: the cluster's
// data-path port, the ingress network with n's address on it (none until
// the allocator has given it one), and which networks are internal. Nil
// before the cluster object exists.
func overlayConfig(tx store.ReadTx, n *shoalpb.Node) *shoalpb.OverlayConfig {
	c := tx.Cluster()
	if c == nil {
		return nil
	}
	out := &shoalpb.OverlayConfig{DataPathPort: allocator.DataPathPort(c)}
	for _, net := range tx.Networks() {
		if net.GetSpec().GetInternal() {
			out.InternalNetworks = append(out.InternalNetworks, net.GetId())
		}
		if !net.GetSpec().GetIngress() || out.Ingress != nil {
			continue
		}
		out.Ingress = &shoalpb.NetworkAttachment{
			NetworkId:   net.GetId(),
			Vni:         net.GetVni(),
			Subnet:      net.GetIpam().GetSubnet(),
			Gateway:     net.GetIpam().GetGateway(),
			NetworkName: net.GetSpec().GetName(),
		}
		for _, a := range n.GetAttachments() {
			if a.GetNetworkId() == net.GetId() && a.GetAddr() != "" {
				out.Ingress.Addresses = []string{a.GetAddr()}
			}
		}
	}
	return out
}

// ready returns an Unavailable error while this manager must not serve
// nodes; they then turn to another manager.
func (d *Dispatcher) ready() error {
	if d.Ready == nil {
		return nil
	}
	if err := d.Ready(); err != nil {
		return status.Errorf(codes.Unavailable, "this manager is catching up with the cluster: %v", err)
	}
	return nil
}

// readyPatch returns the write a heartbeat needs, or nil when the node's
// record already says all the heartbeat says.
func readyPatch(n *shoalpb.Node, req *shoalpb.HeartbeatRequest, now time.Time) *shoalpb.NodeStatusPatch {
	p := &shoalpb.NodeStatusPatch{NodeId: n.Id, UpdatedAt: now.UnixNano()}
	changed := false
	if n.GetStatus().GetState() != shoalpb.NodeState_NODE_STATE_READY {
		p.Status = &shoalpb.NodeStatus{State: shoalpb.NodeState_NODE_STATE_READY}
		changed = true
	}
	if req.Description != nil && !proto.Equal(req.Description, n.Description) {
		p.Description = req.Description
		changed = true
	}
	if req.AdvertiseAddr != "" && req.AdvertiseAddr != n.AdvertiseAddr {
		p.AdvertiseAddr = req.AdvertiseAddr
		changed = true
	}
	if req.GossipAddr != "" && req.GossipAddr != n.GossipAddr {
		p.GossipAddr = req.GossipAddr
		changed = true
	}
	if !changed {
		return nil
	}
	return p
}

// Run tracks liveness while this manager leads. At start every node gets a
// full TTL of grace, so a leader change does not mark the fleet Down.
// gossipDead delivers node IDs gossip has declared dead.
func (d *Dispatcher) Run(ctx context.Context, gossipDead <-chan string) {
	period := d.period()
	now := d.Now()
	d.mu.Lock()
	d.lastBeat, d.deadlines = map[string]time.Time{}, map[string]time.Time{}
	d.Store.View(func(tx store.ReadTx) {
		for _, n := range tx.Nodes() {
			d.deadlines[n.Id] = now.Add(TTLPeriods * period)
		}
	})
	d.mu.Unlock()

	// Notices queued while this manager followed are stale: a node that
	// died then may be back. Its TTL decides instead.
	for drained := false; !drained; {
		select {
		case <-gossipDead:
		default:
			drained = true
		}
	}
	batchDone := make(chan struct{})
	go func() { defer close(batchDone); d.batcher.run(ctx, d.Proposer) }()
	defer func() { <-batchDone }()

	t := time.NewTicker(period / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-gossipDead:
			d.mu.Lock()
			// A node that beat within the last second is alive whatever
			// gossip says (in a large cluster, beats are further apart).
			recent := d.Now().Sub(d.lastBeat[id]) < min(period, DefaultHeartbeatPeriod)
			d.mu.Unlock()
			if !recent {
				d.markDown(ctx, id, "node is unreachable (gossip failure detection)")
			}
		case <-t.C:
			period = d.period()
			d.expire(ctx)
		}
	}
}

func (d *Dispatcher) expire(ctx context.Context) {
	now := d.Now()
	var due []string
	d.Store.View(func(tx store.ReadTx) {
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, n := range tx.Nodes() {
			dl, ok := d.deadlines[n.Id]
			if !ok {
				// A node that joined after this leader started.
				d.deadlines[n.Id] = now.Add(TTLPeriods * d.periodLocked(tx))
				continue
			}
			if now.After(dl) && n.GetStatus().GetState() != shoalpb.NodeState_NODE_STATE_DOWN {
				due = append(due, n.Id)
			}
		}
	})
	for _, id := range due {
		d.markDown(ctx, id, "heartbeat failure")
	}
}

// periodLocked returns the heartbeat period as tx says. The node count it
// needs is recounted at most once a second.
func (d *Dispatcher) periodLocked(tx store.ReadTx) time.Duration {
	configured := time.Duration(tx.Cluster().GetSpec().GetDispatcher().GetHeartbeatPeriodNs())
	now := d.Now()
	d.countMu.Lock()
	if now.Sub(d.countedAt) >= time.Second || now.Before(d.countedAt) {
		d.nodes, d.countedAt = len(tx.Nodes()), now
	}
	nodes := d.nodes
	d.countMu.Unlock()
	return effectivePeriod(configured, nodes)
}

func (d *Dispatcher) markDown(ctx context.Context, id, msg string) {
	d.mu.Lock()
	dl, tracked := d.deadlines[id]
	last, beat := d.lastBeat[id]
	d.mu.Unlock()
	if tracked && msg == "heartbeat failure" && !d.Now().After(dl) {
		return // a heartbeat arrived since the expiry was noticed
	}
	var n *shoalpb.Node
	d.Store.View(func(tx store.ReadTx) { n = tx.Node(id) })
	if n == nil || n.GetStatus().GetState() == shoalpb.NodeState_NODE_STATE_DOWN {
		return
	}
	patch := &shoalpb.NodeStatusPatch{
		NodeId:      id,
		Status:      &shoalpb.NodeStatus{State: shoalpb.NodeState_NODE_STATE_DOWN, Message: msg},
		CheckState:  true,
		OnlyIfState: n.GetStatus().GetState(),
		UpdatedAt:   d.Now().UnixNano(),
	}
	if _, err := d.Proposer.Propose(ctx, &shoalpb.Command{Actions: []*shoalpb.StoreAction{{Target: &shoalpb.StoreAction_NodeStatusPatch{NodeStatusPatch: patch}}}}); err != nil {
		d.Log.Warn("mark node down failed", "node", id, "err", err)
		return
	}
	if beat {
		d.Log.Info("node is down", "node", id, "reason", msg, "last_heartbeat", last.Format(time.RFC3339Nano))
	} else {
		d.Log.Info("node is down", "node", id, "reason", msg, "last_heartbeat", "none since this manager leads")
	}
}
