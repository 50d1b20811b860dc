// Command simnodes is a benchmark tool, not part of the product: it joins
// many simulated worker nodes to a swarm from one process. Every node has
// its own key and certificate and its own mutual-TLS connection to one
// manager (picked round-robin), and runs the real worker components — the
// heartbeat agent, the assignment session, the status reporter and a task
// manager with a local task database — over the simulated executor.
//
//	simnodes --join-token TOKEN --manager 198.18.0.1:2377,198.18.0.2:2377 \
//	    --count 1000 --prefix sim --data-dir DIR --ready-file PATH
//
// Once every node has joined and had one heartbeat answered it writes the
// ready file, then runs until SIGTERM or SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/shoal-project/shoal/identity"
	"github.com/shoal-project/shoal/node/netmux"
	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/worker"
	"github.com/shoal-project/shoal/worker/exec/sim"
	"github.com/shoal-project/shoal/worker/taskdb"
)

// joinConcurrency bounds the joins in flight.
const joinConcurrency = 32

// joinTimeout bounds one node's join.
const joinTimeout = 30 * time.Second

// clientKeepalive matches what the daemon's own connections use (the
// managers allow pings once a second).
var clientKeepalive = keepalive.ClientParameters{Time: 2 * time.Second, Timeout: 2 * time.Second, PermitWithoutStream: true}

type managerList []string

func (m *managerList) String() string { return strings.Join(*m, ",") }

func (m *managerList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*m = append(*m, s)
		}
	}
	return nil
}

func main() {
	var (
		token, prefix, dataDir, readyFile string
		managers                          managerList
		count                             int
		verbose                           bool
	)
	flag.StringVar(&token, "join-token", "", "worker join token")
	flag.Var(&managers, "manager", "manager HOST:PORT (repeatable, or a comma-separated list)")
	flag.IntVar(&count, "count", 1000, "number of simulated nodes")
	flag.StringVar(&prefix, "prefix", "sim", "node name prefix (names are PREFIX-0001, ...)")
	flag.StringVar(&dataDir, "data-dir", "", "directory for the nodes' task databases")
	flag.StringVar(&readyFile, "ready-file", "", "file written once every node has joined and beaten once")
	flag.BoolVar(&verbose, "v", false, "log the worker components' debug messages")
	flag.Parse()
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if token == "" || len(managers) == 0 || dataDir == "" || count <= 0 {
		fmt.Fprintln(os.Stderr, "simnodes: --join-token, --manager, --data-dir and a positive --count are required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// Like the daemon, profile the whole run when SHOAL_CPU_PROFILE_DIR is set.
	if dir := os.Getenv("SHOAL_CPU_PROFILE_DIR"); dir != "" {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("simnodes-%d.pprof", os.Getpid())))
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
	}
	if err := run(ctx, log, config{token: token, managers: managers, count: count, prefix: prefix, dataDir: dataDir, readyFile: readyFile}); err != nil {
		log.Error("simnodes failed", "err", err)
		os.Exit(1)
	}
}

type config struct {
	token     string
	managers  []string
	count     int
	prefix    string
	dataDir   string
	readyFile string
}

func run(ctx context.Context, log *slog.Logger, cfg config) error {
	tok, err := identity.ParseJoinToken(cfg.token)
	if err != nil {
		return err
	}
	advIP, err := localIP(cfg.managers[0])
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
		return err
	}

	nodesCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		nodes   []*simNode
		joinErr error
		beaten  atomic.Int64
		allBeat = make(chan struct{})
	)
	onFirstBeat := func() {
		if beaten.Add(1) == int64(cfg.count) {
			close(allBeat)
		}
	}
	start := time.Now()
	sem := make(chan struct{}, joinConcurrency)
	var joins sync.WaitGroup
	for i := 0; i < cfg.count; i++ {
		name := fmt.Sprintf("%s-%04d", cfg.prefix, i+1)
		mgr := cfg.managers[i%len(cfg.managers)]
		joins.Add(1)
		sem <- struct{}{}
		go func() {
			defer joins.Done()
			defer func() { <-sem }()
			if nodesCtx.Err() != nil {
				return
			}
			n, err := join(nodesCtx, name, mgr, tok.Digest, cfg.token, advIP, filepath.Join(cfg.dataDir, name))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if joinErr == nil {
					joinErr = fmt.Errorf("%s: %w", name, err)
					cancel()
				}
				return
			}
			nodes = append(nodes, n)
			n.start(nodesCtx, &wg, log.With("node", name), onFirstBeat)
		}()
	}
	joins.Wait()
	defer func() {
		cancel()
		wg.Wait()
		for _, n := range nodes {
			n.close()
		}
	}()
	if joinErr != nil {
		return joinErr
	}
	joined := time.Since(start)
	select {
	case <-allBeat:
	case <-ctx.Done():
		return nil
	}
	fmt.Fprintf(os.Stderr, "simnodes: %d nodes joined in %.1fs, all beating after %.1fs\n", cfg.count, joined.Seconds(), time.Since(start).Seconds())
	if cfg.readyFile != "" {
		if err := os.WriteFile(cfg.readyFile, []byte(fmt.Sprintf("%d\n", cfg.count)), 0o644); err != nil {
			return err
		}
	}
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "simnodes: stopping")
	return nil
}

