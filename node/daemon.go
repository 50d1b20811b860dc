package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/identity"
	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/raftstore"
)

// Defaults of the daemon's flags.
const (
	DefaultDataDir    = "/var/lib/shoal"
	DefaultHost       = "unix:///run/shoal/shoal.sock"
	DefaultListenAddr = "0.0.0.0:2377"
	DefaultPort       = 2377
	// DefaultRaftTimeout is half of hashicorp/raft's 1 s default: with 1 s,
	// a follower notices a dead leader after 1–3 s and failover takes about
	// 2.4 s here; with 500 ms it takes about half (docs/BENCHMARKS.md).
	DefaultRaftTimeout = 500 * time.Millisecond
	// MinRaftTimeout and MaxRaftTimeout bound --raft-timeout.
	MinRaftTimeout = 100 * time.Millisecond
	MaxRaftTimeout = 10 * time.Second
)

// Config configures the daemon.
type Config struct {
	DataDir       string
	Host          string // unix:///path of the control socket
	NodeName      string
	AdvertiseAddr string // default advertise address (IP or IP:port)
	ListenAddr    string // default listen address
	GossipPort    int
	// RaftTimeout is the Raft heartbeat and election timeout of this
	// node's manager (0: DefaultRaftTimeout).
	RaftTimeout time.Duration
	// EgressSubnet is the local subnet of the egress bridge tasks on
	// overlay networks reach outside through ("": DefaultEgressSubnet;
	// "none": no egress, and no host-mode published ports).
	EgressSubnet string
	// ResolvConf is the file tasks' resolvers take their upstream name
	// servers and search domains from ("": DefaultResolvConf).
	ResolvConf string
	Logger     *slog.Logger
	Version    string
	GitCommit  string
}

// Daemon is one node's long-running process.
type Daemon struct {
	cfg    Config
	log    *slog.Logger
	layout layout
	ovOpts overlayOptions

	// mu serialises lifecycle operations (init, join, leave, role
	// changes) and guards state and cl.
	mu    sync.Mutex
	state *State
	cl    *cluster

	sock     net.Listener
	sockSrv  *grpc.Server
	stopOnce sync.Once
}

// New prepares a daemon from its data directory. It refuses to start when
// the directory or its swarm state cannot be read, and never wipes state.
func New(cfg Config) (*Daemon, error) {
	if cfg.DataDir == "" {
		cfg.DataDir = DefaultDataDir
	}
	if cfg.Host == "" {
		cfg.Host = DefaultHost
	}
	if cfg.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("node name: %w", err)
		}
		cfg.NodeName = h
	}
	if cfg.GossipPort == 0 {
		cfg.GossipPort = 7946
	}
	if cfg.RaftTimeout == 0 {
		cfg.RaftTimeout = DefaultRaftTimeout
	}
	if cfg.RaftTimeout < MinRaftTimeout || cfg.RaftTimeout > MaxRaftTimeout {
		return nil, fmt.Errorf("invalid raft timeout %s: must be between %s and %s", cfg.RaftTimeout, MinRaftTimeout, MaxRaftTimeout)
	}
	ovOpts, err := parseOverlayOptions(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", cfg.DataDir, err)
	}
	if _, err := os.ReadDir(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("data directory %s is not readable: %w", cfg.DataDir, err)
	}
	d := &Daemon{cfg: cfg, log: cfg.Logger, layout: layout{root: cfg.DataDir}, ovOpts: ovOpts}
	st, err := loadState(d.layout)
	if err != nil {
		return nil, err
	}
	if st != nil {
		if _, err := identity.Load(d.layout.certDir()); err != nil {
			return nil, fmt.Errorf("node certificates: %w; refusing to start", err)
		}
		if st.Role == roleManager {
			ok, err := raftstore.HasState(d.layout.raftDir())
			if err != nil {
				return nil, fmt.Errorf("raft state: %w; refusing to start", err)
			}
			if !ok {
				return nil, fmt.Errorf("this node is a manager but its raft state in %s is missing; refusing to start", d.layout.raftDir())
			}
		}
	}
	d.state = st
	return d, nil
}

