package overlay

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
)

// DefaultDataPathPort is the VXLAN UDP port used when Config.DataPathPort is 0.
const DefaultDataPathPort = 4789

// vxlanOverhead is what VXLAN over IPv4 adds to every frame: outer IPv4 (20),
// UDP (8), VXLAN (8) and inner Ethernet (14) headers.
const vxlanOverhead = 50

// ErrClosed is returned by every method of a Manager after Close or Teardown.
var ErrClosed = errors.New("overlay: manager closed")

// Config configures a node's Manager.
type Config struct {
	// StateDir holds the bind mounts of the sandbox namespaces
	// (StateDir/netns/ov-<vni>). Required. Several nodes on one machine
	// must use different directories.
	StateDir string
	// NetNSPath is the node's network namespace: where the VXLAN sockets,
	// the egress bridge, the ingress endpoint and the node's nftables
	// tables live. Empty means the namespace of the thread calling New
	// (the daemon's own). Tests pass a bind mount or /proc/<pid>/fd/<n>.
	NetNSPath string
	// DataPathAddr is the node's VXLAN source address (the VTEP address
	// other nodes send to). It must be an address of the node's namespace.
	DataPathAddr netip.Addr
	// DataPathPort is the VXLAN UDP port (default 4789). Every node of a
	// cluster must use the same.
	DataPathPort uint16
	// MTU is the MTU of the underlay interface; overlay interfaces get
	// MTU-50. Zero means the MTU of the interface holding DataPathAddr.
	MTU int
	// EgressSubnet is the local subnet of the egress bridge, from which
	// tasks get their second address; the bridge takes the first host
	// address. Its zero value disables egress: tasks then have no default
	// route and host-mode publishing is unavailable. It must not overlap any
	// overlay subnet or the node's networks.
	EgressSubnet netip.Prefix
	// EgressBridge names the egress bridge (default "shoal_gwbridge").
	EgressBridge string
	// IngressLink names the node's veth into the ingress network sandbox
	// (default "shoal_ing0").
	IngressLink string
	// Logger receives the Manager's log; nil discards it.
	Logger *slog.Logger
}

// Network describes an overlay network as a node sees it. One subnet, one
// VNI.
type Network struct {
	// ID is the cluster's network ID; every other method names the
	// network by it.
	ID string
	// VNI is the VXLAN network identifier (1 to 2^24-1), unique in the
	// cluster. It also names the sandbox (ov-<vni>).
	VNI uint32
	// Subnet is the network's IPv4 subnet. Task addresses must be in it.
	Subnet netip.Prefix
	// Gateway, when valid, is put on the sandbox's br0. Tasks do not route
	// through it (their default route goes through the egress bridge); it
	// makes the sandbox itself reachable from tasks.
	Gateway netip.Addr
	// Internal networks give their tasks no egress. A task gets an egress
	// interface when at least one of its networks is not internal.
	Internal bool
}

// Attachment is one interface of a task on an overlay network.
type Attachment struct {
	// Network is the ID of a network passed to EnsureNetwork.
	Network string
	// Address is the task's address with the subnet's prefix length.
	Address netip.Prefix
	// MAC is the interface's MAC; nil means 02:42 followed by the four
	// bytes of the address. Peers on other nodes must use the same.
	MAC net.HardwareAddr
}

// Task is a task's network namespace and the overlay interfaces it gets:
// Attachments[i] becomes eth<i>; the egress interface, if any, comes last.
type Task struct {
	// ID identifies the task; it is recorded on the node side of its
	// interfaces, so a restarted Manager finds them.
	ID string
	// NetNSPath is the task's network namespace. Either it or PID is set.
	NetNSPath string
	// PID is a process in the task's network namespace (used when
	// NetNSPath is empty). The namespace is opened once, by AttachTask, and
	// held until DetachTask.
	PID         int
	Attachments []Attachment
}

// Peer is an endpoint on another node: an address on an overlay network,
// its MAC and the data-path address of the node that has it.
type Peer struct {
	IP   netip.Addr
	MAC  net.HardwareAddr
	VTEP netip.Addr
}

func (p Peer) String() string {
	return fmt.Sprintf("%s (%s) at %s", p.IP, p.MAC, p.VTEP)
}

// Service is a service's virtual IP on one network and the addresses (on
// that network) of its tasks. Every port and protocol of the VIP is
// forwarded, as Swarm does.
type Service struct {
	ID       string
	VIP      netip.Addr
	Backends []netip.Addr
}

// Protocol is a transport protocol of a published port.
type Protocol uint8

// Protocols of published ports.
const (
	TCP Protocol = 6
	UDP Protocol = 17
)

func (p Protocol) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return fmt.Sprintf("proto-%d", uint8(p))
}

// PublishMode says how a published port reaches tasks.
type PublishMode int

const (
	// PublishIngress: the port is open on every node and forwarded, through
	// the ingress network, to any of the service's tasks; the tasks see the
	// node's ingress address as the client's.
	PublishIngress PublishMode = iota
	// PublishHost: the port is open only on nodes running a task of the
	// service and forwarded to the local tasks through the egress bridge;
	// the tasks see the client's own address.
	PublishHost
)

func (m PublishMode) String() string {
	if m == PublishHost {
		return "host"
	}
	return "ingress"
}

// PublishedPort is one published port of a service on this node.
type PublishedPort struct {
	// Service names the service, for errors and logs.
	Service       string
	Protocol      Protocol
	PublishedPort uint16
	// TargetPort is the port the tasks listen on.
	TargetPort uint16
	Mode       PublishMode
	// Backends (ingress mode) are the addresses on the ingress network of
	// all the service's tasks, on every node. None means connections are
	// refused.
	Backends []netip.Addr
	// Tasks (host mode) are the IDs of the service's tasks attached on this
	// node (through AttachTask, with egress). None means refused.
	Tasks []string
}

func (p PublishedPort) String() string {
	return fmt.Sprintf("%d/%s (service %q, %s mode)", p.PublishedPort, p.Protocol, p.Service, p.Mode)
}

// Desired is what Reconcile keeps: every other sandbox and task interface
// found on the node is removed.
type Desired struct {
	Networks []Network
	// Tasks are the IDs of the tasks that should stay attached.
	Tasks []string
}

// macFromIP derives the default MAC of an IPv4 address: 02:42:a:b:c:d.
func macFromIP(a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x02, 0x42, b[0], b[1], b[2], b[3]}
}
