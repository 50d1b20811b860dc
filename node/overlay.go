package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/shoal-project/shoal/node/gossip"
	"github.com/shoal-project/shoal/overlay"
	"github.com/shoal-project/shoal/overlay/dns"
	"github.com/shoal-project/shoal/overlay/netdb"
	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/worker/taskdb"
)

// The overlay subsystem of a node in a swarm (overlayNet) ties together:
//
//   - an overlay.Manager, the node's data plane, in <data-dir>/swarm/overlay;
//   - a netdb.DB, the endpoint table, carried by the node's gossip;
//   - the docker executor's Network: tasks on overlay networks are
//     attached to their sandbox container's namespace before they start;
//   - one DNS resolver per such task, answering from a table per network
//     kept from the endpoint table;
//   - a sync loop turning endpoint table changes into peers, service VIPs
//     and published ports.
//
// Workers hold no store: the data path port, the ingress network and the
// node's address on it come with every heartbeat response, and are kept
// in config.json so that a restarted daemon has its data plane up before
// its tasks are re-adopted.

// Defaults of the daemon's overlay settings.
const (
	// DefaultEgressSubnet is the local subnet of the egress bridge, like
	// Docker's docker_gwbridge one of the 172.16.0.0/12 private ranges
	// Docker hands out to its bridges (it skips ranges a route already
	// covers), far from the one it takes first, and out of the cluster's
	// default address pool (10.0.0.0/8). A node whose networks overlap it
	// refuses to start overlay networking and says so.
	DefaultEgressSubnet = "172.30.0.0/16"
	// DefaultResolvConf is where tasks' DNS upstreams are read from.
	DefaultResolvConf = "/etc/resolv.conf"
)

const (
	// attachWait bounds how long a task's attachment waits for the data
	// plane to come up (the first heartbeat answer, on a new node).
	attachWait = time.Minute
	// flushWait bounds how long an attachment waits for the first sync
	// of the task's networks, so the task starts with its VIPs programmed.
	flushWait = 5 * time.Second
	// restoreSettle is how long a restarted node keeps the data plane
	// left by its previous run untouched after it has rejoined gossip,
	// for the endpoint table to fetch the other nodes' entries.
	restoreSettle = time.Second
	// restoreHoldMax bounds that hold when gossip cannot be joined.
	restoreHoldMax = 10 * time.Second
	// upstreamPoll is how often the host's resolv.conf is checked for
	// changes.
	upstreamPoll = 5 * time.Second
	// retryDelay paces retries of data-plane updates that failed.
	retryDelay = time.Second
	// startRetry paces attempts to start a data plane that failed to.
	startRetry = 5 * time.Second
	// Interface names in the node's namespace (overlay's defaults, named
	// here for Docker's DOCKER-USER chain).
	egressBridgeName = "shoal_gwbridge"
	ingressLinkName  = "shoal_ing0"
)

// overlayOptions are the daemon's overlay settings.
type overlayOptions struct {
	egress     netip.Prefix
	resolvConf string
	// netnsFD, when >= 0, is the namespace whose nftables hold Docker's
	// DOCKER-USER chain (the daemon's own namespace when -1).
	netnsFD int
}

// parseOverlayOptions checks the daemon's overlay settings.
func parseOverlayOptions(cfg Config) (overlayOptions, error) {
	o := overlayOptions{resolvConf: cfg.ResolvConf, netnsFD: -1}
	if o.resolvConf == "" {
		o.resolvConf = DefaultResolvConf
	}
	s := cfg.EgressSubnet
	if s == "" {
		s = DefaultEgressSubnet
	}
	if s != "none" {
		p, err := netip.ParsePrefix(s)
		if err != nil || !p.Addr().Is4() || p.Bits() > 28 || p != p.Masked() {
			return o, fmt.Errorf("invalid egress subnet %q: want an IPv4 subnet of at least 16 addresses, like %s", s, DefaultEgressSubnet)
		}
		o.egress = p
	}
	return o, nil
}

// overlayDir holds the node's overlay state: sandbox namespaces, the last
// configuration, the published endpoints and tasks' resolv.conf files.
func (l layout) overlayDir() string { return filepath.Join(l.swarmDir(), "overlay") }

