package overlay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/shoal-project/shoal/overlay/internal/nsutil"
	"github.com/vishvananda/netlink"
)

// The routing mesh: the node's own namespace has an endpoint on the
// ingress network (the IngressLink veth into the ingress sandbox, with a
// per-node ingress address), and published ports on the node's addresses
// are DNATed straight to the service's tasks' addresses on the ingress
// network, masqueraded behind the node's ingress address so replies come
// back through this node. nft DNAT translates the port, so no per-task
// redirect and no separate ingress namespace are needed.

const ingressSandboxEnd = "shv-ingress"

type portKey struct {
	proto Protocol
	port  uint16
}

func (k portKey) String() string { return fmt.Sprintf("%d/%s", k.port, k.proto) }

// EnsureIngress ensures the ingress network's sandbox (as EnsureNetwork)
// and the node's endpoint on it: IngressLink in the node's namespace with
// addr, a MAC derived from it and the overlay MTU. Other nodes must learn
// addr as a peer of the ingress network (with this node's data-path
// address as VTEP), as they do for tasks. Idempotent.
func (m *Manager) EnsureIngress(ctx context.Context, n Network, addr netip.Prefix) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if m.ingress != nil && m.ingress.network != n.ID {
		return fmt.Errorf("overlay: ingress: already on network %s, not %s", m.ingress.network, n.ID)
	}
	if err := m.ensureNetworkLocked(n); err != nil {
		return err
	}
	if !addr.Addr().Is4() || addr.Bits() != n.Subnet.Bits() || !n.Subnet.Contains(addr.Addr()) {
		return fmt.Errorf("overlay: ingress: address %v is not in subnet %s of network %s", addr, n.Subnet, n.ID)
	}
	sb := m.sandboxes[n.VNI]
	br, err := sb.h.LinkByName(bridgeName)
	if err != nil {
		return fmt.Errorf("overlay: ingress network %s: look up %s: %w", n.ID, bridgeName, err)
	}
	mac := macFromIP(addr.Addr())
	name := m.cfg.IngressLink
	tl, err := m.ensureVethPair(sb.h, m.node, m.nodeNS, ingressSandboxEnd, name, ingressAlias, m.ovMTU, mac)
	if err != nil {
		return fmt.Errorf("overlay: ingress network %s: %w", n.ID, err)
	}
	sl, err := sb.h.LinkByName(ingressSandboxEnd)
	if err != nil {
		return fmt.Errorf("overlay: ingress network %s: look up %s: %w", n.ID, ingressSandboxEnd, err)
	}
	if sl.Attrs().MasterIndex != br.Attrs().Index {
		if err := sb.h.LinkSetMaster(sl, br); err != nil {
			return fmt.Errorf("overlay: ingress network %s: attach %s to %s: %w", n.ID, ingressSandboxEnd, bridgeName, err)
		}
	}
	if err := sb.h.LinkSetUp(sl); err != nil {
		return fmt.Errorf("overlay: ingress network %s: set %s up: %w", n.ID, ingressSandboxEnd, err)
	}
	if err := configureTaskSide(m.node, tl, m.ovMTU, mac, addr); err != nil {
		return fmt.Errorf("overlay: ingress network %s: %s: %w", n.ID, name, err)
	}
	// Loose reverse-path filtering: a strict setting on the node would
	// otherwise drop mesh traffic on multi-homed nodes.
	if err := nsutil.Sysctl(m.nodeNS, "net/ipv4/conf/"+name+"/rp_filter", "2"); err != nil {
		return fmt.Errorf("overlay: ingress network %s: %w", n.ID, err)
	}
	m.ingress = &ingressState{network: n.ID, addr: addr}
	if m.publishedSet {
		if err := m.writeMeshTable(m.resolvePublished(m.published, nil)); err != nil {
			return fmt.Errorf("overlay: routing mesh: %w", err)
		}
	}
	return nil
}

const ingressAlias = "shoal ingress"