// Run serves the control socket and, when the node belongs to a swarm,
// resumes its membership. It returns when ctx ends.
func (d *Daemon) Run(ctx context.Context) error {
	if err := d.listenSocket(); err != nil {
		return err
	}
	d.mu.Lock()
	if d.state != nil {
		d.log.Info("resuming swarm membership", "node", d.state.NodeID, "role", d.state.Role)
		if err := d.startCluster(d.state, nil); err != nil {
			d.mu.Unlock()
			d.shutdown()
			return fmt.Errorf("resume swarm membership: %w", err)
		}
	}
	d.mu.Unlock()
	errc := make(chan error, 1)
	go func() { errc <- d.sockSrv.Serve(d.sock) }()
	d.log.Info("daemon ready", "socket", d.cfg.Host, "data_dir", d.cfg.DataDir, "node_name", d.cfg.NodeName)
	select {
	case <-ctx.Done():
		d.shutdown()
		return nil
	case err := <-errc:
		d.shutdown()
		return err
	}
}

func (d *Daemon) shutdown() {
	d.stopOnce.Do(func() {
		if d.sockSrv != nil {
			d.sockSrv.Stop()
		}
		d.mu.Lock()
		if d.cl != nil {
			d.cl.stop(false)
			d.cl = nil
		}
		d.mu.Unlock()
		if p, err := socketPath(d.cfg.Host); err == nil {
			os.Remove(p)
		}
	})
}

func socketPath(host string) (string, error) {
	p, ok := strings.CutPrefix(host, "unix://")
	if !ok || p == "" {
		return "", fmt.Errorf("invalid --host %q: only unix:///path sockets are supported", host)
	}
	return p, nil
}

func (d *Daemon) listenSocket() error {
	p, err := socketPath(d.cfg.Host)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("socket directory: %w", err)
	}
	if fi, err := os.Lstat(p); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return fmt.Errorf("%s exists and is not a socket; refusing to replace it", p)
		}
		if c, err := net.DialTimeout("unix", p, time.Second); err == nil {
			c.Close()
			return fmt.Errorf("another daemon is serving %s", p)
		}
		os.Remove(p)
	}
	ln, err := net.Listen("unix", p)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", p, err)
	}
	if err := os.Chmod(p, 0o660); err != nil {
		ln.Close()
		return fmt.Errorf("chmod %s: %w", p, err)
	}
	d.sock = ln
	d.sockSrv = grpc.NewServer(
		grpc.ForceServerCodec(proxyCodec{}),
		grpc.UnknownServiceHandler(d.proxyToManager),
	)
	shoalpb.RegisterDaemonServer(d.sockSrv, &daemonAPI{d: d})
	return nil
}

// Messages mirroring docker's for calls a node cannot answer.
const (
	msgNotInSwarm = `This node is not a swarm manager. Use "shoal swarm init" or "shoal swarm join" to connect this node to swarm and try again.`
	msgWorker     = "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager."
)

// proxyToManager relays any cluster API call from the local socket to this
// node's manager over the cluster port (so the manager authorises it like
// any other caller, with this node's certificate).
func (d *Daemon) proxyToManager(_ any, ss grpc.ServerStream) error {
	method, ok := grpc.MethodFromServerStream(ss)
	if !ok {
		return status.Error(codes.Internal, "no method")
	}
	d.mu.Lock()
	cl := d.cl
	d.mu.Unlock()
	if cl == nil {
		return status.Error(codes.FailedPrecondition, msgNotInSwarm)
	}
	if cl.mgr == nil {
		return status.Error(codes.FailedPrecondition, msgWorker)
	}
	conn, err := cl.pool.Dial(ss.Context(), cl.state.AdvertiseAddr)
	if err != nil {
		return status.Errorf(codes.Unavailable, "reach the local manager: %v", err)
	}
	return relay(ss, conn, method)
}

var errAlreadyInSwarm = status.Error(codes.FailedPrecondition, `This node is already part of a swarm. Use "shoal swarm leave" to leave this swarm and join another one.`)

var errNotInSwarm = errors.New("This node is not part of a swarm")
