package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/shoal-project/shoal/identity"
	"github.com/shoal-project/shoal/manager"
	"github.com/shoal-project/shoal/node/gossip"
	"github.com/shoal-project/shoal/node/netmux"
	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/raftstore"
	"github.com/shoal-project/shoal/worker"
)

// cluster is the set of components running while the node is in a swarm.
type cluster struct {
	d      *Daemon
	state  *State
	creds  *identity.Credentials
	pool   *connPool
	gossip *gossip.Gossip
	dead   <-chan string
	// overlay is the node's overlay networking: data plane, endpoint
	// table (carried by gossip), task attachments and DNS.
	overlay *overlayNet

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	tasks *taskRuntime

	// manager parts; nil on a worker
	mux    *netmux.Mux
	srv    *grpc.Server
	mgr    *manager.Manager
	mgrCtx context.CancelFunc
	mgrWG  sync.WaitGroup

	roleChange sync.Mutex // one role change at a time
	renewMu    sync.Mutex // one certificate renewal at a time
	jitter     float64    // where in the renewal window this node renews

	// smu guards the contents of state. It is a leaf lock: nothing that
	// waits for the cluster's goroutines runs while it is held, and those
	// goroutines (agent, gossip, renewal) take only smu, never d.mu, so
	// lifecycle operations holding d.mu can stop them.
	smu sync.Mutex
}

// startCluster starts the components for st. Callers hold d.mu.
func (d *Daemon) startCluster(st *State, opts *managerOpts) error {
	mat, err := identity.Load(d.layout.certDir())
	if err != nil {
		return err
	}
	creds, err := identity.NewCredentials(mat)
	if err != nil {
		return fmt.Errorf("node certificates: %w", err)
	}
	c := &cluster{d: d, state: st, creds: creds, pool: newConnPool(creds), jitter: rand.Float64()}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	gh, gp, err := net.SplitHostPort(st.GossipAddr)
	if err != nil {
		return fmt.Errorf("gossip address %q: %w", st.GossipAddr, err)
	}
	port, _ := strconv.Atoi(gp)
	bindIP, _, _ := net.SplitHostPort(st.ListenAddr)
	if bindIP == "" {
		bindIP = "0.0.0.0"
	}
	ov, err := newOverlay(d.log, st.NodeID, d.layout.overlayDir(), st.AdvertiseAddr, d.ovOpts)
	if err != nil {
		return err
	}
	g, err := gossip.Start(ov.gossipConfig(gossip.Config{NodeID: st.NodeID, BindIP: bindIP, Port: port, AdvertiseIP: gh, Key: st.GossipKey, Logger: d.log.With("component", "gossip")}))
	if err != nil {
		ov.stop(false)
		return err
	}
	ov.setGossip(g)
	c.gossip = g
	c.dead = g.Dead()
	c.overlay = ov
	if st.Role == roleManager {
		if opts == nil {
			opts = &managerOpts{}
		}
		if err := c.startManager(*opts); err != nil {
			g.Shutdown()
			ov.stop(false)
			return err
		}
	}
	if err := c.startTasks(); err != nil {
		c.stopManager()
		g.Shutdown()
		ov.stop(false)
		return fmt.Errorf("task runtime: %w", err)
	}
	d.cl = c
	c.wg.Add(3)
	go func() { defer c.wg.Done(); c.gossipJoinLoop() }()
	go func() { defer c.wg.Done(); c.agent().Run(c.ctx) }()
	go func() { defer c.wg.Done(); c.renewLoop() }()
	return nil
}

// managerOpts says how to start a manager.
type managerOpts struct {
	bootstrap       *manager.Bootstrap
	forceNewCluster bool
}