// RemoveIngress undoes EnsureIngress: the node's endpoint on the ingress
// network goes (IngressLink and its sandbox end, and with them the
// endpoint's address, its connected route and neighbours), the mesh table
// is rewritten without its ingress rules and ingress-mode ports (their
// reservations close; host-mode ports stay), and the node's conntrack
// entries of flows into or out of the ingress subnet are deleted. The
// network's sandbox stays, as after EnsureNetwork, since tasks may still
// be attached to it: RemoveNetwork removes it. EnsureIngress may then put
// the node on another network. Idempotent; it also removes an
// IngressLink a previous Manager left. A mesh table a previous Manager
// left is only replaced by the first SetPublishedPorts, as always.
func (m *Manager) RemoveIngress(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	var subnets []netip.Prefix
	var sb *sandbox
	if m.ingress != nil {
		if n := m.networks[m.ingress.network]; n != nil {
			subnets = append(subnets, n.Subnet)
			sb = m.sandboxes[n.VNI]
		}
	}
	// The link's own subnets: those of an endpoint a previous Manager
	// made are not known otherwise.
	if l, err := m.node.LinkByName(m.cfg.IngressLink); err == nil {
		addrs, err := m.node.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			return fmt.Errorf("overlay: ingress: list addresses of %s: %w", m.cfg.IngressLink, err)
		}
		for _, a := range addrs {
			if p, ok := ipv4Prefix(a.IPNet); ok && !slices.Contains(subnets, p.Masked()) {
				subnets = append(subnets, p.Masked())
			}
		}
	}
	had := m.ingress != nil
	m.ingress = nil

	var errs []error
	// The mesh table first, so no new flow is sent towards the network.
	var kept []PublishedPort
	for _, p := range m.published {
		if p.Mode == PublishHost {
			kept = append(kept, p)
		}
	}
	if m.publishedSet && (had || len(kept) != len(m.published)) {
		targets := m.resolvePublished(kept, nil)
		if err := m.writeMeshTable(targets); err != nil {
			errs = append(errs, fmt.Errorf("overlay: routing mesh: %w", err))
		} else {
			keep := map[portKey]bool{}
			for _, t := range targets {
				keep[t.key] = true
			}
			for k := range m.meshFlows {
				if !keep[k] {
					delete(m.meshFlows, k)
				}
			}
			for k, r := range m.reserved {
				if !keep[k] {
					r.Close()
					delete(m.reserved, k)
				}
			}
			m.published = kept
		}
	}
	errs = append(errs, m.deleteIngressLink())
	if sb != nil && sb.h != nil {
		if l, err := sb.h.LinkByName(ingressSandboxEnd); err == nil {
			if err := sb.h.LinkDel(l); err != nil && !isNotFound(err) {
				errs = append(errs, fmt.Errorf("overlay: ingress: delete %s: %w", ingressSandboxEnd, err))
			}
		}
	}
	// Last: the link is gone, so no packet recreates an entry.
	errs = append(errs, m.flushNodeConntrack(subnets))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if had || len(subnets) > 0 {
		m.log.Info("removed the ingress endpoint", "subnets", subnets)
	}
	return nil
}

// ipv4Prefix converts an IPv4 net.IPNet.
func ipv4Prefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(n.IP.To4())
	ones, bits := n.Mask.Size()
	if !ok || bits != 32 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(ip, ones), true
}

func (m *Manager) deleteIngressLink() error {
	l, err := m.node.LinkByName(m.cfg.IngressLink)
	if err != nil {
		return nil
	}
	if err := m.node.LinkDel(l); err != nil && !isNotFound(err) {
		return fmt.Errorf("overlay: delete %s: %w", m.cfg.IngressLink, err)
	}
	return nil
}

// meshTarget is a published port with its DNAT targets resolved.
type meshTarget struct {
	PublishedPort
	key   portKey
	addrs []netip.Addr
}

