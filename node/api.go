package node

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/identity"
	"github.com/shoal-project/shoal/manager"
	"github.com/shoal-project/shoal/manager/allocator"
	"github.com/shoal-project/shoal/manager/ca"
	"github.com/shoal-project/shoal/manager/controlapi"
	"github.com/shoal-project/shoal/manager/dispatcher"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/node/netmux"
	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/raftstore"
)

// APIVersion is the version of the socket API.
const APIVersion = "1.0"

// JoinTimeout bounds how long swarm join tries to reach the remote manager.
const JoinTimeout = 10 * time.Second

// readyTimeout bounds waiting for a new manager to lead or catch up.
const readyTimeout = 20 * time.Second

type daemonAPI struct {
	shoalpb.UnimplementedDaemonServer
	d *Daemon
}

func (a *daemonAPI) Version(context.Context, *shoalpb.VersionRequest) (*shoalpb.VersionResponse, error) {
	d := a.d
	return &shoalpb.VersionResponse{Version: d.cfg.Version, GitCommit: d.cfg.GitCommit, GoVersion: runtime.Version(), Os: runtime.GOOS, Arch: runtime.GOARCH, ApiVersion: APIVersion}, nil
}

func invalidArg(err error) error { return status.Error(codes.InvalidArgument, err.Error()) }