// ovTask is a task on overlay networks on this node.
type ovTask struct {
	id   string
	task *shoalpb.Task
	// nets are the task's networks this node has joined for it.
	nets []string
	// eps are its published endpoints; empty once withdrawn.
	eps []netdb.Endpoint
	// unpublished are the endpoints of a task attached while its health
	// check has not passed yet; Publish moves them to eps.
	unpublished []netdb.Endpoint
	hostPorts   []hostPort
	pid         int
	resolver    *dns.Resolver
}

// overlayNet is the overlay subsystem of a node in a swarm.
type overlayNet struct {
	log      *slog.Logger
	nodeID   string
	dir      string
	dataAddr netip.Addr
	opts     overlayOptions
	db       *netdb.DB

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	configs chan struct{} // wakes the config loop
	kick    chan struct{} // wakes the sync loop

	// op serialises the multi-step operations: start, configuration
	// changes, attaching and releasing tasks, stop.
	op sync.Mutex

	// mu guards what follows. It is a leaf lock: nothing that blocks on
	// the data plane, gossip or another lock runs while it is held.
	mu         sync.Mutex
	cfg        *overlayConfig // applied
	pendingCfg *overlayConfig // from the last heartbeat, not applied yet
	mgr        *overlay.Manager
	ready      chan struct{} // closed once mgr is up
	stopped    bool
	ingress    *ingressConfig // applied with an address (EnsureIngress done)
	tasks      map[string]*ovTask
	refs       map[string]int // network ID -> local tasks that joined it
	tables     map[string]*dns.Table
	members    func() []netip.Addr
	known      []*taskdb.Record // the task database at start, for Reconcile
	// Sync requests and their waiters.
	dirtyNets  map[string]bool
	dirtyPorts bool
	dirtyPeers bool
	waiters    []chan struct{}
	// After a restart, the data plane the previous run left is kept as
	// it is until holdUntil (the endpoint table has had time to catch
	// up): the node-wide state (published ports, the data-path filter)
	// while holding is set, and the held networks' peers and VIPs.
	holding     bool
	held        map[string]bool // networks whose first sync waits (restart)
	holdUntil   time.Time
	gossipReady bool
	upstreams   dns.ResolvConf
	resolvStamp string
	lastCfgErr  string

	// ingressNet is the ingress network the node is set up on (its
	// sandbox, its endpoint once it has an address): what to take down
	// when the swarm's ingress network is removed or replaced.
	ingressNet string
	// ingressRetry says the last change of the routing mesh failed: the
	// next heartbeat applies its configuration again even if unchanged.
	ingressRetry   bool
	lastIngressErr string
}

// newOverlay prepares the overlay subsystem of node nodeID, advertised at
// advertise (host:port, whose host is the data-path address). Nothing
// touches the kernel until a configuration is known (restore or a
// heartbeat).
func newOverlay(log *slog.Logger, nodeID, dir, advertise string, opts overlayOptions) (*overlayNet, error) {
	host, _, err := net.SplitHostPort(advertise)
	if err != nil {
		host = advertise
	}
	addr, err := netip.ParseAddr(host)
	if err != nil || !addr.Is4() {
		return nil, fmt.Errorf("overlay: the data-path address must be the advertised IPv4 address, not %q", host)
	}
	if opts.resolvConf == "" {
		opts.resolvConf = DefaultResolvConf
	}
	db, err := netdb.New(netdb.Config{NodeID: nodeID, Logger: log.With("component", "netdb")})
	if err != nil {
		return nil, err
	}
	o := &overlayNet{
		log:       log.With("component", "overlay"),
		nodeID:    nodeID,
		dir:       dir,
		dataAddr:  addr.Unmap(),
		opts:      opts,
		db:        db,
		configs:   make(chan struct{}, 1),
		kick:      make(chan struct{}, 1),
		ready:     make(chan struct{}),
		tasks:     map[string]*ovTask{},
		refs:      map[string]int{},
		tables:    map[string]*dns.Table{},
		dirtyNets: map[string]bool{},
		held:      map[string]bool{},
		members:   func() []netip.Addr { return nil },
	}
	o.ctx, o.cancel = context.WithCancel(context.Background())
	o.wg.Add(1)
	go func() { defer o.wg.Done(); o.configLoop() }()
	return o, nil
}

