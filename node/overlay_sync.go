package node

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/shoal-project/shoal/overlay"
	"github.com/shoal-project/shoal/overlay/netdb"
)

// The sync loop is the only writer of the data plane's derived state: for
// every network whose endpoints changed (in the endpoint table, or because
// a local task joined or left) it sets the network's peers and service
// VIPs and its DNS table from the table's current view, then the node's
// published ports and, when gossip's membership changed, the data-path
// filter. Reading the whole view at each pass (rather than applying events
// one by one) keeps every consumer equal to the table whatever order
// changes arrive in.

// poke wakes the sync loop.
func (o *overlayNet) poke() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// syncAndWait asks for a pass over the given networks and waits (at most
// flushWait) until one has run.
func (o *overlayNet) syncAndWait(ctx context.Context, nets []string) {
	done := make(chan struct{})
	o.mu.Lock()
	for _, n := range nets {
		o.dirtyNets[n] = true
	}
	o.dirtyPorts = true
	o.waiters = append(o.waiters, done)
	o.mu.Unlock()
	o.poke()
	t := time.NewTimer(flushWait)
	defer t.Stop()
	select {
	case <-done:
	case <-ctx.Done():
	case <-o.ctx.Done():
	case <-t.C:
		o.log.Warn("the first sync of a task's networks is late", "networks", nets)
	}
}

func (o *overlayNet) syncLoop(sub *netdb.Subscription, snap []netdb.Endpoint) {
	defer sub.Close()
	o.mu.Lock()
	for _, e := range snap {
		o.dirtyNets[e.NetworkID] = true
	}
	o.dirtyPorts, o.dirtyPeers = true, true
	o.mu.Unlock()
	dnsIDs := map[string]map[string]bool{} // network -> endpoint IDs in its DNS table
	var wake *time.Timer
	defer func() {
		if wake != nil {
			wake.Stop()
		}
	}()
	for {
		var wakeC <-chan time.Time
		if wake != nil {
			wakeC = wake.C
		}
		select {
		case <-o.ctx.Done():
			return
		case ev, ok := <-sub.Events():
			if !ok {
				return
			}
			o.markDirty(ev)
		case <-o.kick:
		case <-wakeC:
			wake = nil
		}
		// Take every change already queued into the same pass.
	drain:
		for {
			select {
			case ev, ok := <-sub.Events():
				if !ok {
					return
				}
				o.markDirty(ev)
			default:
				break drain
			}
		}
		next := o.flush(dnsIDs)
		if !next.IsZero() {
			if wake != nil {
				wake.Stop()
			}
			wake = time.NewTimer(time.Until(next))
		}
	}
}

func (o *overlayNet) markDirty(ev netdb.Event) {
	o.mu.Lock()
	o.dirtyNets[ev.Endpoint.NetworkID] = true
	if ev.Endpoint.NetworkID == o.cfg.ingressID() {
		o.dirtyPorts = true
	}
	o.mu.Unlock()
}

// syncPass is what one pass of the sync loop programs.
type syncPass struct {
	nets     []string // networks to sync in full
	heldNets []string // networks whose DNS only is synced (restart hold)
	ports    bool     // the published ports
	peers    bool     // the data-path filter
}

// planPass takes the pending changes a pass at now may program, ending a
// restart's hold once it is over. Callers hold mu.
func (o *overlayNet) planPass(now time.Time) syncPass {
	var p syncPass
	holding := o.holding && now.Before(o.holdUntil)
	if o.holding && !holding {
		o.holding = false
		for n := range o.held {
			o.dirtyNets[n] = true
		}
		o.held = map[string]bool{}
		o.dirtyPorts, o.dirtyPeers = true, true
		o.log.Info("endpoint table caught up after the restart; syncing the data plane")
	}
	for n := range o.dirtyNets {
		if holding && o.held[n] {
			// Names may be answered from a partial view; the data plane
			// waits.
			p.heldNets = append(p.heldNets, n)
			continue
		}
		p.nets = append(p.nets, n)
		delete(o.dirtyNets, n)
	}
	slices.Sort(p.nets)
	slices.Sort(p.heldNets)
	// Published ports wait for the hold: until the endpoint table has
	// caught up they are not all known. The data-path filter also waits
	// for gossip to have reached the cluster: before that the member list
	// holds this node only.
	p.ports = o.dirtyPorts && !holding
	p.peers = o.dirtyPeers && !holding && o.gossipReady
	if p.ports {
		o.dirtyPorts = false
	}
	if p.peers {
		o.dirtyPeers = false
	}
	return p
}