// Init creates a new swarm with this node as its only manager, or, with
// force_new_cluster, recovers a swarm from this manager's data alone.
func (a *daemonAPI) Init(ctx context.Context, req *shoalpb.InitRequest) (*shoalpb.InitResponse, error) {
	d := a.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state != nil {
		if req.ForceNewCluster {
			return d.forceNewCluster()
		}
		return nil, errAlreadyInSwarm
	}
	hb := time.Duration(req.DispatcherHeartbeatNs)
	if hb == 0 {
		hb = dispatcher.DefaultHeartbeatPeriod
	}
	if hb < controlapi.MinHeartbeatPeriod || hb > controlapi.MaxHeartbeatPeriod {
		return nil, status.Errorf(codes.InvalidArgument, "invalid dispatcher heartbeat period %s: must be between %s and %s", hb, controlapi.MinHeartbeatPeriod, controlapi.MaxHeartbeatPeriod)
	}
	expiry := time.Duration(req.CertExpiryNs)
	if expiry == 0 {
		expiry = ca.DefaultNodeCertExpiry
	}
	if expiry < ca.MinNodeCertExpiry {
		return nil, status.Errorf(codes.InvalidArgument, "invalid certificate expiry %s: minimum is %s", expiry, ca.MinNodeCertExpiry)
	}
	history := req.TaskHistoryLimit
	if history == 0 {
		history = 5
	}
	if history < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "invalid task history limit %d: must not be negative", history)
	}
	netCfg, err := allocator.ParseNetworkConfig(&shoalpb.NetworkConfig{
		DefaultAddrPool: req.DefaultAddrPool, SubnetSize: req.SubnetSize, DataPathPort: req.DataPathPort,
	})
	if err != nil {
		return nil, invalidArg(err)
	}
	listen, err := resolveListen(req.ListenAddr, d.cfg.ListenAddr)
	if err != nil {
		return nil, invalidArg(err)
	}
	advertise, err := resolveAdvertise(req.AdvertiseAddr, d.cfg.AdvertiseAddr, listen, "")
	if err != nil {
		return nil, invalidArg(err)
	}

	now := time.Now()
	nodeID, clusterID := manager.NewNodeID(), manager.NewNodeID()
	root, err := ca.NewRootCA(now)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "create root CA: %v", err)
	}
	key, keyPEM, err := identity.NewNodeKey()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "create node key: %v", err)
	}
	csr, err := identity.CreateCSR(key)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "create CSR: %v", err)
	}
	certPEM, cert, err := root.Issue(csr, identity.Identity{NodeID: nodeID, ClusterID: clusterID, Role: identity.RoleManager}, expiry, now)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "issue node certificate: %v", err)
	}
	gossipKey := make([]byte, 32)
	if _, err := rand.Read(gossipKey); err != nil {
		return nil, status.Errorf(codes.Internal, "gossip key: %v", err)
	}
	workerTok, err := identity.GenerateJoinToken(root.Digest, rand.Reader)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "join token: %v", err)
	}
	managerTok, err := identity.GenerateJoinToken(root.Digest, rand.Reader)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "join token: %v", err)
	}
	advHost, _, _ := net.SplitHostPort(advertise)
	gossipAddr := net.JoinHostPort(advHost, fmt.Sprint(d.cfg.GossipPort))
	ts := now.UnixNano()
	ingress, err := allocator.NewIngressNetwork(manager.NewNodeID(), netCfg, ts)
	if err != nil {
		return nil, invalidArg(err)
	}
	boot := &manager.Bootstrap{
		Networks: []*shoalpb.Network{ingress},
		Cluster: &shoalpb.Cluster{
			Id:   clusterID,
			Meta: &shoalpb.Meta{CreatedAt: ts, UpdatedAt: ts},
			Spec: &shoalpb.ClusterSpec{
				Name:          "default",
				Dispatcher:    &shoalpb.DispatcherSpec{HeartbeatPeriodNs: int64(hb)},
				Ca:            &shoalpb.CASpec{NodeCertExpiryNs: int64(expiry)},
				Orchestration: &shoalpb.OrchestrationSpec{TaskHistoryRetentionLimit: history},
				Raft:          &shoalpb.RaftSpec{SnapshotInterval: 10000},
			},
			RootCa:        &shoalpb.RootCA{CertPem: root.CertPEM, KeyPem: root.KeyPEM, Digest: root.Digest},
			JoinTokens:    &shoalpb.JoinTokens{Worker: workerTok, Manager: managerTok},
			GossipKey:     gossipKey,
			NetworkConfig: netCfg.Proto(),
		},
		Node: &shoalpb.Node{
			Id:            nodeID,
			Meta:          &shoalpb.Meta{CreatedAt: ts, UpdatedAt: ts},
			Spec:          &shoalpb.NodeSpec{DesiredRole: shoalpb.NodeRole_NODE_ROLE_MANAGER},
			Description:   d.describe(),
			Status:        &shoalpb.NodeStatus{State: shoalpb.NodeState_NODE_STATE_READY, Addr: advHost},
			Role:          shoalpb.NodeRole_NODE_ROLE_MANAGER,
			AdvertiseAddr: advertise,
			GossipAddr:    gossipAddr,
			Certificate:   &shoalpb.NodeCertificate{Serial: cert.SerialNumber.Text(16), NotAfter: cert.NotAfter.UnixNano(), Role: shoalpb.NodeRole_NODE_ROLE_MANAGER},
		},
	}
	st := &State{
		NodeID: nodeID, ClusterID: clusterID, Role: roleManager,
		AdvertiseAddr: advertise, ListenAddr: listen, GossipAddr: gossipAddr, GossipKey: gossipKey,
		Managers:          []*Peer{{NodeID: nodeID, Addr: advertise, GossipAddr: gossipAddr}},
		HeartbeatPeriodNs: int64(hb),
	}
	if err := identity.Save(d.layout.certDir(), identity.Material{CertPEM: certPEM, KeyPEM: keyPEM, RootPEM: root.CertPEM}); err != nil {
		return nil, status.Errorf(codes.Internal, "save certificates: %v", err)
	}
	if err := saveState(d.layout, st); err != nil {
		d.wipeSwarm()
		return nil, status.Errorf(codes.Internal, "save state: %v", err)
	}
	if err := d.startCluster(st, &managerOpts{bootstrap: boot}); err != nil {
		d.wipeSwarm()
		return nil, status.Errorf(codes.Internal, "start manager: %v", err)
	}
	d.state = st
	if err := waitFor(ctx, readyTimeout, func() bool {
		if !d.cl.mgr.Raft().IsLeader() {
			return false
		}
		var ok bool
		d.cl.mgr.Store().View(func(tx store.ReadTx) { ok = tx.Cluster() != nil && tx.Node(nodeID) != nil })
		return ok
	}); err != nil {
		return nil, status.Errorf(codes.Unavailable, "the new manager did not become leader: %v", err)
	}
	d.log.Info("swarm initialised", "node", nodeID, "cluster", clusterID, "advertise", advertise)
	return &shoalpb.InitResponse{NodeId: nodeID}, nil
}