// gossipConfig plugs the endpoint table into the node's gossip.
func (o *overlayNet) gossipConfig(cfg gossip.Config) gossip.Config {
	cfg.Delegate = o.db.Delegate()
	cfg.Events = memberEvents{db: o.db.Events(), changed: o.membersChanged}
	return cfg
}

// setGossip gives the endpoint table its direct transport and the data
// plane the cluster's members.
func (o *overlayNet) setGossip(g *gossip.Gossip) {
	o.db.SetTransport(g)
	o.mu.Lock()
	o.members = func() []netip.Addr {
		var out []netip.Addr
		for _, a := range g.Members() {
			host, _, err := net.SplitHostPort(a)
			if err != nil {
				continue
			}
			if ip, err := netip.ParseAddr(host); err == nil && ip.Is4() {
				out = append(out, ip.Unmap())
			}
		}
		return out
	}
	o.mu.Unlock()
	o.membersChanged()
}

// memberEvents passes gossip's membership events to the endpoint table
// and notes that the data-path filter needs rewriting. Memberlist calls it
// with its locks held: nothing here blocks.
type memberEvents struct {
	db      memberlist.EventDelegate
	changed func()
}

func (e memberEvents) NotifyJoin(n *memberlist.Node)   { e.db.NotifyJoin(n); e.changed() }
func (e memberEvents) NotifyLeave(n *memberlist.Node)  { e.db.NotifyLeave(n); e.changed() }
func (e memberEvents) NotifyUpdate(n *memberlist.Node) { e.db.NotifyUpdate(n); e.changed() }

func (o *overlayNet) membersChanged() {
	o.mu.Lock()
	o.dirtyPeers = true
	o.mu.Unlock()
	o.poke()
}

// gossipJoined tells a restarted node that gossip has reached the cluster
// (or that there is nobody to reach): the endpoint table fetches the other
// nodes' entries now, and the data plane the previous run left is synced
// with it shortly after.
func (o *overlayNet) gossipJoined() {
	o.mu.Lock()
	if !o.gossipReady {
		o.gossipReady = true
		if until := time.Now().Add(restoreSettle); o.holding && until.Before(o.holdUntil) {
			o.holdUntil = until
		}
	}
	o.mu.Unlock()
	o.poke()
}

// onHeartbeat takes the configuration a heartbeat response carries. It
// never blocks: the config loop applies it.
func (o *overlayNet) onHeartbeat(pb *shoalpb.OverlayConfig) {
	if pb == nil {
		return
	}
	cfg, err := configFromProto(pb)
	o.mu.Lock()
	if err != nil {
		// Said once per distinct problem, not with every heartbeat.
		if msg := err.Error(); msg != o.lastCfgErr {
			o.lastCfgErr = msg
			o.log.Warn("the managers sent an unusable network configuration", "err", err)
		}
		o.mu.Unlock()
		return
	}
	o.lastCfgErr = ""
	if (cfg.equal(o.cfg) && !o.ingressRetry) || cfg.equal(o.pendingCfg) {
		o.mu.Unlock()
		return
	}
	o.pendingCfg = cfg
	o.mu.Unlock()
	select {
	case o.configs <- struct{}{}:
	default:
	}
}

func (o *overlayNet) configLoop() {
	for {
		select {
		case <-o.ctx.Done():
			return
		case <-o.configs:
		}
		o.mu.Lock()
		cfg := o.pendingCfg
		o.pendingCfg = nil
		o.mu.Unlock()
		if cfg == nil {
			continue
		}
		if err := o.apply(cfg, false); err != nil {
			o.log.Error("overlay networking is not available on this node; retrying", "err", err)
			// Try again with a heartbeat after a pause.
			select {
			case <-o.ctx.Done():
				return
			case <-time.After(startRetry):
			}
		}
	}
}

