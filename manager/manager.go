package manager

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/identity"
	"github.com/shoal-project/shoal/manager/allocator"
	"github.com/shoal-project/shoal/manager/controlapi"
	"github.com/shoal-project/shoal/manager/dispatcher"
	"github.com/shoal-project/shoal/manager/logbroker"
	"github.com/shoal-project/shoal/manager/membership"
	"github.com/shoal-project/shoal/manager/orchestrator"
	"github.com/shoal-project/shoal/manager/orchestrator/constraintenforcer"
	"github.com/shoal-project/shoal/manager/orchestrator/global"
	"github.com/shoal-project/shoal/manager/orchestrator/jobs"
	"github.com/shoal-project/shoal/manager/orchestrator/replicated"
	"github.com/shoal-project/shoal/manager/orchestrator/taskreaper"
	"github.com/shoal-project/shoal/manager/orchestrator/update"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/raftstore"
)

// Gossip is the membership view the manager needs from the gossip layer.
type Gossip interface {
	Alive(nodeID string) bool
}

// Dialer returns a client connection (mutual TLS, cached) to another
// manager's cluster address.
type Dialer func(ctx context.Context, addr string) (grpc.ClientConnInterface, error)

// Bootstrap holds the first objects of a new cluster, written once the
// single bootstrapped manager leads.
type Bootstrap struct {
	Cluster *shoalpb.Cluster
	Node    *shoalpb.Node
	// Networks are created with them (the ingress network).
	Networks []*shoalpb.Network
}

// Config configures a Manager.
type Config struct {
	NodeID        string
	AdvertiseAddr string // host:port of the cluster API and Raft
	RaftDir       string
	Transport     raft.Transport
	Logger        *slog.Logger
	Gossip        Gossip
	// GossipDead delivers the IDs of nodes gossip declares dead.
	GossipDead <-chan string
	Dial       Dialer
	// Bootstrap, when set, makes a new single-manager cluster.
	Bootstrap *Bootstrap
	// ForceNewCluster is set after the Raft state was recovered to this
	// manager alone: once leading, it demotes every other manager.
	ForceNewCluster bool
	// RaftTimeouts override hashicorp/raft's defaults when non-zero.
	HeartbeatTimeout, ElectionTimeout time.Duration
}

// Manager is one manager's control plane.
type Manager struct {
	cfg   Config
	log   *slog.Logger
	store *store.Store
	raft  *raftstore.Node
	prop  *raftProposer

	control    *controlapi.Server
	caServer   *membership.CAServer
	raftServer *membership.RaftServer
	dispatcher *dispatcher.Dispatcher
	reconciler *membership.Reconciler
	logs       *logbroker.Broker

	stopOnce sync.Once
}

// New opens the manager's Raft state (bootstrapping it when asked) and
// prepares its services. Call Run to start leading and following.
func New(cfg Config) (*Manager, error) {
	st := store.New()
	rn, err := raftstore.Open(raftstore.Config{
		NodeID:           cfg.NodeID,
		Addr:             cfg.AdvertiseAddr,
		Dir:              cfg.RaftDir,
		Transport:        cfg.Transport,
		Logger:           cfg.Logger.With("component", "raft"),
		HeartbeatTimeout: cfg.HeartbeatTimeout,
		ElectionTimeout:  cfg.ElectionTimeout,
	}, st)
	if err != nil {
		return nil, err
	}
	if cfg.Bootstrap != nil {
		if err := rn.BootstrapSingle(); err != nil {
			rn.Shutdown()
			return nil, fmt.Errorf("bootstrap raft: %w", err)
		}
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, store: st, raft: rn, prop: &raftProposer{raft: rn}}
	deps := membership.Deps{
		NodeID: cfg.NodeID, Store: st, Proposer: m.prop, Raft: rn, Gossip: cfg.Gossip,
		Now: time.Now, NewNodeID: NewNodeID,
	}
	m.control = &controlapi.Server{
		Store: st, Proposer: m.prop, Raft: rn, Gossip: cfg.Gossip, Now: time.Now, NewID: NewNodeID,
		NewJoinToken: func(d string) (string, error) { return identity.GenerateJoinToken(d, rand.Reader) },
	}
	m.caServer = &membership.CAServer{Deps: deps}
	m.raftServer = &membership.RaftServer{Deps: deps}
	m.reconciler = &membership.Reconciler{Deps: deps, Log: cfg.Logger.With("component", "roles")}
	m.dispatcher = &dispatcher.Dispatcher{
		Store: st, Proposer: m.prop, Log: cfg.Logger.With("component", "dispatcher"), Now: time.Now,
		Managers: func() []*shoalpb.Peer { return membership.Managers(st, rn) },
		LeaderID: func() string { id, _ := rn.Leader(); return id },
		Ready:    rn.CaughtUp,
	}
	m.logs = &logbroker.Broker{Store: st, Log: cfg.Logger.With("component", "logbroker")}
	return m, nil
}

