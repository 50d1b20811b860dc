package overlay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/shoal-project/shoal/overlay/internal/nsutil"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Egress: tasks reach the world outside the overlay (including the DNS
// servers their resolver forwards to) through a second interface on a
// per-node bridge in the node's namespace, masqueraded behind the node's
// address, as Docker's docker_gwbridge does. The bridge's ports are
// isolated and routed traffic between two of its tasks is dropped, so the
// bridge never connects tasks of different networks.

// egressGateway is the bridge's address: the subnet's first host.
func (m *Manager) egressGateway() netip.Prefix {
	return netip.PrefixFrom(m.cfg.EgressSubnet.Addr().Next(), m.cfg.EgressSubnet.Bits())
}

// ensureEgressBridge creates or repairs the egress bridge and its table.
func (m *Manager) ensureEgressBridge() error {
	name := m.cfg.EgressBridge
	br, err := m.node.LinkByName(name)
	if err == nil {
		if _, ok := br.(*netlink.Bridge); !ok {
			return fmt.Errorf("overlay: egress bridge: %s exists in the node's namespace and is a %s", name, br.Type())
		}
	} else if isNotFound(err) {
		if err := m.node.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: m.ulMTU}}); err != nil {
			return fmt.Errorf("overlay: egress bridge: create %s: %w", name, err)
		}
		if br, err = m.node.LinkByName(name); err != nil {
			return fmt.Errorf("overlay: egress bridge: look up %s: %w", name, err)
		}
	} else {
		return fmt.Errorf("overlay: egress bridge: look up %s: %w", name, err)
	}
	if err := setMTU(m.node, br, m.ulMTU); err != nil {
		return fmt.Errorf("overlay: egress bridge: %w", err)
	}
	if err := setAddrs(m.node, br, []netip.Prefix{m.egressGateway()}); err != nil {
		return fmt.Errorf("overlay: egress bridge: %w", err)
	}
	if err := m.node.LinkSetUp(br); err != nil {
		return fmt.Errorf("overlay: egress bridge: set %s up: %w", name, err)
	}
	if err := nsutil.Sysctl(m.nodeNS, "net/ipv4/conf/"+name+"/rp_filter", "2"); err != nil {
		return fmt.Errorf("overlay: egress bridge: %w", err)
	}
	if err := m.writeEgressTable(); err != nil {
		return fmt.Errorf("overlay: egress bridge: %w", err)
	}
	return nil
}

// writeEgressTable programs, in the node's namespace:
//
//	table ip shoal-egress {
//	  chain postrouting { type nat hook postrouting priority srcnat
//	    ip saddr <subnet> oifname != <bridge> masquerade }
//	  chain forward { type filter hook forward priority filter
//	    iifname <bridge> oifname <bridge> drop }
//	}
func (m *Manager) writeEgressTable() error {
	b, err := newTableBatch(m.nodeNS, egressTableName)
	if err != nil {
		return err
	}
	br := m.cfg.EgressBridge
	post := b.baseChain("postrouting", nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)
	b.rule(post, cat(matchSaddrIn(m.cfg.EgressSubnet), matchIfname(expr.MetaKeyOIFNAME, expr.CmpOpNeq, br), one(&expr.Masq{}))...)
	fwd := b.baseChain("forward", nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter)
	b.rule(fwd, cat(matchIfname(expr.MetaKeyIIFNAME, expr.CmpOpEq, br), matchIfname(expr.MetaKeyOIFNAME, expr.CmpOpEq, br),
		one(verdict(expr.VerdictDrop)))...)
	return b.flush()
}

// discoverEgress reads back the egress addresses of tasks attached by a
// previous Manager from the aliases of their bridge ports.
func (m *Manager) discoverEgress() error {
	links, err := m.egressPorts()
	if err != nil {
		return err
	}
	for _, l := range links {
		if id, addr, ok := parseTaskAlias(l.Attrs().Alias); ok && addr.IsValid() {
			m.egressAddrs[id] = addr
		}
	}
	return nil
}

// egressPorts lists the task ports of the egress bridge.
func (m *Manager) egressPorts() ([]netlink.Link, error) {
	br, err := m.node.LinkByName(m.cfg.EgressBridge)
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("overlay: egress bridge: %w", err)
	}
	links, err := m.node.LinkList()
	if err != nil {
		return nil, fmt.Errorf("overlay: list links of the node's namespace: %w", err)
	}
	var out []netlink.Link
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			if _, _, ok := parseTaskAlias(l.Attrs().Alias); ok {
				out = append(out, l)
			}
		}
	}
	return out, nil
}

