package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// infoView is what `shoal info --format` templates see, shaped after
// docker's system info.
type infoView struct {
	Name          string
	ServerVersion string
	DataRootDir   string
	Swarm         swarmInfo
}

type swarmInfo struct {
	NodeID           string
	NodeAddr         string
	LocalNodeState   string
	ControlAvailable bool
	Error            string
	RemoteManagers   []peerInfo
	Nodes            int
	Managers         int
	Cluster          clusterInfo `json:",omitzero"`
	RaftLeader       string      `json:",omitempty"`
	RaftAppliedIndex uint64      `json:",omitempty"`
	// NodeCertificateExpiry is when this node's certificate expires.
	NodeCertificateExpiry time.Time `json:",omitzero"`
}

type peerInfo struct {
	NodeID string
	Addr   string
}

type clusterInfo struct {
	ID   string
	Spec clusterSpecInfo
	// DefaultAddrPool, SubnetSize and DataPathPort are the overlay network
	// settings fixed at swarm init (shown by managers).
	DefaultAddrPool []string `json:",omitempty"`
	SubnetSize      uint32   `json:",omitempty"`
	DataPathPort    uint32   `json:",omitempty"`
}

type clusterSpecInfo struct {
	Dispatcher struct {
		HeartbeatPeriod time.Duration
	}
	CAConfig struct {
		NodeCertExpiry time.Duration
	}
}

func newInfoView(r *shoalpb.InfoResponse) infoView {
	v := infoView{
		Name:          r.GetNodeName(),
		ServerVersion: r.GetServerVersion(),
		DataRootDir:   r.GetDataDir(),
		Swarm: swarmInfo{
			NodeID:           r.GetNodeId(),
			NodeAddr:         r.GetNodeAddr(),
			LocalNodeState:   r.GetLocalNodeState(),
			ControlAvailable: r.GetControlAvailable(),
			Error:            r.GetError(),
			Nodes:            int(r.GetNodes()),
			Managers:         int(r.GetManagers()),
			RaftLeader:       r.GetRaftLeader(),
			RaftAppliedIndex: r.GetRaftAppliedIndex(),
		},
	}
	if v.Swarm.LocalNodeState == "" {
		v.Swarm.LocalNodeState = "inactive"
	}
	for _, p := range r.GetRemoteManagers() {
		v.Swarm.RemoteManagers = append(v.Swarm.RemoteManagers, peerInfo{NodeID: p.GetNodeId(), Addr: p.GetAddr()})
	}
	if r.GetClusterId() != "" {
		v.Swarm.Cluster.ID = r.GetClusterId()
		v.Swarm.Cluster.Spec.Dispatcher.HeartbeatPeriod = time.Duration(r.GetHeartbeatPeriodNs())
		v.Swarm.Cluster.Spec.CAConfig.NodeCertExpiry = time.Duration(r.GetCertExpiryNs())
		v.Swarm.Cluster.DefaultAddrPool = r.GetDefaultAddrPool()
		v.Swarm.Cluster.SubnetSize = r.GetSubnetSize()
		v.Swarm.Cluster.DataPathPort = r.GetDataPathPort()
	}
	if n := r.GetCertNotAfter(); n != 0 {
		v.Swarm.NodeCertificateExpiry = time.Unix(0, n).UTC()
	}
	return v
}

type infoOptions struct {
	format string
}

func newInfoCmd(g *globalOptions) *cobra.Command {
	o := &infoOptions{}
	cmd := &cobra.Command{
		Use:   "info [OPTIONS]",
		Short: "Display information about the node and its swarm",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runInfo(cmd, g, o)
		},
	}
	cmd.Flags().StringVarP(&o.format, "format", "f", "", "Format the output using the given Go template")
	return cmd
}

func runInfo(cmd *cobra.Command, g *globalOptions, o *infoOptions) error {
	var tmpl *templateFormat
	if o.format != "" {
		var err error
		if tmpl, err = parseFormat(o.format); err != nil {
			return err
		}
	}
	return g.withClient(func(c *client) error {
		resp, err := call(cmd.Context(), c, c.daemon.Info, &shoalpb.InfoRequest{})
		if err != nil {
			return err
		}
		v := newInfoView(resp)
		if tmpl != nil {
			return tmpl.execute(cmd.OutOrStdout(), v)
		}
		printInfo(cmd.OutOrStdout(), v)
		return nil
	})
}

func printInfo(w io.Writer, v infoView) {
	s := v.Swarm
	fmt.Fprintln(w, "Client:")
	fmt.Fprintf(w, " Version: %s\n", version)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Server:")
	fmt.Fprintf(w, " Server Version: %s\n", v.ServerVersion)
	fmt.Fprintf(w, " Swarm: %s\n", s.LocalNodeState)
	if s.LocalNodeState != "inactive" && s.LocalNodeState != "" {
		if s.NodeID != "" {
			fmt.Fprintf(w, "  NodeID: %s\n", s.NodeID)
		}
		if s.Error != "" {
			fmt.Fprintf(w, "  Error: %s\n", s.Error)
		}
		fmt.Fprintf(w, "  Is Manager: %t\n", s.ControlAvailable)
		if s.Cluster.ID != "" {
			fmt.Fprintf(w, "  ClusterID: %s\n", s.Cluster.ID)
		}
		if s.ControlAvailable {
			fmt.Fprintf(w, "  Managers: %d\n", s.Managers)
			fmt.Fprintf(w, "  Nodes: %d\n", s.Nodes)
			if c := s.Cluster; len(c.DefaultAddrPool) > 0 {
				fmt.Fprintf(w, "  Default Address Pool: %s\n", strings.Join(c.DefaultAddrPool, " "))
				fmt.Fprintf(w, "  SubnetSize: %d\n", c.SubnetSize)
				fmt.Fprintf(w, "  Data Path Port: %d\n", c.DataPathPort)
			}
			fmt.Fprintln(w, "  Raft:")
			leader := s.RaftLeader
			if leader == "" {
				leader = "none"
			}
			fmt.Fprintf(w, "   Leader: %s\n", leader)
			fmt.Fprintf(w, "   Applied Index: %d\n", s.RaftAppliedIndex)
		}
		if hb := s.Cluster.Spec.Dispatcher.HeartbeatPeriod; hb > 0 {
			fmt.Fprintln(w, "  Dispatcher:")
			fmt.Fprintf(w, "   Heartbeat Period: %s\n", humanDuration(hb))
		}
		if exp := s.Cluster.Spec.CAConfig.NodeCertExpiry; s.ControlAvailable && exp > 0 {
			fmt.Fprintln(w, "  CA Configuration:")
			fmt.Fprintf(w, "   Expiry Duration: %s\n", humanDuration(exp))
		}
		if s.NodeAddr != "" {
			fmt.Fprintf(w, "  Node Address: %s\n", s.NodeAddr)
		}
		if len(s.RemoteManagers) > 0 {
			addrs := make([]string, 0, len(s.RemoteManagers))
			for _, p := range s.RemoteManagers {
				addrs = append(addrs, p.Addr)
			}
			sort.Strings(addrs)
			fmt.Fprintln(w, "  Manager Addresses:")
			for _, a := range addrs {
				fmt.Fprintf(w, "   %s\n", a)
			}
		}
	}
	fmt.Fprintf(w, " Name: %s\n", v.Name)
	fmt.Fprintf(w, " Data Root Dir: %s\n", v.DataRootDir)
}