// apply starts the data plane with cfg, or applies a change of it.
// restoring says the data plane is the one a previous run left, in use.
func (o *overlayNet) apply(cfg *overlayConfig, restoring bool) error {
	o.op.Lock()
	defer o.op.Unlock()
	o.mu.Lock()
	mgr, stopped := o.mgr, o.stopped
	o.mu.Unlock()
	if stopped {
		return nil
	}
	if mgr == nil {
		if err := o.start(cfg, restoring); err != nil {
			return err
		}
	} else {
		o.mu.Lock()
		old := o.cfg
		o.cfg = cfg
		o.mu.Unlock()
		if old.DataPathPort != cfg.DataPathPort {
			o.log.Warn("the cluster's data path port changed; restart the daemon to use it", "was", old.DataPathPort, "now", cfg.DataPathPort)
		}
	}
	err := o.applyIngress(cfg.Ingress)
	o.mu.Lock()
	o.ingressRetry = err != nil
	logIt := err != nil && err.Error() != o.lastIngressErr
	if err != nil {
		o.lastIngressErr = err.Error()
	} else {
		o.lastIngressErr = ""
	}
	o.mu.Unlock()
	if logIt {
		// Said once per distinct problem; retried with every heartbeat.
		o.log.Warn("routing mesh", "err", err)
	}
	// Saved whatever became of the routing mesh: a restarted daemon sets
	// up this configuration's ingress network, or none.
	if err := o.saveConfig(cfg); err != nil {
		o.log.Warn("save the overlay configuration", "err", err)
	}
	return nil
}

// start brings the data plane up. Callers hold op.
func (o *overlayNet) start(cfg *overlayConfig, restoring bool) error {
	if err := checkEgressSubnet(o.opts.egress, o.resolvConf().Nameservers); err != nil {
		return err
	}
	mgr, err := overlay.New(o.ctx, overlay.Config{
		StateDir:     o.dir,
		DataPathAddr: o.dataAddr,
		DataPathPort: cfg.DataPathPort,
		EgressSubnet: o.opts.egress,
		EgressBridge: egressBridgeName,
		IngressLink:  ingressLinkName,
		Logger:       o.log,
	})
	if err != nil {
		return err
	}
	o.mu.Lock()
	known := o.known
	o.mu.Unlock()
	desired := desiredState(known, cfg)
	if err := mgr.Reconcile(o.ctx, desired); err != nil {
		o.log.Warn("removing what departed tasks left", "err", err)
	}
	if cfg.Ingress == nil || !cfg.Ingress.Addr.IsValid() {
		// An endpoint a previous run left on an ingress network that has
		// gone since (its sandbox may be kept for a task still on it).
		if err := mgr.RemoveIngress(o.ctx); err != nil {
			o.log.Warn("remove the endpoint of a former ingress network", "err", err)
		}
	}
	if restoring {
		// Before the tasks are re-adopted: no task of this run has its
		// file yet.
		o.removeStaleResolvConfs(desired.Tasks)
	}
	if ok, err := ensureDockerUserRules(o.opts.netnsFD, egressBridgeName, ingressLinkName); err != nil {
		o.log.Warn("Docker's DOCKER-USER chain: task egress and the routing mesh may be dropped by Docker's FORWARD policy", "err", err)
	} else if ok {
		o.log.Info("accepts for the egress bridge and the ingress endpoint added to Docker's DOCKER-USER chain")
	} else {
		o.log.Info("no DOCKER-USER chain in nftables (no Docker, or Docker on legacy iptables): nothing added to it")
	}

	sub, snap := o.db.Subscribe("")
	o.mu.Lock()
	o.mgr, o.cfg = mgr, cfg
	o.ingressNet = cfg.ingressID() // Reconcile ensured its sandbox
	if restoring {
		// Before the sync loop's first pass.
		o.holdForRestore(time.Now())
	}
	o.mu.Unlock()
	o.wg.Add(2)
	go func() { defer o.wg.Done(); o.syncLoop(sub, snap) }()
	go func() { defer o.wg.Done(); o.upstreamLoop() }()

	if restoring {
		o.republish(known, cfg)
	}
	o.mu.Lock()
	close(o.ready)
	o.mu.Unlock()
	o.log.Info("overlay networking started", "data_path", netip.AddrPortFrom(o.dataAddr, cfg.DataPathPort), "mtu", mgr.OverlayMTU(), "egress", o.opts.egress)
	return nil
}