// allocEgress returns the task's egress address, allocating a free one.
func (m *Manager) allocEgress(taskID string) (netip.Prefix, error) {
	if a, ok := m.egressAddrs[taskID]; ok && m.cfg.EgressSubnet.Contains(a.Addr()) && a.Bits() == m.cfg.EgressSubnet.Bits() {
		return a, nil
	}
	used := map[netip.Addr]bool{}
	for _, a := range m.egressAddrs {
		used[a.Addr()] = true
	}
	sub := m.cfg.EgressSubnet
	for a := m.egressGateway().Addr().Next(); sub.Contains(a); a = a.Next() {
		if !sub.Contains(a.Next()) {
			break // the broadcast address
		}
		if !used[a] {
			p := netip.PrefixFrom(a, sub.Bits())
			m.egressAddrs[taskID] = p
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("egress subnet %s is full", sub)
}

// attachEgress gives the task ifname on the egress bridge and its default
// route.
func (m *Manager) attachEgress(th *netlink.Handle, taskNS netns.NsHandle, taskID, ifname string) error {
	addr, err := m.allocEgress(taskID)
	if err != nil {
		return err
	}
	br, err := m.node.LinkByName(m.cfg.EgressBridge)
	if err != nil {
		return fmt.Errorf("look up %s: %w", m.cfg.EgressBridge, err)
	}
	hostName := vethName(egressVethPx, taskID)
	mac := macFromIP(addr.Addr())
	tl, err := m.ensureVethPair(m.node, th, taskNS, hostName, ifname, taskAlias(taskID, addr), m.ulMTU, mac)
	if err != nil {
		return err
	}
	hl, err := m.node.LinkByName(hostName)
	if err != nil {
		return fmt.Errorf("look up %s: %w", hostName, err)
	}
	if hl.Attrs().MasterIndex != br.Attrs().Index {
		if err := m.node.LinkSetMaster(hl, br); err != nil {
			return fmt.Errorf("attach %s to %s: %w", hostName, m.cfg.EgressBridge, err)
		}
	}
	// Isolated ports talk to the bridge (the gateway) only, never to each
	// other.
	if err := m.node.LinkSetIsolated(hl, true); err != nil {
		return fmt.Errorf("isolate %s: %w", hostName, err)
	}
	if err := m.node.LinkSetUp(hl); err != nil {
		return fmt.Errorf("set %s up: %w", hostName, err)
	}
	if err := configureTaskSide(th, tl, m.ulMTU, mac, addr); err != nil {
		return err
	}
	gw := m.egressGateway().Addr()
	route := &netlink.Route{LinkIndex: tl.Attrs().Index, Gw: net.IP(gw.AsSlice()), Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}}
	if err := th.RouteReplace(route); err != nil {
		return fmt.Errorf("default route via %s dev %s: %w", gw, ifname, err)
	}
	return nil
}

// egressAddr returns the egress address of an attached task.
func (m *Manager) egressAddr(taskID string) (netip.Addr, bool) {
	a, ok := m.egressAddrs[taskID]
	return a.Addr(), ok
}

// detachEgress deletes the task's egress port and frees its address.
func (m *Manager) detachEgress(taskID string) error {
	delete(m.egressAddrs, taskID)
	if !m.cfg.EgressSubnet.IsValid() {
		return nil
	}
	name := vethName(egressVethPx, taskID)
	if l, err := m.node.LinkByName(name); err == nil {
		if err := m.node.LinkDel(l); err != nil && !isNotFound(err) {
			return fmt.Errorf("delete egress port %s: %w", name, err)
		}
	}
	return nil
}

// removeStaleEgressLinks deletes egress ports of tasks not in keep.
func (m *Manager) removeStaleEgressLinks(keep map[string]bool) error {
	links, err := m.egressPorts()
	if err != nil {
		return err
	}
	var errs []error
	for _, l := range links {
		id, _, _ := parseTaskAlias(l.Attrs().Alias)
		if keep[id] {
			continue
		}
		delete(m.egressAddrs, id)
		if err := m.node.LinkDel(l); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("overlay: delete egress port %s of task %s: %w", l.Attrs().Name, id, err))
		}
	}
	return errors.Join(errs...)
}

// removeEgress deletes every egress port, the bridge and its table.
func (m *Manager) removeEgress() error {
	if !m.cfg.EgressSubnet.IsValid() {
		return nil
	}
	errs := []error{m.removeStaleEgressLinks(nil)}
	if br, err := m.node.LinkByName(m.cfg.EgressBridge); err == nil {
		if err := m.node.LinkDel(br); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("overlay: delete egress bridge %s: %w", m.cfg.EgressBridge, err))
		}
	}
	if err := deleteTable(m.nodeNS, egressTableName); err != nil {
		errs = append(errs, fmt.Errorf("overlay: %w", err))
	}
	return errors.Join(errs...)
}
