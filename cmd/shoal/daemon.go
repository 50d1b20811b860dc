package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/node"
)

type daemonOptions struct {
	dataDir       string
	nodeName      string
	advertiseAddr string
	listenAddr    string
	gossipPort    int
	raftTimeout   time.Duration
	egressSubnet  string
	resolvConf    string
	logLevel      *enumValue
}

func newDaemonCmd(g *globalOptions) *cobra.Command {
	o := &daemonOptions{logLevel: newEnum("log level", "info", "debug", "info", "warn", "error")}
	cmd := &cobra.Command{
		Use:   "daemon [OPTIONS]",
		Short: "Run the Shoal daemon",
		Long: "Run the Shoal daemon: serve the control socket given by --host and, once\n" +
			"the node belongs to a swarm, take part in it. It runs until SIGINT or SIGTERM.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := runDaemon(cmd, g, o); err != nil {
				return fmt.Errorf("shoal daemon: %w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data-dir", node.DefaultDataDir, "Directory of the node's persistent state")
	f.StringVar(&o.nodeName, "node-name", "", "Name of this node in the swarm (default: the hostname)")
	f.StringVar(&o.advertiseAddr, "advertise-addr", "", "Default advertised address (IP[:port] or interface) for swarm init and join")
	f.StringVar(&o.listenAddr, "listen-addr", node.DefaultListenAddr, "Default listen address (IP[:port] or interface) for swarm init and join")
	f.IntVar(&o.gossipPort, "gossip-port", 7946, "Port of the node's gossip endpoint")
	f.DurationVar(&o.raftTimeout, "raft-timeout", node.DefaultRaftTimeout, "Raft heartbeat and election timeout of this node when it is a manager")
	f.StringVar(&o.egressSubnet, "egress-subnet", node.DefaultEgressSubnet, `Local subnet of the bridge tasks on overlay networks reach outside through ("none": no egress)`)
	f.StringVar(&o.resolvConf, "resolv-conf", node.DefaultResolvConf, "File whose name servers and search domains tasks' DNS resolvers use for names outside the swarm")
	f.Var(o.logLevel, "log-level", "Logging level (debug, info, warn, error)")
	return cmd
}

func runDaemon(cmd *cobra.Command, g *globalOptions, o *daemonOptions) error {
	if _, err := socketPath(g.host); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: logLevels[o.logLevel.value]}))
	d, err := node.New(node.Config{
		DataDir:       o.dataDir,
		Host:          g.host,
		NodeName:      o.nodeName,
		AdvertiseAddr: o.advertiseAddr,
		ListenAddr:    o.listenAddr,
		GossipPort:    o.gossipPort,
		RaftTimeout:   o.raftTimeout,
		EgressSubnet:  o.egressSubnet,
		ResolvConf:    o.resolvConf,
		Logger:        logger,
		Version:       version,
		GitCommit:     buildCommit(),
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if dir := os.Getenv(cpuProfileEnv); dir != "" {
		end, err := startCPUProfile(dir, "shoal")
		if err != nil {
			return err
		}
		defer end()
	}
	logger.Info("starting shoal daemon", "version", version, "commit", buildCommit(), "pid", os.Getpid())
	if err := d.Run(ctx); err != nil {
		return err
	}
	logger.Info("shoal daemon stopped")
	return nil
}

// cpuProfileEnv names a directory; when it is set, the daemon writes a CPU
// profile of its whole run there (shoal-<pid>.pprof) when it stops on a
// signal. It is for measuring the daemon under load (scripts/bench).
const cpuProfileEnv = "SHOAL_CPU_PROFILE_DIR"

func startCPUProfile(dir, prefix string) (end func(), err error) {
	path := filepath.Join(dir, fmt.Sprintf("%s-%d.pprof", prefix, os.Getpid()))
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cpuProfileEnv, err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: start CPU profile %s: %w", cpuProfileEnv, path, err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