// SetPublishedPorts makes ports the complete set of ports published on this
// node, rewriting the node's mesh table in one transaction, deleting
// conntrack entries of flows to targets that are gone, and reserving each
// port with a listening socket in the node's namespace so no local process
// can take it (connections that reach that socket — to 127.0.0.1, which is
// not forwarded — are closed at once). Ingress mode needs EnsureIngress
// first; host mode needs egress and the tasks attached. A host-mode task
// that is not attached here is left out of its port and reported in the
// error, as are ports whose reservation fails; everything else is still
// programmed.
func (m *Manager) SetPublishedPorts(ctx context.Context, ports []PublishedPort) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	seen := map[portKey]bool{}
	for _, p := range ports {
		k := portKey{p.Protocol, p.PublishedPort}
		switch {
		case p.Protocol != TCP && p.Protocol != UDP:
			return fmt.Errorf("overlay: published port %s: unsupported protocol", p)
		case p.PublishedPort == 0 || p.TargetPort == 0:
			return fmt.Errorf("overlay: published port %s: port 0", p)
		case seen[k]:
			return fmt.Errorf("overlay: published port %s: published twice", p)
		case p.Protocol == UDP && p.PublishedPort == m.cfg.DataPathPort:
			return fmt.Errorf("overlay: published port %s: it is the data-path port", p)
		case p.Mode == PublishIngress && m.ingress == nil:
			return fmt.Errorf("overlay: published port %s: the node has no ingress endpoint (EnsureIngress)", p)
		case p.Mode == PublishHost && !m.cfg.EgressSubnet.IsValid():
			return fmt.Errorf("overlay: published port %s: host mode needs egress", p)
		}
		for _, b := range p.Backends {
			if !b.Is4() {
				return fmt.Errorf("overlay: published port %s: backend %v is not IPv4", p, b)
			}
		}
		seen[k] = true
	}
	var errs []error
	targets := m.resolvePublished(ports, &errs)
	if err := m.writeMeshTable(targets); err != nil {
		return fmt.Errorf("overlay: routing mesh: %w", err)
	}
	m.published = slices.Clone(ports)
	firstTime := !m.publishedSet
	m.publishedSet = true

	// Conntrack: flows to targets no longer behind their port.
	old := m.meshFlows
	m.meshFlows = map[portKey]map[netip.Addr]bool{}
	for _, t := range targets {
		m.meshFlows[t.key] = addrSet(t.addrs)
	}
	sweep := firstTime
	for k, as := range old {
		for a := range as {
			if !m.meshFlows[k][a] {
				sweep = true
			}
		}
	}
	if sweep {
		f := staleMeshFlows{ports: map[portKey]map[netip.Addr]bool{}, nets: m.overlayNodePrefixes()}
		for k, as := range m.meshFlows {
			f.ports[k] = as
		}
		for k := range old {
			if _, ok := f.ports[k]; !ok {
				f.ports[k] = nil
			}
		}
		if err := deleteFlows(m.nodeNS, f); err != nil {
			errs = append(errs, fmt.Errorf("overlay: routing mesh: %w", err))
		}
	}

	// Reservations.
	for k, l := range m.reserved {
		if !seen[k] {
			l.Close()
			delete(m.reserved, k)
		}
	}
	for _, t := range targets {
		r, ok := m.reserved[t.key]
		if !ok {
			var err error
			if r, err = reservePort(m.nodeNS, t.key); err != nil {
				errs = append(errs, fmt.Errorf("overlay: reserve published port %s: %w", t.PublishedPort, err))
				continue
			}
			m.reserved[t.key] = r
		}
		aps := make([]netip.AddrPort, len(t.addrs))
		for i, a := range t.addrs {
			aps[i] = netip.AddrPortFrom(a, t.TargetPort)
		}
		r.setTargets(aps)
	}
	return errors.Join(errs...)
}

