package node

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/shoal-project/shoal/overlay"
	"github.com/shoal-project/shoal/overlay/dns"
	"github.com/shoal-project/shoal/overlay/netdb"
	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/worker/exec/docker"
)

// This file turns what the managers allocated (task attachments and
// endpoints, the cluster's network configuration) and what the endpoint
// table holds into the values overlay/, overlay/netdb and overlay/dns take.
// It is pure: no kernel, no gossip.

// overlayConfig is the cluster's network configuration as this node
// needs it, learnt from heartbeats and kept in <overlay dir>/config.json so
// that a restarted daemon brings its data plane up before it reaches a
// manager.
type overlayConfig struct {
	DataPathPort uint16         `json:"data_path_port"`
	Ingress      *ingressConfig `json:"ingress,omitempty"`
	Internal     []string       `json:"internal_networks,omitempty"`
}

// ingressConfig is the routing mesh's network and this node's address on
// it (invalid while the managers have not given it one).
type ingressConfig struct {
	Network overlay.Network `json:"network"`
	Name    string          `json:"name"`
	Addr    netip.Prefix    `json:"addr"`
}

func (c *overlayConfig) equal(o *overlayConfig) bool {
	if c == nil || o == nil {
		return c == o
	}
	if c.DataPathPort != o.DataPathPort || !slices.Equal(c.Internal, o.Internal) {
		return false
	}
	if c.Ingress == nil || o.Ingress == nil {
		return c.Ingress == o.Ingress
	}
	return *c.Ingress == *o.Ingress
}

func (c *overlayConfig) ingressID() string {
	if c == nil || c.Ingress == nil {
		return ""
	}
	return c.Ingress.Network.ID
}

func (c *overlayConfig) internal(networkID string) bool {
	return c != nil && slices.Contains(c.Internal, networkID)
}

// configFromProto checks what a heartbeat said.
func configFromProto(pb *shoalpb.OverlayConfig) (*overlayConfig, error) {
	if pb == nil {
		return nil, errors.New("no overlay configuration")
	}
	if pb.DataPathPort == 0 || pb.DataPathPort > 65535 {
		return nil, fmt.Errorf("data path port %d out of range", pb.DataPathPort)
	}
	c := &overlayConfig{DataPathPort: uint16(pb.DataPathPort)}
	c.Internal = slices.Clone(pb.InternalNetworks)
	slices.Sort(c.Internal)
	if a := pb.Ingress; a != nil {
		n, err := networkOf(a, false)
		if err != nil {
			return nil, fmt.Errorf("ingress network: %w", err)
		}
		ing := &ingressConfig{Network: n, Name: a.NetworkName}
		if len(a.Addresses) > 0 {
			p, err := netip.ParsePrefix(a.Addresses[0])
			if err != nil || !p.Addr().Is4() || p.Bits() != n.Subnet.Bits() || !n.Subnet.Contains(p.Addr()) {
				return nil, fmt.Errorf("ingress network %s: this node's address %q is not in subnet %s", n.ID, a.Addresses[0], n.Subnet)
			}
			ing.Addr = p
		}
		c.Ingress = ing
	}
	return c, nil
}

// networkOf is the network an attachment is on.
func networkOf(a *shoalpb.NetworkAttachment, internal bool) (overlay.Network, error) {
	n := overlay.Network{ID: a.GetNetworkId(), VNI: a.GetVni(), Internal: internal}
	if n.ID == "" {
		return n, errors.New("attachment without a network ID")
	}
	p, err := netip.ParsePrefix(a.GetSubnet())
	if err != nil || !p.Addr().Is4() {
		return n, fmt.Errorf("network %s: subnet %q is not an IPv4 prefix", n.ID, a.GetSubnet())
	}
	n.Subnet = p.Masked()
	if g := a.GetGateway(); g != "" {
		if n.Gateway, err = netip.ParseAddr(g); err != nil {
			// Gateways are stored as addresses; accept a CIDR too.
			gp, perr := netip.ParsePrefix(g)
			if perr != nil {
				return n, fmt.Errorf("network %s: gateway %q is not an address", n.ID, g)
			}
			n.Gateway = gp.Addr()
		}
	}
	return n, nil
}

// taskAttachments are a task's networks and its interfaces on them, in
// the order of Task.networks (eth0, eth1, …).
func taskAttachments(t *shoalpb.Task, cfg *overlayConfig) ([]overlay.Network, []overlay.Attachment, error) {
	var nets []overlay.Network
	var atts []overlay.Attachment
	for _, a := range t.GetNetworks() {
		n, err := networkOf(a, cfg.internal(a.GetNetworkId()))
		if err != nil {
			return nil, nil, fmt.Errorf("task %s: %w", t.GetId(), err)
		}
		if len(a.GetAddresses()) == 0 {
			return nil, nil, fmt.Errorf("task %s: network %s: no address allocated", t.GetId(), n.ID)
		}
		addr, err := netip.ParsePrefix(a.GetAddresses()[0])
		if err != nil {
			return nil, nil, fmt.Errorf("task %s: network %s: address %q: %v", t.GetId(), n.ID, a.GetAddresses()[0], err)
		}
		att := overlay.Attachment{Network: n.ID, Address: addr}
		if m := a.GetMac(); m != "" {
			if att.MAC, err = net.ParseMAC(m); err != nil {
				return nil, nil, fmt.Errorf("task %s: network %s: MAC %q: %v", t.GetId(), n.ID, m, err)
			}
		}
		nets = append(nets, n)
		atts = append(atts, att)
	}
	return nets, atts, nil
}