// checkEgressSubnet refuses an egress subnet that would capture traffic the
// node already routes elsewhere: one overlapping a route or address of the
// node's namespace (other than the egress bridge's own), or holding one of
// its name servers.
func checkEgressSubnet(egress netip.Prefix, nameservers []netip.Addr) error {
	if !egress.IsValid() {
		return nil
	}
	bad := func(what string) error {
		return fmt.Errorf("the egress subnet %s overlaps %s on this node; choose another with the daemon's --egress-subnet", egress, what)
	}
	for _, ns := range nameservers {
		if egress.Contains(ns.Unmap()) {
			return bad("name server " + ns.String())
		}
	}
	own := -1
	if l, err := netlink.LinkByName(egressBridgeName); err == nil {
		own = l.Attrs().Index
	}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("list the node's routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.LinkIndex == own || r.Type == unix.RTN_LOCAL || r.Type == unix.RTN_BROADCAST {
			continue
		}
		p, ok := netipPrefix(r.Dst)
		if !ok || p.Bits() == 0 || p.Addr().IsLoopback() {
			continue
		}
		if p.Overlaps(egress) {
			return bad("route " + p.String())
		}
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list the node's addresses: %w", err)
	}
	for _, a := range addrs {
		if a.LinkIndex == own || a.IPNet == nil {
			continue
		}
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok && egress.Contains(ip) {
			return bad("address " + ip.String())
		}
	}
	return nil
}

func netipPrefix(n *net.IPNet) (netip.Prefix, bool) {
	ip, ok := netip.AddrFromSlice(n.IP.To4())
	if !ok {
		return netip.Prefix{}, false
	}
	bits, _ := n.Mask.Size()
	return netip.PrefixFrom(ip, bits), true
}

// applyIngress makes the node's routing-mesh endpoint match ing. When the
// swarm's ingress network has gone (ing is nil) or is another one, the
// node first leaves the former one (removeIngress); then it gets its
// endpoint on ing's network and publishes it, so other nodes reach it.
// Callers hold op.
func (o *overlayNet) applyIngress(ing *ingressConfig) error {
	o.mu.Lock()
	mgr, cur, was := o.mgr, o.ingress, o.ingressNet
	o.mu.Unlock()
	if mgr == nil {
		return nil
	}
	want := ""
	if ing != nil {
		want = ing.Network.ID
	}
	if was != "" && was != want {
		if err := o.removeIngress(mgr, was); err != nil {
			return fmt.Errorf("leave the former ingress network %s: %w", was, err)
		}
		cur = nil
	}
	if ing == nil {
		return nil
	}
	o.mu.Lock()
	o.ingressNet = ing.Network.ID
	o.mu.Unlock()
	if !ing.Addr.IsValid() {
		return nil
	}
	if cur != nil && *cur == *ing {
		return nil
	}
	if err := mgr.EnsureIngress(o.ctx, ing.Network, ing.Addr); err != nil {
		return err
	}
	if err := o.db.JoinNetwork(ing.Network.ID); err != nil {
		return err
	}
	ep := netdb.Endpoint{
		NetworkID:  ing.Network.ID,
		EndpointID: nodeEndpointID(o.nodeID),
		IP:         ing.Addr.Addr(),
		MAC:        macOf(ing.Addr.Addr()),
		VTEP:       o.dataAddr,
	}
	if err := o.db.Publish(ep); err != nil {
		return fmt.Errorf("publish this node's address %s on the ingress network: %w", ing.Addr, err)
	}
	c := *ing
	o.mu.Lock()
	o.ingress = &c
	o.dirtyNets[ing.Network.ID] = true
	o.dirtyPorts = true
	o.mu.Unlock()
	o.poke()
	o.log.Info("routing mesh endpoint up", "network", ing.Network.ID, "addr", ing.Addr)
	return nil
}