// resolvePublished turns ports into DNAT targets: ingress-mode backends, or
// the egress addresses of host-mode tasks. Unknown tasks are reported into
// errs when it is not nil.
func (m *Manager) resolvePublished(ports []PublishedPort, errs *[]error) []meshTarget {
	out := make([]meshTarget, 0, len(ports))
	for _, p := range ports {
		t := meshTarget{PublishedPort: p, key: portKey{p.Protocol, p.PublishedPort}}
		if p.Mode == PublishHost {
			for _, id := range p.Tasks {
				a, ok := m.egressAddr(id)
				if !ok {
					if errs != nil {
						*errs = append(*errs, fmt.Errorf("overlay: published port %s: task %s has no egress interface on this node", p, id))
					}
					continue
				}
				t.addrs = append(t.addrs, a)
			}
		} else {
			t.addrs = slices.Clone(p.Backends)
		}
		slices.SortFunc(t.addrs, netip.Addr.Compare)
		t.addrs = slices.Compact(t.addrs)
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].key.proto != out[j].key.proto {
			return out[i].key.proto < out[j].key.proto
		}
		return out[i].key.port < out[j].key.port
	})
	return out
}

// writeMeshTable replaces the node's mesh table with:
//
//	table ip shoal-mesh {
//	  map published { type inet_proto . inet_service : verdict; elements = { tcp . 8080 : goto pub-tcp-8080, … } }
//	  chain prerouting { type nat hook prerouting priority dstnat
//	    fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @published }
//	  chain output { type nat hook output priority dstnat; (the same) }       # clients on the node
//	  chain pub-tcp-8080 { dnat to numgen random mod N map { 0 : T0, … } : 80 }
//	  chain pub-tcp-9090 {                                                   # host mode
//	    iifname "shg*" return; iifname <egress bridge> return                  # the node's tasks: proxy
//	    dnat to … }
//	  set unserved { type inet_proto . inet_service; elements = { ports with no target } }
//	  chain reject-unserved { type filter hook input priority filter
//	    meta l4proto . th dport @unserved reject }
//	  # with an ingress endpoint:
//	  chain postrouting { type nat hook postrouting priority srcnat
//	    oifname <ing> ct status dnat masquerade }
//	  chain forward { type filter hook forward priority filter
//	    oifname <ing> ct status dnat accept; iifname <ing> ct status dnat accept
//	    oifname <ing> drop; iifname <ing> drop }
//	  chain input { type filter hook input priority filter
//	    iifname <ing> ct state established,related accept; iifname <ing> drop }
//	}
//
// The forward and input rules keep the ingress network a one-way door:
// only forwarded published-port flows cross between it and the node.
func (m *Manager) writeMeshTable(targets []meshTarget) error {
	b, err := newTableBatch(m.nodeNS, meshTableName)
	if err != nil {
		return err
	}
	var elems, unserved []nftables.SetElement
	for _, t := range targets {
		key := append([]byte{byte(t.key.proto), 0, 0, 0}, binaryutil.BigEndian.PutUint16(t.key.port)...)
		key = append(key, 0, 0)
		if len(t.addrs) == 0 {
			unserved = append(unserved, nftables.SetElement{Key: key})
			continue
		}
		name := fmt.Sprintf("pub-%s-%d", t.key.proto, t.key.port)
		ch := b.chain(name)
		if t.Mode == PublishHost {
			// Seen from the bridge (br_netfilter: iifname is the task's
			// port) or routed from it.
			b.rule(ch, &expr.Meta{Key: expr.MetaKeyIIFNAME, Register: reg1}, cmp(expr.CmpOpEq, []byte(egressVethPx)), verdict(expr.VerdictReturn))
			b.rule(ch, cat(matchIfname(expr.MetaKeyIIFNAME, expr.CmpOpEq, m.cfg.EgressBridge), one(verdict(expr.VerdictReturn)))...)
		}
		ex, err := b.dnatExprs(t.addrs, t.TargetPort)
		if err != nil {
			return err
		}
		b.rule(ch, ex...)
		elems = append(elems, nftables.SetElement{Key: key, VerdictData: gotoVerdict(name)})
	}
	portType := nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
	loadPort := one(
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
		&expr.Payload{DestRegister: reg32, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
	)
	if len(elems) > 0 {
		pm := &nftables.Set{Name: "published", IsMap: true, Concatenation: true, KeyType: portType, DataType: nftables.TypeVerdict}
		if err := b.set(pm, elems); err != nil {
			return err
		}
		dispatch := cat(matchLocalDaddr(), loadPort, one(&expr.Lookup{SourceRegister: reg1, SetName: pm.Name, SetID: pm.ID, IsDestRegSet: true}))
		pre := b.baseChain("prerouting", nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest)
		b.rule(pre, dispatch...)
		out := b.baseChain("output", nftables.ChainTypeNAT, nftables.ChainHookOutput, nftables.ChainPriorityNATDest)
		b.rule(out, dispatch...)
	}
	if len(unserved) > 0 {
		set := &nftables.Set{Name: "unserved", Concatenation: true, KeyType: portType}
		if err := b.set(set, unserved); err != nil {
			return err
		}
		ch := b.baseChain("reject-unserved", nftables.ChainTypeFilter, nftables.ChainHookInput, nftables.ChainPriorityFilter)
		b.rule(ch, cat(loadPort, one(&expr.Lookup{SourceRegister: reg1, SetName: set.Name, SetID: set.ID}, reject()))...)
	}
	if m.ingress != nil {
		ing := m.cfg.IngressLink
		post := b.baseChain("postrouting", nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)
		b.rule(post, cat(matchIfname(expr.MetaKeyOIFNAME, expr.CmpOpEq, ing), matchCtBits(expr.CtKeySTATUS, ctStatusDNAT), one(&expr.Masq{}))...)
		fwd := b.baseChain("forward", nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter)
		for _, k := range []expr.MetaKey{expr.MetaKeyOIFNAME, expr.MetaKeyIIFNAME} {
			b.rule(fwd, cat(matchIfname(k, expr.CmpOpEq, ing), matchCtBits(expr.CtKeySTATUS, ctStatusDNAT), one(verdict(expr.VerdictAccept)))...)
		}
		for _, k := range []expr.MetaKey{expr.MetaKeyOIFNAME, expr.MetaKeyIIFNAME} {
			b.rule(fwd, cat(matchIfname(k, expr.CmpOpEq, ing), one(verdict(expr.VerdictDrop)))...)
		}
		in := b.baseChain("input", nftables.ChainTypeFilter, nftables.ChainHookInput, nftables.ChainPriorityFilter)
		b.rule(in, cat(matchIfname(expr.MetaKeyIIFNAME, expr.CmpOpEq, ing),
			matchCtBits(expr.CtKeySTATE, ctStateEstablished|ctStateRelated), one(verdict(expr.VerdictAccept)))...)
		b.rule(in, cat(matchIfname(expr.MetaKeyIIFNAME, expr.CmpOpEq, ing), one(verdict(expr.VerdictDrop)))...)
	}
	return b.flush()
}

// overlayNodePrefixes are the node-side subnets mesh flows are DNATed into.
func (m *Manager) overlayNodePrefixes() []netip.Prefix {
	var out []netip.Prefix
	if m.cfg.EgressSubnet.IsValid() {
		out = append(out, m.cfg.EgressSubnet)
	}
	if m.ingress != nil {
		if n := m.networks[m.ingress.network]; n != nil {
			out = append(out, n.Subnet)
		}
	}
	return out
}

// staleMeshFlows matches conntrack entries in the node's namespace of flows
// to a published port DNATed (into nets) to a target no longer behind
// that port. A nil target set means the port is gone.
type staleMeshFlows struct {
	ports map[portKey]map[netip.Addr]bool
	nets  []netip.Prefix
}

func (s staleMeshFlows) MatchConntrackFlow(f *netlink.ConntrackFlow) bool {
	k := portKey{Protocol(f.Forward.Protocol), f.Forward.DstPort}
	targets, known := s.ports[k]
	if !known {
		return false
	}
	dst, ok1 := netip.AddrFromSlice(f.Forward.DstIP.To4())
	to, ok2 := netip.AddrFromSlice(f.Reverse.SrcIP.To4())
	if !ok1 || !ok2 || dst == to {
		return false // not DNATed
	}
	in := false
	for _, p := range s.nets {
		if p.Contains(to) {
			in = true
		}
	}
	return in && !targets[to]
}

// SetClusterPeers sets the data-path addresses of the cluster's nodes: from
// then on, the node's namespace drops packets to the data-path port from
// any other source (VXLAN is unauthenticated). Until the first call nothing
// is filtered. Call it whenever membership changes.
func (m *Manager) SetClusterPeers(ctx context.Context, addrs []netip.Addr) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	var clean []netip.Addr
	for _, a := range addrs {
		if !a.Is4() {
			return fmt.Errorf("overlay: cluster peer %v is not IPv4", a)
		}
		clean = append(clean, a)
	}
	slices.SortFunc(clean, netip.Addr.Compare)
	clean = slices.Compact(clean)
	if err := m.writeVxlanTable(clean); err != nil {
		return fmt.Errorf("overlay: data-path filter: %w", err)
	}
	m.clusterPeers = clean
	m.clusterPeerOK = true
	return nil
}