// Store is the manager's replicated state (read-only for callers).
func (m *Manager) Store() *store.Store { return m.store }

// Raft is the manager's consensus node.
func (m *Manager) Raft() *raftstore.Node { return m.raft }

// Managers lists the current Raft voters as peers.
func (m *Manager) Managers() []*shoalpb.Peer { return membership.Managers(m.store, m.raft) }

// Register adds the manager's services to a gRPC server.
func (m *Manager) Register(s *grpc.Server) {
	shoalpb.RegisterControlServer(s, m.control)
	shoalpb.RegisterCAServer(s, m.caServer)
	shoalpb.RegisterRaftMembershipServer(s, m.raftServer)
	shoalpb.RegisterDispatcherServer(s, m.dispatcher)
	shoalpb.RegisterLogsServer(s, m.logs)
}

// Run follows leadership changes until ctx ends, running the leader-only
// loops while this manager leads. Cancel ctx and wait for Run to return
// before calling Stop.
func (m *Manager) Run(ctx context.Context) {
	changes, unsub := m.raft.WatchLeader()
	defer unsub()
	var (
		leading    bool
		stopLeader func()
	)
	for {
		select {
		case <-ctx.Done():
			if stopLeader != nil {
				stopLeader()
			}
			return
		case ch, ok := <-changes:
			if !ok {
				if stopLeader != nil {
					stopLeader()
				}
				return
			}
			isLeader := ch.IsLeader
			if isLeader == leading {
				continue
			}
			leading = isLeader
			if leading {
				stopLeader = m.lead(ctx)
			} else if stopLeader != nil {
				stopLeader()
				stopLeader = nil
			}
		}
	}
}

// lead starts the leader-only loops and returns the function stopping them.
func (m *Manager) lead(parent context.Context) func() {
	ctx, cancel := context.WithCancel(parent)
	var wg sync.WaitGroup
	m.log.Info("this manager is the leader")
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := m.establish(ctx); err != nil {
			m.log.Warn("establishing leadership failed", "err", err)
			return
		}
		wg.Add(3)
		go func() { defer wg.Done(); m.reconciler.Run(ctx) }()
		go func() { defer wg.Done(); m.dispatcher.Run(ctx, m.cfg.GossipDead) }()
		go func() {
			defer wg.Done()
			(&schedulingLoop{store: m.store, proposer: m.prop, now: time.Now, log: m.log.With("component", "scheduler")}).run(ctx)
		}()
		for name, loop := range m.orchestrators() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := loop.Run(ctx); err != nil && ctx.Err() == nil {
					m.log.Error("orchestrator stopped", "loop", name, "err", err)
				}
			}()
		}
	}()
	return func() {
		cancel()
		wg.Wait()
		m.log.Info("this manager stopped leading")
	}
}

// runner is a leader-only loop.
type runner interface {
	Run(ctx context.Context) error
}

// orchestrators builds the loops that turn services into tasks.
func (m *Manager) orchestrators() map[string]runner {
	cfg := orchestrator.Config{Store: m.store, Proposer: m.prop, Log: m.log.With("component", "orchestrator"), NewID: NewNodeID}
	loops := map[string]runner{}
	add := func(name string, r runner, err error) {
		if err != nil {
			m.log.Error("orchestrator not started", "loop", name, "err", err)
			return
		}
		loops[name] = r
	}
	r, err := replicated.New(cfg)
	add("replicated", r, err)
	g, err := global.New(cfg)
	add("global", g, err)
	j, err := jobs.New(cfg)
	add("jobs", j, err)
	tr, err := taskreaper.New(cfg)
	add("taskreaper", tr, err)
	ce, err := constraintenforcer.New(cfg)
	add("constraintenforcer", ce, err)
	up, err := update.New(cfg)
	add("updater", up, err)
	al, err := allocator.New(cfg)
	add("allocator", al, err)
	return loops
}