// flush runs one pass and returns when the next one is due without a
// change (retries, the end of a restart's hold), or the zero time.
func (o *overlayNet) flush(dnsIDs map[string]map[string]bool) time.Time {
	now := time.Now()
	o.mu.Lock()
	mgr := o.mgr
	pass := o.planPass(now)
	nets, heldNets, ports, peers := pass.nets, pass.heldNets, pass.ports, pass.peers
	waiters := o.waiters
	o.waiters = nil
	ingressID := o.cfg.ingressID()
	// The routing mesh's ports come from the network the node's endpoint
	// is on, which lags behind the configuration while it changes.
	meshID := ""
	if o.ingress != nil {
		meshID = o.ingress.Network.ID
	}
	members := o.members
	o.mu.Unlock()
	defer func() {
		for _, w := range waiters {
			close(w)
		}
	}()
	if mgr == nil {
		return time.Time{}
	}

	ctx := o.ctx
	failed := false
	joined := o.db.Networks()
	for _, n := range heldNets {
		if _, ok := slices.BinarySearch(joined, n); ok {
			o.syncDNS(n, o.db.Endpoints(n), dnsIDs)
		}
	}
	for _, n := range nets {
		if _, ok := slices.BinarySearch(joined, n); !ok {
			// Left: its table and sandbox went with the last task.
			delete(dnsIDs, n)
			continue
		}
		eps := o.db.Endpoints(n)
		o.syncDNS(n, eps, dnsIDs)
		netFailed := false
		if o.log.Enabled(ctx, slog.LevelDebug) {
			o.log.Debug("syncing a network's data plane", "network", n, "endpoints", endpointSummary(eps))
		}
		if err := mgr.SetPeers(ctx, n, peersOf(eps)); err != nil {
			o.log.Warn("program the peers of a network", "network", n, "err", err)
			netFailed = true
		}
		var svcs []overlay.Service
		if n != ingressID {
			// The ingress network carries the routing mesh only: no VIPs.
			svcs = servicesOf(eps)
		}
		if err := mgr.SetServices(ctx, n, svcs); err != nil {
			o.log.Warn("program the service VIPs of a network", "network", n, "err", err)
			netFailed = true
		}
		if netFailed {
			failed = true
			o.mu.Lock()
			o.dirtyNets[n] = true
			o.mu.Unlock()
		}
	}
	if ports {
		if err := mgr.SetPublishedPorts(ctx, o.publishedPorts(meshID)); err != nil {
			o.log.Warn("program the published ports", "err", err)
			failed = true
			o.mu.Lock()
			o.dirtyPorts = true
			o.mu.Unlock()
		}
	}
	if peers {
		addrs := append(members(), o.dataAddr)
		if err := mgr.SetClusterPeers(ctx, addrs); err != nil {
			o.log.Warn("program the data-path filter", "err", err)
			failed = true
			o.mu.Lock()
			o.dirtyPeers = true
			o.mu.Unlock()
		}
	}
	var next time.Time
	if failed {
		next = now.Add(retryDelay)
	}
	o.mu.Lock()
	if o.holding && (next.IsZero() || o.holdUntil.Before(next)) {
		next = o.holdUntil
	}
	o.mu.Unlock()
	return next
}

// syncDNS makes a network's DNS table hold exactly eps.
func (o *overlayNet) syncDNS(network string, eps []netdb.Endpoint, dnsIDs map[string]map[string]bool) {
	o.mu.Lock()
	tbl := o.tables[network]
	o.mu.Unlock()
	if tbl == nil {
		delete(dnsIDs, network)
		return
	}
	have := dnsIDs[network]
	now := map[string]bool{}
	for _, e := range eps {
		if isNodeEndpoint(e.EndpointID) {
			continue
		}
		tbl.Set(dnsEndpoint(e))
		now[e.EndpointID] = true
	}
	for id := range have {
		if !now[id] {
			tbl.Delete(id)
		}
	}
	dnsIDs[network] = now
}

// publishedPorts is every port to publish on this node now; meshID is
// the network of its routing-mesh endpoint, "" while it has none.
func (o *overlayNet) publishedPorts(meshID string) []overlay.PublishedPort {
	var ingress []netdb.Endpoint
	if meshID != "" {
		ingress = o.db.Endpoints(meshID)
	}
	var host []localHostPorts
	o.mu.Lock()
	for _, t := range o.tasks {
		if len(t.eps) == 0 {
			continue
		}
		for _, p := range t.hostPorts {
			host = append(host, localHostPorts{service: t.task.GetServiceName(), port: p, tasks: []string{t.id}})
		}
	}
	o.mu.Unlock()
	ports, conflicts := publishedPorts(ingress, meshID != "", host)
	for _, c := range conflicts {
		o.log.Warn("published port conflict", "conflict", c)
	}
	return ports
}

// endpointSummary lists endpoints as "IP@VTEP" for debug logs.
func endpointSummary(eps []netdb.Endpoint) string {
	var b strings.Builder
	for i, e := range eps {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(e.IP.String())
		b.WriteByte('@')
		b.WriteString(e.VTEP.String())
	}
	return b.String()
}