// localIP is the address this host reaches addr from.
func localIP(addr string) (string, error) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return "", fmt.Errorf("find the local address towards %s: %w", addr, err)
	}
	defer c.Close()
	host, _, err := net.SplitHostPort(c.LocalAddr().String())
	return host, err
}

// simNode is one simulated worker.
type simNode struct {
	name    string
	id      string
	manager string
	advAddr string
	conn    *grpc.ClientConn
	db      *taskdb.DB
	exec    *sim.Executor
	desc    *shoalpb.NodeDescription
}

func description(name string) *shoalpb.NodeDescription {
	return &shoalpb.NodeDescription{
		Hostname:      name,
		Platform:      &shoalpb.Platform{Os: runtime.GOOS, Architecture: "x86_64"},
		Resources:     &shoalpb.Resources{NanoCpus: 4e9, MemoryBytes: 8 << 30},
		EngineVersion: "sim",
	}
}

// join makes the node's key and CSR, joins through mgr over TLS pinned to
// the token's CA digest, and opens the node's mutual-TLS connection.
func join(ctx context.Context, name, mgr, digest, token, advIP, dir string) (*simNode, error) {
	ctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	key, keyPEM, err := identity.NewNodeKey()
	if err != nil {
		return nil, err
	}
	csr, err := identity.CreateCSR(key)
	if err != nil {
		return nil, err
	}
	pinned, err := grpc.NewClient("passthrough:///"+mgr, grpc.WithTransportCredentials(credentials.NewTLS(identity.PinnedClientConfig(digest, netmux.ProtoGRPC))))
	if err != nil {
		return nil, err
	}
	defer pinned.Close()
	adv := net.JoinHostPort(advIP, "2377")
	desc := description(name)
	resp, err := shoalpb.NewCAClient(pinned).JoinCluster(ctx, &shoalpb.JoinClusterRequest{
		Token: token, CsrDer: csr, Description: desc, AdvertiseAddr: adv,
		GossipAddr: net.JoinHostPort(advIP, "7946"),
	}, grpc.WaitForReady(true))
	if err != nil {
		return nil, fmt.Errorf("join through %s: %w", mgr, err)
	}
	creds, err := identity.NewCredentials(identity.Material{CertPEM: resp.CertPem, KeyPEM: keyPEM, RootPEM: resp.RootCaPem})
	if err != nil {
		return nil, fmt.Errorf("node certificate: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	db, err := taskdb.Open(filepath.Join(dir, "tasks.db"))
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient("passthrough:///"+mgr,
		grpc.WithTransportCredentials(credentials.NewTLS(creds.ClientConfig(netmux.ProtoGRPC))),
		grpc.WithKeepaliveParams(clientKeepalive))
	if err != nil {
		db.Close()
		return nil, err
	}
	return &simNode{
		name: name, id: resp.NodeId, manager: mgr, advAddr: adv, conn: conn, db: db, desc: desc,
		exec: sim.New(sim.Config{NodeID: resp.NodeId, NodeName: name, Description: desc}),
	}, nil
}

// dial hands every component the node's one connection: a simulated node
// talks to the manager it joined through, which forwards to the leader.
func (n *simNode) dial(context.Context, string) (grpc.ClientConnInterface, error) {
	return n.conn, nil
}

func (n *simNode) managers() []*shoalpb.Peer {
	return []*shoalpb.Peer{{Addr: n.manager}}
}

// start runs the node's agent, assignment session, reporter and task
// manager until ctx ends.
func (n *simNode) start(ctx context.Context, wg *sync.WaitGroup, log *slog.Logger, onFirstBeat func()) {
	rep := &worker.Reporter{Logger: log, Dial: n.dial, Managers: n.managers}
	tm := &worker.TaskManager{Logger: log, Executor: n.exec, DB: n.db, Reporter: rep, Now: time.Now}
	if err := tm.Start(ctx); err != nil {
		log.Error("task manager", "err", err)
		return
	}
	var once sync.Once
	agent := worker.NewAgent(worker.Config{
		Logger:        log,
		Dial:          n.dial,
		Managers:      n.managers,
		Describe:      func() *shoalpb.NodeDescription { return n.desc },
		AdvertiseAddr: n.advAddr,
		OnResponse:    func(*shoalpb.HeartbeatResponse) { once.Do(onFirstBeat) },
		OnRemoved: func(err error) {
			log.Error("the managers refuse this node", "err", err)
		},
		InitialPeriod: time.Second,
	})
	wg.Add(4)
	go func() { defer wg.Done(); agent.Run(ctx) }()
	go func() { defer wg.Done(); rep.Run(ctx) }()
	go func() {
		defer wg.Done()
		worker.RunAssignments(ctx, worker.AssignmentsConfig{
			Logger:     log,
			Dial:       n.dial,
			Managers:   n.managers,
			OnComplete: tm.Complete,
			OnChanges:  tm.Changes,
		})
	}()
	go func() { defer wg.Done(); <-ctx.Done(); tm.Wait() }()
}

func (n *simNode) close() {
	n.conn.Close()
	if err := n.db.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		fmt.Fprintf(os.Stderr, "simnodes: close %s: %v\n", n.name, err)
	}
}