func (c *cluster) startManager(opts managerOpts) error {
	st := c.state
	authManager := func(cs tls.ConnectionState) error {
		id, ok := identity.PeerIdentity(cs)
		if !ok || id.Role != identity.RoleManager {
			return errors.New("peer is not a manager")
		}
		return nil
	}
	mux, err := netmux.Listen(st.ListenAddr, c.creds.ServerConfig([]string{netmux.ProtoGRPC, netmux.ProtoRaft}), authManager, c.d.log.With("component", "listener"))
	if err != nil {
		return err
	}
	authServer := func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("peer presented no certificate")
		}
		id, err := identity.IdentityFromCert(cs.PeerCertificates[0])
		if err != nil || id.Role != identity.RoleManager {
			return errors.New("peer is not a manager")
		}
		return nil
	}
	sl, err := netmux.NewStreamLayer(mux, st.AdvertiseAddr, func() *tls.Config { return c.creds.ClientConfig(netmux.ProtoRaft) }, authServer)
	if err != nil {
		mux.Close()
		return err
	}
	m, err := manager.New(manager.Config{
		NodeID:           st.NodeID,
		AdvertiseAddr:    st.AdvertiseAddr,
		RaftDir:          c.d.layout.raftDir(),
		Transport:        raftstore.NewNetworkTransport(sl, c.d.log.With("component", "raft-transport")),
		Logger:           c.d.log.With("component", "manager"),
		Gossip:           c.gossip,
		GossipDead:       c.dead,
		Dial:             c.pool.Dial,
		Bootstrap:        opts.bootstrap,
		ForceNewCluster:  opts.forceNewCluster,
		HeartbeatTimeout: c.d.cfg.RaftTimeout,
		ElectionTimeout:  c.d.cfg.RaftTimeout,
	})
	if err != nil {
		mux.Close()
		return err
	}
	srv := grpc.NewServer(
		grpc.Creds(netmux.HandshakenCreds{}),
		grpc.KeepaliveEnforcementPolicy(serverKeepalive),
		grpc.UnaryInterceptor(m.UnaryInterceptor),
		grpc.StreamInterceptor(m.StreamInterceptor),
	)
	m.Register(srv)
	go srv.Serve(mux.GRPC())
	ctx, cancel := context.WithCancel(c.ctx)
	c.mux, c.srv, c.mgr, c.mgrCtx = mux, srv, m, cancel
	c.mgrWG.Add(1)
	go func() { defer c.mgrWG.Done(); m.Run(ctx) }()
	return nil
}

func (c *cluster) stopManager() {
	if c.mgr == nil {
		return
	}
	c.mgrCtx()
	c.mgrWG.Wait()
	c.srv.Stop()
	c.mgr.Stop()
	c.mux.Close()
	c.mux, c.srv, c.mgr = nil, nil, nil
}

// stop ends every component. With leave, gossip announces the departure.
func (c *cluster) stop(leave bool) {
	c.cancel()
	c.stopManager()
	if leave {
		c.gossip.Leave(2 * time.Second)
	} else {
		c.gossip.Shutdown()
	}
	c.wg.Wait()
	c.stopTasks()
	c.overlay.stop(leave)
	c.pool.Reset()
}

// managerPeers returns the known managers.
func (c *cluster) managerPeers() []*shoalpb.Peer {
	c.smu.Lock()
	defer c.smu.Unlock()
	return peersToProto(c.state.Managers)
}

// role returns the role this node runs now.
func (c *cluster) role() string {
	c.smu.Lock()
	defer c.smu.Unlock()
	return c.state.Role
}

// setRole records a new local role and saves the state.
func (c *cluster) setRole(role string, managers []*shoalpb.Peer) error {
	c.smu.Lock()
	defer c.smu.Unlock()
	c.state.Role = role
	if len(managers) > 0 {
		c.state.Managers = peersFromProto(managers)
	}
	return saveState(c.d.layout, c.state)
}

func (c *cluster) agent() *worker.Agent {
	return worker.NewAgent(worker.Config{
		Logger:        c.d.log.With("component", "agent"),
		Dial:          c.pool.Dial,
		Managers:      c.managerPeers,
		Describe:      c.d.describe,
		AdvertiseAddr: c.state.AdvertiseAddr,
		GossipAddr:    c.state.GossipAddr,
		OnResponse:    c.onHeartbeat,
		OnRemoved: func(err error) {
			c.d.log.Error("the managers refuse this node; it was probably removed from the swarm. Run swarm leave to reset it", "err", err)
		},
		InitialPeriod: time.Duration(c.state.HeartbeatPeriodNs),
	})
}