// forceNewCluster rewrites this manager's Raft configuration to contain
// only itself and restarts it. Callers hold d.mu.
func (d *Daemon) forceNewCluster() (*shoalpb.InitResponse, error) {
	st := d.state
	if st.Role != roleManager {
		return nil, status.Error(codes.FailedPrecondition, "--force-new-cluster needs a manager's data; this node is a worker")
	}
	if d.cl != nil {
		d.cl.stop(false)
		d.cl = nil
	}
	_, trans := raft.NewInmemTransport(raft.ServerAddress(st.AdvertiseAddr))
	if err := raftstore.RecoverSingle(raftstore.Config{
		NodeID: st.NodeID, Addr: st.AdvertiseAddr, Dir: d.layout.raftDir(), Transport: trans, Logger: d.log.With("component", "raft"),
	}, store.New()); err != nil {
		return nil, status.Errorf(codes.Internal, "recover raft state: %v", err)
	}
	st.Managers = []*Peer{{NodeID: st.NodeID, Addr: st.AdvertiseAddr, GossipAddr: st.GossipAddr}}
	if err := saveState(d.layout, st); err != nil {
		return nil, status.Errorf(codes.Internal, "save state: %v", err)
	}
	if err := d.startCluster(st, &managerOpts{forceNewCluster: true}); err != nil {
		return nil, status.Errorf(codes.Internal, "restart manager: %v", err)
	}
	if err := waitFor(context.Background(), readyTimeout, func() bool { return d.cl.mgr.Raft().IsLeader() }); err != nil {
		return nil, status.Errorf(codes.Unavailable, "the recovered manager did not become leader: %v", err)
	}
	d.log.Info("forced a new cluster from this manager's state", "node", st.NodeID)
	return &shoalpb.InitResponse{NodeId: st.NodeID}, nil
}

// wipeSwarm removes the swarm state of the data directory.
func (d *Daemon) wipeSwarm() {
	if err := os.RemoveAll(d.layout.swarmDir()); err != nil {
		d.log.Warn("remove swarm state", "err", err)
	}
}

