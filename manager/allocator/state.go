package allocator

import (
	"fmt"
	"log/slog"
	"net/netip"
	"sort"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// state is what the loop knows of the allocations: every network's pool,
// the published ports, and who holds which address and port. It is built
// from the store at the start of every term and kept in step with it.
type state struct {
	log      *slog.Logger
	networks map[string]*netState
	ports    *Ports
	// tasks and services map holders to what they hold, so exactly that
	// is freed when they let go of it.
	tasks    map[string][]held
	services map[string]*serviceHold
	nodes    map[string][]held
}

type netState struct {
	net  *shoalpb.Network
	pool *AddrPool
}

func (n *netState) name() string { return n.net.GetSpec().GetName() }

// held is an address held in a network.
type held struct {
	network string
	addr    netip.Addr
}

// serviceHold is what a service's endpoint holds.
type serviceHold struct {
	vips  []held
	ports []PortKey
}

func (h *serviceHold) vipOn(network string) (netip.Addr, bool) {
	if h == nil {
		return netip.Addr{}, false
	}
	for _, v := range h.vips {
		if v.network == network {
			return v.addr, true
		}
	}
	return netip.Addr{}, false
}

func (h *serviceHold) holdsPort(k PortKey) bool {
	if h == nil {
		return false
	}
	for _, p := range h.ports {
		if p == k {
			return true
		}
	}
	return false
}

func newState(log *slog.Logger) *state {
	return &state{
		log:      log,
		networks: map[string]*netState{},
		ports:    NewPorts(),
		tasks:    map[string][]held{},
		services: map[string]*serviceHold{},
		nodes:    map[string][]held{},
	}
}

// addNetwork makes the pool of a network; a network whose stored
// addressing does not parse gets none (and allocations on it fail).
func (s *state) addNetwork(n *shoalpb.Network) {
	ipam, err := ParseStoredIPAM(n.GetIpam())
	if err != nil {
		s.log.Warn("network has no usable addressing; nothing can be allocated on it", "network", n.GetSpec().GetName(), "id", n.GetId(), "err", err)
		return
	}
	s.networks[n.Id] = &netState{net: n, pool: NewAddrPool(ipam)}
}

// ingress returns the ingress network, if there is one.
func (s *state) ingress() *netState {
	var out *netState
	for _, n := range s.networks {
		if n.net.GetSpec().GetIngress() && (out == nil || n.net.Id < out.net.Id) {
			out = n
		}
	}
	return out
}

func (s *state) release(h held) {
	if n := s.networks[h.network]; n != nil {
		n.pool.Release(h.addr)
	}
}

// releaseTask frees what task id holds; it reports whether it held any.
func (s *state) releaseTask(id string) bool {
	hs, ok := s.tasks[id]
	for _, h := range hs {
		s.release(h)
	}
	delete(s.tasks, id)
	return ok && len(hs) > 0
}

// releaseService frees what service id's endpoint holds.
func (s *state) releaseService(id string) bool {
	h := s.services[id]
	if h == nil {
		return false
	}
	s.releaseServiceHold(id, h)
	delete(s.services, id)
	return len(h.vips) > 0 || len(h.ports) > 0
}

func (s *state) releaseServiceHold(id string, h *serviceHold) {
	for _, v := range h.vips {
		s.release(v)
	}
	for _, k := range h.ports {
		s.ports.Release(k, id)
	}
}

// holdEndpoint records what a stored service endpoint holds. A VIP or port
// another holder has (the store holds conflicting allocations) is logged
// and left to that holder; the service is re-planned and gets others.
func (s *state) holdEndpoint(svc *shoalpb.Service) {
	ep := svc.GetEndpoint()
	if ep == nil {
		return
	}
	h := &serviceHold{}
	for _, v := range ep.GetVirtualIps() {
		n := s.networks[v.GetNetworkId()]
		if n == nil {
			continue
		}
		p, err := netip.ParsePrefix(v.GetAddr())
		if err == nil {
			err = n.pool.Reserve(p.Addr())
		}
		if err != nil {
			s.log.Warn("service VIP cannot be kept", "service", svc.GetSpec().GetName(), "network", n.name(), "vip", v.GetAddr(), "err", err)
			continue
		}
		h.vips = append(h.vips, held{network: n.net.Id, addr: p.Addr()})
	}
	for _, p := range ep.GetPorts() {
		if p.GetPublishMode() != shoalpb.PortConfig_PUBLISH_MODE_INGRESS || p.GetPublishedPort() == 0 {
			continue
		}
		k := PortKey{Protocol: p.GetProtocol(), Port: p.GetPublishedPort()}
		if err := s.ports.Reserve(k, svc.Id); err != nil {
			s.log.Warn("published port cannot be kept", "service", svc.GetSpec().GetName(), "port", k.String(), "err", err)
			continue
		}
		h.ports = append(h.ports, k)
	}
	if len(h.vips) > 0 || len(h.ports) > 0 {
		s.services[svc.Id] = h
	}
}

// holdTask records the addresses a stored task holds.
func (s *state) holdTask(t *shoalpb.Task) {
	var hs []held
	for _, a := range t.GetNetworks() {
		n := s.networks[a.GetNetworkId()]
		if n == nil {
			continue
		}
		for _, addr := range a.GetAddresses() {
			p, err := netip.ParsePrefix(addr)
			if err == nil {
				err = n.pool.Reserve(p.Addr())
			}
			if err != nil {
				s.log.Warn("task address cannot be kept", "task", t.Id, "network", n.name(), "address", addr, "err", err)
				continue
			}
			hs = append(hs, held{network: n.net.Id, addr: p.Addr()})
		}
	}
	if len(hs) > 0 {
		s.tasks[t.Id] = hs
	}
}

// holdNode records the addresses a stored node holds.
func (s *state) holdNode(n *shoalpb.Node) {
	var hs []held
	for _, a := range n.GetAttachments() {
		ns := s.networks[a.GetNetworkId()]
		if ns == nil {
			continue
		}
		p, err := netip.ParsePrefix(a.GetAddr())
		if err == nil {
			err = ns.pool.Reserve(p.Addr())
		}
		if err != nil {
			s.log.Warn("node address cannot be kept", "node", n.Id, "network", ns.name(), "address", a.GetAddr(), "err", err)
			continue
		}
		hs = append(hs, held{network: ns.net.Id, addr: p.Addr()})
	}
	if len(hs) > 0 {
		s.nodes[n.Id] = hs
	}
}

// releaseNode frees what node id holds.
func (s *state) releaseNode(id string) bool {
	hs, ok := s.nodes[id]
	for _, h := range hs {
		s.release(h)
	}
	delete(s.nodes, id)
	return ok && len(hs) > 0
}

// nodeAttachments returns the attachments node id should have: an address
// on the ingress network, kept when it holds one, allocated otherwise.
// What it holds elsewhere (a removed ingress network) is freed.
func (s *state) nodeAttachments(id string) ([]*shoalpb.NodeAttachment, error) {
	ing := s.ingress()
	var keep []held
	for _, h := range s.nodes[id] {
		if ing != nil && h.network == ing.net.Id {
			keep = append(keep, h)
		} else {
			s.release(h)
		}
	}
	s.nodes[id] = keep
	if ing == nil {
		delete(s.nodes, id)
		return nil, nil
	}
	if len(keep) == 0 {
		addr, err := ing.pool.Allocate()
		if err != nil {
			delete(s.nodes, id)
			return nil, fmt.Errorf("network %s: %w", ing.name(), err)
		}
		keep = []held{{network: ing.net.Id, addr: addr}}
		s.nodes[id] = keep
	}
	bits := ing.pool.IPAM().Subnet.Bits()
	return []*shoalpb.NodeAttachment{{NetworkId: ing.net.Id, Addr: netip.PrefixFrom(keep[0].addr, bits).String()}}, nil
}

// HoldsAddresses reports whether a task still needs the addresses it was
// given: it was allocated (it is past NEW), has not stopped, and is either
// wanted or may still run (it reached a node).
func HoldsAddresses(t *shoalpb.Task) bool {
	st := t.GetStatus().GetState()
	switch {
	case st == shoalpb.TaskState_TASK_STATE_NEW, st > shoalpb.TaskState_TASK_STATE_RUNNING:
		return false
	case st < shoalpb.TaskState_TASK_STATE_ASSIGNED && t.GetDesiredState() > shoalpb.TaskState_TASK_STATE_RUNNING:
		return false
	}
	return true
}

// attachment describes address addr of network n for a task.
func attachment(n *netState, addr netip.Addr, aliases []string) *shoalpb.NetworkAttachment {
	ipam := n.pool.IPAM()
	return &shoalpb.NetworkAttachment{
		NetworkId:   n.net.Id,
		Vni:         n.net.GetVni(),
		Subnet:      ipam.Subnet.String(),
		Gateway:     ipam.Gateway.String(),
		Addresses:   []string{netip.PrefixFrom(addr, ipam.Subnet.Bits()).String()},
		Mac:         MACFromIP(addr),
		Aliases:     append([]string(nil), aliases...),
		NetworkName: n.name(),
	}
}

// allocateTask gives task t an address on every network of its spec, and
// on the ingress network when its service publishes ports on the routing
// mesh. On failure it frees what it took and says which network failed.
func (s *state) allocateTask(t *shoalpb.Task, svc *shoalpb.Service) ([]*shoalpb.NetworkAttachment, []held, error) {
	var atts []*shoalpb.NetworkAttachment
	var hs []held
	seen := map[string]bool{}
	add := func(id string, aliases []string) error {
		if seen[id] {
			return nil
		}
		seen[id] = true
		n := s.networks[id]
		if n == nil {
			return fmt.Errorf("network %s not found", id)
		}
		addr, err := n.pool.Allocate()
		if err != nil {
			return fmt.Errorf("network %s: %w", n.name(), err)
		}
		hs = append(hs, held{network: id, addr: addr})
		atts = append(atts, attachment(n, addr, aliases))
		return nil
	}
	err := func() error {
		for _, c := range t.GetSpec().GetNetworks() {
			if err := add(c.GetTarget(), c.GetAliases()); err != nil {
				return err
			}
		}
		if k, ok := ingressPort(svc.GetEndpoint().GetPorts()); ok {
			ing := s.ingress()
			if ing == nil {
				return fmt.Errorf("port %s cannot be published on the routing mesh: the swarm has no ingress network", k)
			}
			return add(ing.net.Id, nil)
		}
		return nil
	}()
	if err != nil {
		for _, h := range hs {
			s.release(h)
		}
		return nil, nil, err
	}
	return atts, hs, nil
}

// ingressPort returns the first port published on the routing mesh.
func ingressPort(ports []*shoalpb.PortConfig) (PortKey, bool) {
	for _, p := range ports {
		if p.GetPublishMode() == shoalpb.PortConfig_PUBLISH_MODE_INGRESS {
			return PortKey{Protocol: p.GetProtocol(), Port: p.GetPublishedPort()}, true
		}
	}
	return PortKey{}, false
}

func sortedIDs(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