// establish brings the store up to date and writes what a new leader owes.
func (m *Manager) establish(ctx context.Context) error {
	bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := m.raft.Barrier(bctx); err != nil {
		return fmt.Errorf("barrier: %w", err)
	}
	var haveCluster bool
	m.store.View(func(tx store.ReadTx) { haveCluster = tx.Cluster() != nil })
	if b := m.cfg.Bootstrap; b != nil && !haveCluster {
		actions := []*shoalpb.StoreAction{
			{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Cluster{Cluster: b.Cluster}},
			{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Node{Node: b.Node}},
		}
		for _, n := range b.Networks {
			actions = append(actions, &shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Network{Network: n}})
		}
		_, err := m.prop.Propose(bctx, &shoalpb.Command{Actions: actions})
		if err != nil {
			return fmt.Errorf("write initial cluster objects: %w", err)
		}
	}
	if m.cfg.ForceNewCluster {
		if err := m.demoteOthers(bctx); err != nil {
			return err
		}
	}
	return nil
}

// demoteOthers records that every manager but this one left, after the
// Raft configuration was forced down to this manager alone.
func (m *Manager) demoteOthers(ctx context.Context) error {
	var actions []*shoalpb.StoreAction
	now := time.Now().UnixNano()
	m.store.View(func(tx store.ReadTx) {
		for _, n := range tx.Nodes() {
			if n.Id == m.cfg.NodeID || (n.GetSpec().GetDesiredRole() != shoalpb.NodeRole_NODE_ROLE_MANAGER && n.Role != shoalpb.NodeRole_NODE_ROLE_MANAGER) {
				continue
			}
			actions = append(actions,
				&shoalpb.StoreAction{Target: &shoalpb.StoreAction_NodeSpecPatch{NodeSpecPatch: &shoalpb.NodeSpecPatch{NodeId: n.Id, SetDesiredRole: true, DesiredRole: shoalpb.NodeRole_NODE_ROLE_WORKER, UpdatedAt: now}}},
				&shoalpb.StoreAction{Target: &shoalpb.StoreAction_NodeStatusPatch{NodeStatusPatch: &shoalpb.NodeStatusPatch{NodeId: n.Id, SetRole: true, Role: shoalpb.NodeRole_NODE_ROLE_WORKER, UpdatedAt: now}}},
			)
		}
	})
	if len(actions) == 0 {
		return nil
	}
	if _, err := m.prop.Propose(ctx, &shoalpb.Command{Actions: actions}); err != nil {
		return fmt.Errorf("demote the managers left behind: %w", err)
	}
	m.log.Info("forced a new cluster: other managers demoted", "count", len(actions)/2)
	return nil
}

// Stop shuts Raft down.
func (m *Manager) Stop() {
	m.stopOnce.Do(func() {
		if err := m.raft.Shutdown(); err != nil {
			m.log.Warn("raft shutdown", "err", err)
		}
	})
}

// raftProposer replicates commands through Raft.
type raftProposer struct{ raft *raftstore.Node }

// DefaultApplyTimeout bounds a write that has no deadline of its own.
const DefaultApplyTimeout = 10 * time.Second

func (p *raftProposer) Propose(ctx context.Context, cmd *shoalpb.Command) (uint64, error) {
	b, err := proto.Marshal(cmd)
	if err != nil {
		return 0, fmt.Errorf("encode command: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultApplyTimeout)
		defer cancel()
	}
	return p.raft.Apply(ctx, b)
}

var errNoLeader = errors.New(controlapi.NoLeaderMessage)

// NewNodeID returns a random 25-character base-36 node ID.
func NewNodeID() string {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		panic(fmt.Sprintf("read random bytes: %v", err))
	}
	s := n.Text(36)
	for len(s) < 25 {
		s = "0" + s
	}
	return s[:25]
}