func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Join joins an existing swarm through one of its managers.
func (a *daemonAPI) Join(ctx context.Context, req *shoalpb.JoinRequest) (*shoalpb.JoinResponse, error) {
	d := a.d
	d.mu.Lock()
	if d.state != nil {
		d.mu.Unlock()
		return nil, errAlreadyInSwarm
	}
	tok, err := identity.ParseJoinToken(req.Token)
	if err != nil {
		d.mu.Unlock()
		return nil, invalidArg(err)
	}
	remote, err := withPort(req.RemoteAddr, DefaultPort)
	if err != nil {
		d.mu.Unlock()
		return nil, status.Errorf(codes.InvalidArgument, "invalid remote address: %v", err)
	}
	listen, err := resolveListen(req.ListenAddr, d.cfg.ListenAddr)
	if err != nil {
		d.mu.Unlock()
		return nil, invalidArg(err)
	}
	advertise, err := resolveAdvertise(req.AdvertiseAddr, d.cfg.AdvertiseAddr, listen, remote)
	if err != nil {
		d.mu.Unlock()
		return nil, invalidArg(err)
	}
	resp, keyPEM, err := d.requestJoin(ctx, remote, tok.Digest, req.Token, advertise)
	if err != nil {
		d.mu.Unlock()
		return nil, err
	}
	advHost, _, _ := net.SplitHostPort(advertise)
	st := &State{
		NodeID: resp.NodeId, ClusterID: resp.ClusterId, Role: roleWorker,
		AdvertiseAddr: advertise, ListenAddr: listen,
		GossipAddr: net.JoinHostPort(advHost, fmt.Sprint(d.cfg.GossipPort)), GossipKey: resp.GossipKey,
		Managers: peersFromProto(resp.Managers), HeartbeatPeriodNs: resp.HeartbeatPeriodNs,
	}
	if err := identity.Save(d.layout.certDir(), identity.Material{CertPEM: resp.CertPem, KeyPEM: keyPEM, RootPEM: resp.RootCaPem}); err != nil {
		d.mu.Unlock()
		return nil, status.Errorf(codes.Internal, "save certificates: %v", err)
	}
	if err := saveState(d.layout, st); err != nil {
		d.wipeSwarm()
		d.mu.Unlock()
		return nil, status.Errorf(codes.Internal, "save state: %v", err)
	}
	if err := d.startCluster(st, nil); err != nil {
		d.wipeSwarm()
		d.mu.Unlock()
		return nil, status.Errorf(codes.Internal, "start node: %v", err)
	}
	d.state = st
	cl := d.cl
	d.mu.Unlock()
	d.log.Info("joined swarm", "node", resp.NodeId, "cluster", resp.ClusterId, "role", resp.Role)

	if resp.Role != shoalpb.NodeRole_NODE_ROLE_MANAGER {
		return &shoalpb.JoinResponse{NodeId: resp.NodeId}, nil
	}
	// A manager joins as a worker first, then takes its seat among the
	// voters and waits until its store has caught up with the leader.
	cl.roleChange.Lock()
	err = cl.promote()
	cl.roleChange.Unlock()
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "joined as a worker, but joining the managers failed (it will be retried): %v", err)
	}
	if err := waitFor(ctx, readyTimeout, func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.cl == nil || d.cl.mgr == nil {
			return false
		}
		id, _ := d.cl.mgr.Raft().Leader()
		var known bool
		d.cl.mgr.Store().View(func(tx store.ReadTx) { known = tx.Node(resp.NodeId) != nil })
		return id != "" && known
	}); err != nil {
		return nil, status.Errorf(codes.Unavailable, "joined the managers, but the store did not catch up: %v", err)
	}
	return &shoalpb.JoinResponse{NodeId: resp.NodeId, Manager: true}, nil
}

// requestJoin proves the token to the remote manager over TLS pinned to
// the token's CA digest and returns the node's new identity.
func (d *Daemon) requestJoin(ctx context.Context, remote, digest, token, advertise string) (*shoalpb.JoinClusterResponse, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, JoinTimeout)
	defer cancel()
	conf := identity.PinnedClientConfig(digest, netmux.ProtoGRPC)
	// Dial once by hand first: it tells an unreachable address apart from
	// a manager whose CA does not match the token.
	dialer := &tls.Dialer{NetDialer: &net.Dialer{}, Config: conf}
	probe, err := dialer.DialContext(ctx, "tcp", remote)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			return nil, nil, status.Errorf(codes.Unavailable, "could not reach a manager at %s within %s", remote, JoinTimeout)
		}
		return nil, nil, status.Errorf(codes.Unavailable, "could not join through %s: %v", remote, err)
	}
	probe.Close()
	conn, err := grpc.NewClient("passthrough:///"+remote, grpc.WithTransportCredentials(credentials.NewTLS(conf)))
	if err != nil {
		return nil, nil, status.Errorf(codes.Internal, "dial %s: %v", remote, err)
	}
	defer conn.Close()
	key, keyPEM, err := identity.NewNodeKey()
	if err != nil {
		return nil, nil, status.Errorf(codes.Internal, "create node key: %v", err)
	}
	csr, err := identity.CreateCSR(key)
	if err != nil {
		return nil, nil, status.Errorf(codes.Internal, "create CSR: %v", err)
	}
	advHost, _, _ := net.SplitHostPort(advertise)
	resp, err := shoalpb.NewCAClient(conn).JoinCluster(ctx, &shoalpb.JoinClusterRequest{
		Token: token, CsrDer: csr, Description: d.describe(), AdvertiseAddr: advertise,
		GossipAddr: net.JoinHostPort(advHost, fmt.Sprint(d.cfg.GossipPort)),
	})
	if err != nil {
		if status.Code(err) == codes.DeadlineExceeded {
			return nil, nil, status.Errorf(codes.Unavailable, "the manager at %s did not answer within %s", remote, JoinTimeout)
		}
		return nil, nil, err
	}
	return resp, keyPEM, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Leave takes this node out of the swarm and forgets its swarm state.