// gossipJoinLoop keeps this node in the gossip pool: whenever a known
// manager is not seen alive (at start, or after a partition outlasted
// gossip's own retries), it contacts it again.
func (c *cluster) gossipJoinLoop() {
	for {
		var addrs []string
		for _, p := range c.managerPeers() {
			if p.NodeId != c.state.NodeID && p.GossipAddr != "" && !c.gossip.Alive(p.NodeId) {
				addrs = append(addrs, p.GossipAddr)
			}
		}
		if len(addrs) > 0 {
			if _, err := c.gossip.Join(addrs); err != nil {
				c.d.log.Debug("gossip join", "addrs", addrs, "err", err)
			} else {
				c.overlay.gossipJoined()
			}
		} else {
			// Nobody to reach, or every known manager is seen alive.
			c.overlay.gossipJoined()
		}
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
}

// onHeartbeat records what the managers said and starts role changes.
func (c *cluster) onHeartbeat(resp *shoalpb.HeartbeatResponse) {
	if c.ctx.Err() != nil {
		return
	}
	c.overlay.onHeartbeat(resp.Overlay)
	c.smu.Lock()
	peers := peersFromProto(resp.Managers)
	changed := len(peers) > 0 && !samePeers(peers, c.state.Managers)
	if changed {
		c.state.Managers = peers
	}
	if resp.PeriodNs != c.state.HeartbeatPeriodNs {
		c.state.HeartbeatPeriodNs = resp.PeriodNs
		changed = true
	}
	if changed {
		if err := saveState(c.d.layout, c.state); err != nil {
			c.d.log.Warn("save state", "err", err)
		}
	}
	role := c.state.Role
	isVoter := slices.ContainsFunc(resp.Managers, func(p *shoalpb.Peer) bool { return p.NodeId == c.state.NodeID })
	c.smu.Unlock()

	switch {
	case resp.DesiredRole == shoalpb.NodeRole_NODE_ROLE_MANAGER && role == roleWorker:
		go c.changeRole(true)
	case resp.DesiredRole == shoalpb.NodeRole_NODE_ROLE_WORKER && role == roleManager && !isVoter:
		go c.changeRole(false)
	}
}

func samePeers(a, b []*Peer) bool {
	return slices.EqualFunc(a, b, func(x, y *Peer) bool { return *x == *y })
}

// changeRole promotes or demotes this node, once at a time.
func (c *cluster) changeRole(promote bool) {
	if !c.roleChange.TryLock() {
		return
	}
	defer c.roleChange.Unlock()
	var err error
	if promote {
		err = c.promote()
	} else {
		err = c.demote()
	}
	if err != nil && c.ctx.Err() == nil {
		c.d.log.Warn("role change failed; will retry", "promote", promote, "err", err)
	}
}

// promote turns this worker into a manager: a manager certificate, a fresh
// Raft node, and a seat among the voters.
func (c *cluster) promote() error {
	d := c.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cl != c || c.role() == roleManager {
		return nil
	}
	if c.creds.Current().Identity.Role != identity.RoleManager {
		if err := c.renew(identity.RoleManager); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(d.layout.raftDir()); err != nil {
		return fmt.Errorf("clear raft directory: %w", err)
	}
	if err := c.startManager(managerOpts{}); err != nil {
		return err
	}
	resp, err := c.raftJoin()
	if err != nil {
		c.stopManager()
		os.RemoveAll(d.layout.raftDir())
		return err
	}
	if err := c.setRole(roleManager, resp.Managers); err != nil {
		return err
	}
	d.log.Info("this node is now a manager")
	return nil
}

// raftJoin asks the leader (through any other manager) to add this node
// to the voters. Callers hold d.mu.
func (c *cluster) raftJoin() (*shoalpb.RaftJoinResponse, error) {
	var lastErr error = errors.New("no other manager is known")
	for _, p := range c.managerPeers() {
		if p.NodeId == c.state.NodeID {
			continue
		}
		conn, err := c.pool.Dial(c.ctx, p.Addr)
		if err != nil {
			lastErr = err
			continue
		}
		ctx, cancel := context.WithTimeout(c.ctx, 15*time.Second)
		resp, err := shoalpb.NewRaftMembershipClient(conn).Join(ctx, &shoalpb.RaftJoinRequest{Addr: c.state.AdvertiseAddr})
		cancel()
		if err == nil {
			return resp, nil
		}
		lastErr = fmt.Errorf("join the managers through %s: %w", p.Addr, err)
	}
	return nil, lastErr
}

// demote turns this manager, already removed from the voters, back into a
// worker.
func (c *cluster) demote() error {
	d := c.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cl != c || c.role() == roleWorker {
		return nil
	}
	c.stopManager()
	if err := os.RemoveAll(d.layout.raftDir()); err != nil {
		return fmt.Errorf("clear raft directory: %w", err)
	}
	if err := c.setRole(roleWorker, nil); err != nil {
		return err
	}
	if err := c.renew(identity.RoleWorker); err != nil {
		d.log.Warn("renew certificate after demotion", "err", err)
	}
	d.log.Info("this node is now a worker")
	return nil
}

// renew gets a new certificate for this node from the managers and starts
// using it. want, when valid, is the role the new certificate must carry.
func (c *cluster) renew(want identity.Role) error {
	c.renewMu.Lock()
	defer c.renewMu.Unlock()
	signer, err := identity.ParsePrivateKeyPEM(c.creds.Current().Material.KeyPEM)
	if err != nil {
		return err
	}
	csr, err := identity.CreateCSR(signer)
	if err != nil {
		return err
	}
	var lastErr error = errors.New("no manager is known")
	for _, p := range c.managerPeers() {
		conn, err := c.pool.Dial(c.ctx, p.Addr)
		if err != nil {
			lastErr = err
			continue
		}
		ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
		resp, err := shoalpb.NewCAClient(conn).RenewCertificate(ctx, &shoalpb.RenewCertificateRequest{CsrDer: csr})
		cancel()
		if err != nil {
			lastErr = fmt.Errorf("renew certificate through %s: %w", p.Addr, err)
			continue
		}
		gotRole := identity.RoleWorker
		if resp.Role == shoalpb.NodeRole_NODE_ROLE_MANAGER {
			gotRole = identity.RoleManager
		}
		if want.Valid() && gotRole != want {
			return fmt.Errorf("the managers issued a %s certificate, want %s", gotRole, want)
		}
		mat := c.creds.Current().Material
		mat.CertPEM = resp.CertPem
		if err := c.creds.Update(mat); err != nil {
			return fmt.Errorf("use renewed certificate: %w", err)
		}
		if err := identity.Save(c.d.layout.certDir(), mat); err != nil {
			return err
		}
		c.pool.Reset()
		c.d.log.Info("node certificate renewed", "role", gotRole, "not_after", c.creds.Current().Leaf.NotAfter)
		return nil
	}
	return lastErr
}

// renewLoop renews the node certificate between 50 % and 80 % of its life.
func (c *cluster) renewLoop() {
	for {
		leaf := c.creds.Current().Leaf
		wait := time.Until(identity.RenewAt(leaf.NotBefore, leaf.NotAfter, c.jitter))
		if wait < 0 {
			wait = 0
		}
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(min(wait, time.Minute)):
		}
		if !identity.NeedsRenewal(c.creds.Current().Leaf, time.Now(), c.jitter) {
			continue
		}
		err := c.renew(identity.Role(-1))
		if err != nil {
			c.d.log.Warn("certificate renewal failed; retrying", "err", err)
			select {
			case <-c.ctx.Done():
				return
			case <-time.After(10 * time.Second):
			}
		}
	}
}
