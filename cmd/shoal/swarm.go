package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Defaults of the swarm settings, as the daemon applies them.
const (
	defaultHeartbeat        = time.Second
	defaultCertExpiry       = 90 * 24 * time.Hour
	defaultTaskHistoryLimit = 5
	defaultSnapshotInterval = 10000
	defaultSubnetSize       = 24
	defaultDataPathPort     = 4789
)

func newSwarmCmd(g *globalOptions) *cobra.Command {
	return newGroupCmd("swarm", "Manage the swarm",
		newSwarmInitCmd(g),
		newSwarmJoinCmd(g),
		newSwarmJoinTokenCmd(g),
		newSwarmLeaveCmd(g),
		newSwarmUpdateCmd(g),
	)
}

type swarmInitOptions struct {
	advertiseAddr    string
	listenAddr       string
	forceNewCluster  bool
	heartbeat        time.Duration
	certExpiry       time.Duration
	taskHistoryLimit int64
	addrPools        addrPoolValue
	subnetSize       uint32
	dataPathPort     uint32
}

func newSwarmInitCmd(g *globalOptions) *cobra.Command {
	o := &swarmInitOptions{}
	cmd := &cobra.Command{
		Use:   "init [OPTIONS]",
		Short: "Initialize a swarm with this node as its first manager",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSwarmInit(cmd, g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.advertiseAddr, "advertise-addr", "", "Advertised address (IP[:port] or interface; default: the daemon's --advertise-addr)")
	f.StringVar(&o.listenAddr, "listen-addr", "", "Listen address (IP[:port] or interface; default: the daemon's --listen-addr)")
	f.BoolVar(&o.forceNewCluster, "force-new-cluster", false, "Force create a new cluster from this manager's current state")
	f.DurationVar(&o.heartbeat, "dispatcher-heartbeat", defaultHeartbeat, "Dispatcher heartbeat period (ns|us|ms|s|m|h)")
	f.DurationVar(&o.certExpiry, "cert-expiry", defaultCertExpiry, "Validity period for node certificates (ns|us|ms|s|m|h)")
	f.Int64Var(&o.taskHistoryLimit, "task-history-limit", defaultTaskHistoryLimit, "Task history retention limit")
	f.Var(&o.addrPools, "default-addr-pool", "Default address pool in CIDR format, repeatable (default [10.0.0.0/8])")
	f.Uint32Var(&o.subnetSize, "default-addr-pool-mask-length", defaultSubnetSize, "Default address pool subnet mask length")
	f.Uint32Var(&o.dataPathPort, "data-path-port", defaultDataPathPort, "Port number to use for data path traffic (1024 - 49151)")
	return cmd
}

func runSwarmInit(cmd *cobra.Command, g *globalOptions, o *swarmInitOptions) error {
	// Unset network settings are left to the daemon's defaults.
	f := cmd.Flags()
	var subnetSize, dataPathPort uint32
	if f.Changed("default-addr-pool-mask-length") {
		if o.subnetSize < 1 || o.subnetSize > 32 {
			return usageErrorf(cmd, "invalid --default-addr-pool-mask-length %d: must be a prefix length between 1 and 32", o.subnetSize)
		}
		subnetSize = o.subnetSize
	}
	if f.Changed("data-path-port") {
		if o.dataPathPort < 1024 || o.dataPathPort > 49151 {
			return usageErrorf(cmd, "invalid --data-path-port %d: must be between 1024 and 49151", o.dataPathPort)
		}
		dataPathPort = o.dataPathPort
	}
	return g.withClient(func(c *client) error {
		ctx := cmd.Context()
		resp, err := call(ctx, c, c.daemon.Init, &shoalpb.InitRequest{
			AdvertiseAddr:         o.advertiseAddr,
			ListenAddr:            o.listenAddr,
			ForceNewCluster:       o.forceNewCluster,
			DispatcherHeartbeatNs: int64(o.heartbeat),
			CertExpiryNs:          int64(o.certExpiry),
			TaskHistoryLimit:      o.taskHistoryLimit,
			DefaultAddrPool:       o.addrPools.pools,
			SubnetSize:            subnetSize,
			DataPathPort:          dataPathPort,
		})
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		fmt.Fprintf(out, "Swarm initialized: current node (%s) is now a manager.\n\n", resp.GetNodeId())
		if err := printJoinCommand(ctx, c, out, resp.GetNodeId(), "worker"); err != nil {
			return err
		}
		fmt.Fprint(out, "To add a manager to this swarm, run 'shoal swarm join-token manager' and follow the instructions.\n\n")
		return nil
	})
}

// joinToken returns the cluster's join token for role.
func joinToken(ctx context.Context, c *client, role string) (string, error) {
	resp, err := call(ctx, c, c.control.GetCluster, &shoalpb.GetClusterRequest{})
	if err != nil {
		return "", err
	}
	if role == "manager" {
		return resp.GetCluster().GetJoinTokens().GetManager(), nil
	}
	return resp.GetCluster().GetJoinTokens().GetWorker(), nil
}

// printJoinCommand prints the command that joins another node with role,
// through the manager address of nodeID (the node answering).
func printJoinCommand(ctx context.Context, c *client, w io.Writer, nodeID, role string) error {
	token, err := joinToken(ctx, c, role)
	if err != nil {
		return err
	}
	resp, err := call(ctx, c, c.control.GetNode, &shoalpb.GetNodeRequest{NodeRef: nodeID})
	if err != nil {
		return err
	}
	addr := resp.GetNode().GetManagerStatus().GetAddr()
	if addr == "" {
		addr = resp.GetNode().GetAdvertiseAddr()
	}
	fmt.Fprintf(w, "To add a %s to this swarm, run the following command:\n\n    shoal swarm join --token %s %s\n\n", role, token, addr)
	return nil
}

type swarmJoinOptions struct {
	token         string
	advertiseAddr string
	listenAddr    string
}

func newSwarmJoinCmd(g *globalOptions) *cobra.Command {
	o := &swarmJoinOptions{}
	cmd := &cobra.Command{
		Use:   "join [OPTIONS] HOST:PORT",
		Short: "Join a swarm as a node and/or manager",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.token == "" {
				return usageErrorf(cmd, `required flag "--token" not set`)
			}
			return runSwarmJoin(cmd, g, o, args[0])
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.token, "token", "", "Token for entry into the swarm (required)")
	f.StringVar(&o.advertiseAddr, "advertise-addr", "", "Advertised address (IP[:port] or interface; default: the daemon's --advertise-addr)")
	f.StringVar(&o.listenAddr, "listen-addr", "", "Listen address (IP[:port] or interface; default: the daemon's --listen-addr)")
	return cmd
}

func runSwarmJoin(cmd *cobra.Command, g *globalOptions, o *swarmJoinOptions, remote string) error {
	return g.withClient(func(c *client) error {
		resp, err := callTimeoutAfter(cmd.Context(), c, joinTimeout, c.daemon.Join, &shoalpb.JoinRequest{
			RemoteAddr:    remote,
			Token:         o.token,
			AdvertiseAddr: o.advertiseAddr,
			ListenAddr:    o.listenAddr,
		})
		if err != nil {
			return err
		}
		if resp.GetManager() {
			fmt.Fprintln(cmd.OutOrStdout(), "This node joined a swarm as a manager.")
		} else {
			fmt.Fprintln(cmd.OutOrStdout(), "This node joined a swarm as a worker.")
		}
		return nil
	})
}

type joinTokenOptions struct {
	quiet  bool
	rotate bool
}

func newSwarmJoinTokenCmd(g *globalOptions) *cobra.Command {
	o := &joinTokenOptions{}
	cmd := &cobra.Command{
		Use:   "join-token [OPTIONS] (worker|manager)",
		Short: "Manage join tokens",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			role := strings.ToLower(args[0])
			if role != "worker" && role != "manager" {
				return usageErrorf(cmd, "invalid role %q: must be worker or manager", args[0])
			}
			return runJoinToken(cmd, g, o, role)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Only display token")
	f.BoolVar(&o.rotate, "rotate", false, "Rotate join token")
	return cmd
}

func runJoinToken(cmd *cobra.Command, g *globalOptions, o *joinTokenOptions, role string) error {
	return g.withClient(func(c *client) error {
		ctx := cmd.Context()
		out := cmd.OutOrStdout()
		if o.rotate {
			req := &shoalpb.UpdateClusterRequest{RotateWorkerToken: role == "worker", RotateManagerToken: role == "manager"}
			if _, err := call(ctx, c, c.control.UpdateCluster, req); err != nil {
				return err
			}
			if !o.quiet {
				fmt.Fprintf(out, "Successfully rotated %s join token.\n\n", role)
			}
		}
		if o.quiet {
			token, err := joinToken(ctx, c, role)
			if err != nil {
				return err
			}
			fmt.Fprintln(out, token)
			return nil
		}
		self, err := c.selfID(ctx)
		if err != nil {
			return err
		}
		return printJoinCommand(ctx, c, out, self, role)
	})
}

type swarmLeaveOptions struct {
	force bool
}

func newSwarmLeaveCmd(g *globalOptions) *cobra.Command {
	o := &swarmLeaveOptions{}
	cmd := &cobra.Command{
		Use:   "leave [OPTIONS]",
		Short: "Leave the swarm",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(func(c *client) error {
				if _, err := call(cmd.Context(), c, c.daemon.Leave, &shoalpb.LeaveRequest{Force: o.force}); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), "Node left the swarm.")
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&o.force, "force", "f", false, "Force this node to leave the swarm, ignoring warnings")
	return cmd
}

type swarmUpdateOptions struct {
	certExpiry       time.Duration
	heartbeat        time.Duration
	taskHistoryLimit int64
	snapshotInterval uint64
}

func newSwarmUpdateCmd(g *globalOptions) *cobra.Command {
	o := &swarmUpdateOptions{}
	cmd := &cobra.Command{
		Use:   "update [OPTIONS]",
		Short: "Update the swarm",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := swarmUpdateRequest(cmd, o)
			if req == nil {
				return usageErrorf(cmd, "at least one flag must be set")
			}
			return g.withClient(func(c *client) error {
				if _, err := call(cmd.Context(), c, c.control.UpdateCluster, req); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), "Swarm updated.")
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.certExpiry, "cert-expiry", defaultCertExpiry, "Validity period for node certificates (ns|us|ms|s|m|h)")
	f.DurationVar(&o.heartbeat, "dispatcher-heartbeat", defaultHeartbeat, "Dispatcher heartbeat period (ns|us|ms|s|m|h)")
	f.Int64Var(&o.taskHistoryLimit, "task-history-limit", defaultTaskHistoryLimit, "Task history retention limit")
	f.Uint64Var(&o.snapshotInterval, "snapshot-interval", defaultSnapshotInterval, "Number of log entries between Raft snapshots")
	return cmd
}

// swarmUpdateRequest carries only the settings given on the command line,
// or is nil when none was.
func swarmUpdateRequest(cmd *cobra.Command, o *swarmUpdateOptions) *shoalpb.UpdateClusterRequest {
	f := cmd.Flags()
	req := &shoalpb.UpdateClusterRequest{}
	set := false
	if f.Changed("cert-expiry") {
		req.SetCertExpiry, req.CertExpiryNs, set = true, int64(o.certExpiry), true
	}
	if f.Changed("dispatcher-heartbeat") {
		req.SetHeartbeatPeriod, req.HeartbeatPeriodNs, set = true, int64(o.heartbeat), true
	}
	if f.Changed("task-history-limit") {
		req.SetTaskHistoryLimit, req.TaskHistoryLimit, set = true, o.taskHistoryLimit, true
	}
	if f.Changed("snapshot-interval") {
		req.SetSnapshotInterval, req.SnapshotInterval, set = true, o.snapshotInterval, true
	}
	if !set {
		return nil
	}
	return req
}