// macOf is the MAC of an address on an overlay network when none was
// allocated: 02:42 and the address's four bytes, as overlay/ derives it.
func macOf(a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x02, 0x42, b[0], b[1], b[2], b[3]}
}

// taskEndpoints are the endpoint table records of a task's attachments:
// where it is (IP, MAC, this node's VTEP), its names and VIPs, and on the
// ingress network the ports its service publishes on the routing mesh.
func taskEndpoints(t *shoalpb.Task, atts []overlay.Attachment, nodeID string, vtep netip.Addr, ingressID string) ([]netdb.Endpoint, error) {
	name, err := docker.ContainerName(t, nodeID)
	if err != nil {
		return nil, err
	}
	vips := map[string]netip.Addr{}
	if t.GetEndpoint().GetSpec().GetMode() != shoalpb.EndpointSpec_MODE_DNSRR {
		for _, v := range t.GetEndpoint().GetVirtualIps() {
			p, err := netip.ParsePrefix(v.GetAddr())
			if err != nil {
				return nil, fmt.Errorf("task %s: VIP %q on network %s: %v", t.GetId(), v.GetAddr(), v.GetNetworkId(), err)
			}
			vips[v.GetNetworkId()] = p.Addr()
		}
	}
	aliases := map[string][]string{}
	for _, a := range t.GetNetworks() {
		aliases[a.GetNetworkId()] = a.GetAliases()
	}
	var out []netdb.Endpoint
	for _, a := range atts {
		mac := a.MAC
		if mac == nil {
			mac = macOf(a.Address.Addr())
		}
		ep := netdb.Endpoint{
			NetworkID:   a.Network,
			EndpointID:  t.GetId(),
			NodeID:      nodeID,
			IP:          a.Address.Addr(),
			MAC:         mac,
			VTEP:        vtep,
			ServiceID:   t.GetServiceId(),
			ServiceName: t.GetServiceName(),
			TaskName:    name,
			Aliases:     slices.Clone(aliases[a.Network]),
			VIP:         vips[a.Network],
		}
		if a.Network == ingressID {
			ep.Ports = meshPorts(t)
		}
		out = append(out, ep)
	}
	return out, nil
}

// protoOf maps a port's protocol.
func protoOf(p shoalpb.PortConfig_Protocol) overlay.Protocol {
	if p == shoalpb.PortConfig_PROTOCOL_UDP {
		return overlay.UDP
	}
	return overlay.TCP
}

// meshPorts are the ports the task's service publishes on the routing
// mesh.
func meshPorts(t *shoalpb.Task) []netdb.Port {
	var out []netdb.Port
	for _, p := range t.GetEndpoint().GetPorts() {
		if p.GetPublishMode() != shoalpb.PortConfig_PUBLISH_MODE_INGRESS || p.GetPublishedPort() == 0 || p.GetTargetPort() == 0 ||
			p.GetPublishedPort() > 65535 || p.GetTargetPort() > 65535 {
			continue
		}
		out = append(out, netdb.Port{Protocol: uint8(protoOf(p.GetProtocol())), Published: uint16(p.GetPublishedPort()), Target: uint16(p.GetTargetPort())})
	}
	return out
}

// hostPort is a port a task publishes on its own node (mode=host).
type hostPort struct {
	Protocol  overlay.Protocol
	Published uint16
	Target    uint16
}

func hostPorts(t *shoalpb.Task) []hostPort {
	var out []hostPort
	for _, p := range t.GetEndpoint().GetPorts() {
		if p.GetPublishMode() != shoalpb.PortConfig_PUBLISH_MODE_HOST || p.GetPublishedPort() == 0 || p.GetTargetPort() == 0 ||
			p.GetPublishedPort() > 65535 || p.GetTargetPort() > 65535 {
			continue
		}
		out = append(out, hostPort{Protocol: protoOf(p.GetProtocol()), Published: uint16(p.GetPublishedPort()), Target: uint16(p.GetTargetPort())})
	}
	return out
}

// peersOf are the data plane's view of a network's endpoints (records of
// this node are skipped by overlay itself).
func peersOf(eps []netdb.Endpoint) []overlay.Peer {
	out := make([]overlay.Peer, 0, len(eps))
	for _, e := range eps {
		out = append(out, overlay.Peer{IP: e.IP, MAC: e.MAC, VTEP: e.VTEP})
	}
	return out
}