// removeIngress takes the node off a network that is no longer the
// swarm's ingress network: its endpoint is withdrawn from the endpoint
// table and taken down with the mesh's state for it (overlay's
// RemoveIngress), and the node leaves the network and removes its sandbox
// unless local tasks are still on it (the last of them does that then, as
// on any network). Idempotent. Callers hold op.
func (o *overlayNet) removeIngress(mgr *overlay.Manager, id string) error {
	o.mu.Lock()
	// First, so that the sync loop programs no more routing-mesh ports.
	o.ingress = nil
	o.dirtyPorts = true
	o.dirtyNets[id] = true
	inUse := o.refs[id] > 0
	o.mu.Unlock()
	if err := o.db.Withdraw(id, nodeEndpointID(o.nodeID)); err != nil {
		return fmt.Errorf("withdraw this node's endpoint: %w", err)
	}
	if err := mgr.RemoveIngress(o.ctx); err != nil {
		return err
	}
	if !inUse {
		if err := o.db.LeaveNetwork(id); err != nil {
			return err
		}
		if err := mgr.RemoveNetwork(o.ctx, id); err != nil {
			// A task this run has not re-adopted yet is still attached:
			// its release removes the sandbox.
			o.log.Warn("remove the sandbox of the former ingress network", "network", id, "err", err)
		}
	}
	o.mu.Lock()
	o.ingressNet = ""
	o.mu.Unlock()
	o.poke()
	o.log.Info("routing mesh endpoint removed: the network is no longer the swarm's ingress network", "network", id, "tasks_still_on_it", inUse)
	return nil
}

// stop ends the subsystem. With leave (the node leaves the swarm) the
// data plane is torn down and its state removed; otherwise kernel state
// stays for the next run. Gossip must be stopped first.
func (o *overlayNet) stop(leave bool) {
	o.mu.Lock()
	o.stopped = true
	o.mu.Unlock()
	o.cancel()
	o.wg.Wait()
	o.op.Lock()
	defer o.op.Unlock()
	o.mu.Lock()
	mgr := o.mgr
	var resolvers []*dns.Resolver
	for _, t := range o.tasks {
		if t.resolver != nil {
			resolvers = append(resolvers, t.resolver)
			t.resolver = nil
		}
	}
	o.mu.Unlock()
	for _, r := range resolvers {
		_ = r.Close()
	}
	if leave {
		if mgr == nil {
			mgr = o.managerForTeardown()
		}
		if mgr != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := mgr.Teardown(ctx); err != nil {
				o.log.Warn("tear down the overlay data plane", "err", err)
			}
			cancel()
		}
		if err := removeDockerUserRules(o.opts.netnsFD, egressBridgeName, ingressLinkName); err != nil {
			o.log.Warn("remove the accepts from Docker's DOCKER-USER chain", "err", err)
		}
		if err := os.RemoveAll(o.dir); err != nil {
			o.log.Warn("remove the overlay state", "err", err)
		}
	} else if mgr != nil {
		_ = mgr.Close()
	}
	o.db.Close()
}

// managerForTeardown opens the data plane a previous run left, when this
// one never started it, so that leaving removes it.
func (o *overlayNet) managerForTeardown() *overlay.Manager {
	cfg, err := o.loadConfig()
	if err != nil || cfg == nil {
		return nil
	}
	m, err := overlay.New(context.Background(), overlay.Config{StateDir: o.dir, DataPathAddr: o.dataAddr, DataPathPort: cfg.DataPathPort,
		EgressSubnet: o.opts.egress, EgressBridge: egressBridgeName, IngressLink: ingressLinkName, Logger: o.log})
	if err != nil {
		o.log.Warn("open the overlay data plane to tear it down", "err", err)
		return nil
	}
	return m
}

// manager waits until the data plane is up.
func (o *overlayNet) manager(ctx context.Context) (*overlay.Manager, error) {
	o.mu.Lock()
	ready := o.ready
	o.mu.Unlock()
	t := time.NewTimer(attachWait)
	defer t.Stop()
	select {
	case <-ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-o.ctx.Done():
		return nil, errors.New("the daemon is stopping")
	case <-t.C:
		return nil, fmt.Errorf("overlay networking is not up on node %s after %s: no network configuration from the managers yet", o.nodeID, attachWait)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.mgr, nil
}

// Persistence.