func (a *daemonAPI) Leave(ctx context.Context, req *shoalpb.LeaveRequest) (*shoalpb.LeaveResponse, error) {
	d := a.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state == nil {
		return nil, status.Error(codes.FailedPrecondition, errNotInSwarm.Error())
	}
	role, managers := d.state.Role, len(d.state.Managers)
	if d.cl != nil {
		role, managers = d.cl.role(), len(d.cl.managerPeers())
	}
	if role == roleManager {
		if !req.Force {
			return nil, status.Errorf(codes.FailedPrecondition, "You are attempting to leave the swarm on a node that is participating as a manager. Removing this node leaves %d managers out of %d. The safe way to leave a manager is to demote it first with \"shoal node demote\". Use `--force` to ignore this message.", max(managers-1, 0), managers)
		}
		if d.cl != nil {
			d.cl.raftLeave(ctx)
		}
	}
	if d.cl != nil {
		// Like docker, a node that leaves removes its tasks' containers.
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		d.cl.removeAllTasks(rctx)
		cancel()
		d.cl.stop(true)
		d.cl = nil
	}
	d.wipeSwarm()
	d.state = nil
	d.log.Info("left the swarm")
	return &shoalpb.LeaveResponse{}, nil
}

// raftLeave asks the other managers to drop this one from the voters, if
// that keeps their quorum. It is best effort: a forced leave goes on anyway.
func (c *cluster) raftLeave(ctx context.Context) {
	for _, p := range c.managerPeers() {
		if p.NodeId == c.state.NodeID {
			continue
		}
		conn, err := c.pool.Dial(ctx, p.Addr)
		if err != nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = shoalpb.NewRaftMembershipClient(conn).Leave(cctx, &shoalpb.RaftLeaveRequest{})
		cancel()
		if err == nil {
			return
		}
		c.d.log.Warn("leaving the managers", "via", p.Addr, "err", err)
	}
}

// Info describes the node and, on a manager, the swarm.
func (a *daemonAPI) Info(ctx context.Context, _ *shoalpb.InfoRequest) (*shoalpb.InfoResponse, error) {
	d := a.d
	d.mu.Lock()
	defer d.mu.Unlock()
	resp := &shoalpb.InfoResponse{NodeName: d.cfg.NodeName, ServerVersion: d.cfg.Version, DataDir: d.cfg.DataDir, LocalNodeState: "inactive"}
	st := d.state
	if st == nil {
		return resp, nil
	}
	resp.LocalNodeState = "active"
	resp.NodeId, resp.ClusterId = st.NodeID, st.ClusterID
	resp.NodeAddr, _, _ = net.SplitHostPort(st.AdvertiseAddr)
	if d.cl == nil {
		resp.LocalNodeState = "error"
		return resp, nil
	}
	resp.RemoteManagers = d.cl.managerPeers()
	d.cl.smu.Lock()
	resp.HeartbeatPeriodNs = st.HeartbeatPeriodNs
	d.cl.smu.Unlock()
	resp.CertNotAfter = d.cl.creds.Current().Leaf.NotAfter.UnixNano()
	if m := d.cl.mgr; m != nil {
		resp.ControlAvailable = true
		resp.RaftLeader, _ = m.Raft().Leader()
		resp.RaftAppliedIndex = m.Raft().AppliedIndex()
		m.Store().View(func(tx store.ReadTx) {
			for _, n := range tx.Nodes() {
				resp.Nodes++
				if n.GetSpec().GetDesiredRole() == shoalpb.NodeRole_NODE_ROLE_MANAGER {
					resp.Managers++
				}
			}
			resp.CertExpiryNs = tx.Cluster().GetSpec().GetCa().GetNodeCertExpiryNs()
			if c := tx.Cluster(); c != nil {
				nc, err := allocator.ClusterNetworkConfig(c)
				if err != nil {
					return
				}
				cfg := nc.Proto()
				resp.DefaultAddrPool, resp.SubnetSize, resp.DataPathPort = cfg.DefaultAddrPool, cfg.SubnetSize, cfg.DataPathPort
			}
		})
	}
	return resp, nil
}