// servicesOf groups a network's endpoints by service into VIPs and their
// backends. Services without a VIP (DNS round robin) have none.
func servicesOf(eps []netdb.Endpoint) []overlay.Service {
	type key struct {
		id  string
		vip netip.Addr
	}
	backends := map[key][]netip.Addr{}
	for _, e := range eps {
		if e.ServiceID == "" || !e.VIP.IsValid() || !e.IP.IsValid() {
			continue
		}
		k := key{e.ServiceID, e.VIP}
		backends[k] = append(backends[k], e.IP)
	}
	out := make([]overlay.Service, 0, len(backends))
	for k, bs := range backends {
		slices.SortFunc(bs, netip.Addr.Compare)
		out = append(out, overlay.Service{ID: k.id, VIP: k.vip, Backends: slices.Compact(bs)})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ID != out[j].ID {
			return out[i].ID < out[j].ID
		}
		return out[i].VIP.Less(out[j].VIP)
	})
	return out
}

// dnsEndpoint is what a network's DNS table keeps of an endpoint.
func dnsEndpoint(e netdb.Endpoint) dns.Endpoint {
	return dns.Endpoint{ID: e.EndpointID, IP: e.IP, TaskName: e.TaskName, ServiceName: e.ServiceName, Aliases: e.Aliases, VIP: e.VIP}
}

// localHostPorts is a host-mode port of one service on this node and the
// local tasks behind it.
type localHostPorts struct {
	service string
	port    hostPort
	tasks   []string
}

// publishedPorts is every port published on this node: the routing mesh's
// (from the ingress network's endpoints on all nodes, when the node has
// its ingress endpoint) and the host-mode ports of its own tasks. When two
// services claim the same port (briefly, while one replaces the other),
// the one with more backends wins and the conflict is reported.
func publishedPorts(ingress []netdb.Endpoint, withMesh bool, host []localHostPorts) ([]overlay.PublishedPort, []string) {
	type key struct {
		proto overlay.Protocol
		port  uint16
	}
	type group struct {
		service string
		target  uint16
		addrs   []netip.Addr
	}
	var conflicts []string
	mesh := map[key][]*group{}
	if withMesh {
		for _, e := range ingress {
			for _, p := range e.Ports {
				k := key{overlay.Protocol(p.Protocol), p.Published}
				var g *group
				for _, c := range mesh[k] {
					if c.service == e.ServiceName && c.target == p.Target {
						g = c
					}
				}
				if g == nil {
					g = &group{service: e.ServiceName, target: p.Target}
					mesh[k] = append(mesh[k], g)
				}
				g.addrs = append(g.addrs, e.IP)
			}
		}
	}
	var out []overlay.PublishedPort
	taken := map[key]string{}
	for k, gs := range mesh {
		sort.Slice(gs, func(i, j int) bool {
			if len(gs[i].addrs) != len(gs[j].addrs) {
				return len(gs[i].addrs) > len(gs[j].addrs)
			}
			if gs[i].service != gs[j].service {
				return gs[i].service < gs[j].service
			}
			return gs[i].target < gs[j].target
		})
		g := gs[0]
		for _, other := range gs[1:] {
			conflicts = append(conflicts, fmt.Sprintf("port %d/%s: service %q (target %d) is also published by %q (target %d)", k.port, k.proto, other.service, other.target, g.service, g.target))
		}
		slices.SortFunc(g.addrs, netip.Addr.Compare)
		out = append(out, overlay.PublishedPort{Service: g.service, Protocol: k.proto, PublishedPort: k.port, TargetPort: g.target,
			Mode: overlay.PublishIngress, Backends: slices.Compact(g.addrs)})
		taken[k] = g.service
	}
	hosts := map[key]*overlay.PublishedPort{}
	for _, h := range host {
		k := key{h.port.Protocol, h.port.Published}
		if s, ok := taken[k]; ok {
			conflicts = append(conflicts, fmt.Sprintf("port %d/%s: host-mode port of service %q is published on the routing mesh by %q", k.port, k.proto, h.service, s))
			continue
		}
		p := hosts[k]
		if p == nil {
			p = &overlay.PublishedPort{Service: h.service, Protocol: k.proto, PublishedPort: k.port, TargetPort: h.port.Target, Mode: overlay.PublishHost}
			hosts[k] = p
		} else if p.Service != h.service || p.TargetPort != h.port.Target {
			conflicts = append(conflicts, fmt.Sprintf("port %d/%s: host-mode port of service %q is also published on this node by %q", k.port, k.proto, h.service, p.Service))
			continue
		}
		p.Tasks = append(p.Tasks, h.tasks...)
	}
	for _, p := range hosts {
		slices.Sort(p.Tasks)
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Protocol != out[j].Protocol {
			return out[i].Protocol < out[j].Protocol
		}
		return out[i].PublishedPort < out[j].PublishedPort
	})
	sort.Strings(conflicts)
	return out, conflicts
}

// nodeEndpointID names this node's own endpoint on the ingress network.
func nodeEndpointID(nodeID string) string { return "node." + nodeID }

// isNodeEndpoint tells a node's ingress endpoint from a task's.
func isNodeEndpoint(id string) bool { return strings.HasPrefix(id, "node.") }