// writeVxlanTable replaces the node's data-path filter with:
//
//	table ip shoal-vxlan {
//	  set peers { type ipv4_addr; elements = { … } }
//	  chain input { type filter hook input priority filter - 10
//	    udp dport <data-path port> ip saddr != @peers drop }
//	}
func (m *Manager) writeVxlanTable(peers []netip.Addr) error {
	b, err := newTableBatch(m.nodeNS, vxlanTableName)
	if err != nil {
		return err
	}
	elems := make([]nftables.SetElement, 0, len(peers))
	for _, a := range peers {
		a4 := a.As4()
		elems = append(elems, nftables.SetElement{Key: a4[:]})
	}
	set := &nftables.Set{Name: "peers", KeyType: nftables.TypeIPAddr}
	if err := b.set(set, elems); err != nil {
		return err
	}
	in := b.baseChain("input", nftables.ChainTypeFilter, nftables.ChainHookInput, nftables.ChainPriorityRef(-10))
	b.rule(in, cat(matchL4Proto(UDP), one(
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		cmp(expr.CmpOpEq, binaryutil.BigEndian.PutUint16(m.cfg.DataPathPort)),
		loadSaddr(reg1),
		&expr.Lookup{SourceRegister: reg1, SetName: set.Name, SetID: set.ID, Invert: true},
		verdict(expr.VerdictDrop),
	))...)
	return b.flush()
}

// deleteNodeTables removes this package's tables from the node's namespace.
func (m *Manager) deleteNodeTables() error {
	var errs []error
	for _, t := range []string{meshTableName, vxlanTableName, egressTableName} {
		if err := deleteTable(m.nodeNS, t); err != nil {
			errs = append(errs, fmt.Errorf("overlay: %w", err))
		}
	}
	return errors.Join(errs...)
}

// flushNodeConntrack deletes the node's conntrack entries of flows into or
// out of the overlay's node-side subnets (published ports, egress).
func (m *Manager) flushNodeConntrack(nets []netip.Prefix) error {
	if len(nets) == 0 {
		return nil
	}
	if err := deleteFlows(m.nodeNS, overlayFlows(nets)); err != nil {
		return fmt.Errorf("overlay: node namespace: %w", err)
	}
	return nil
}

// overlayFlows matches flows from, or NATed to, any of its prefixes.
type overlayFlows []netip.Prefix

func (o overlayFlows) MatchConntrackFlow(f *netlink.ConntrackFlow) bool {
	for _, ip := range []net.IP{f.Forward.SrcIP, f.Reverse.SrcIP} {
		a, ok := netip.AddrFromSlice(ip.To4())
		if !ok {
			continue
		}
		for _, p := range o {
			if p.Contains(a) {
				return true
			}
		}
	}
	return false
}
