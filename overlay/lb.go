package overlay

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/shoal-project/shoal/overlay/internal/nsutil"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Service VIPs are load-balanced in each task's own namespace (there is no
// IPVS on the target kernel): locally generated packets to a VIP are
// DNATed, on their first packet, to one of the service's backends picked
// at random; conntrack keeps the choice for the flow. A task connecting to
// its own service's VIP and picking itself is delivered locally (hairpin),
// and backends see the client's real address.

// SetServices makes svcs the complete set of services with a VIP on the
// network, and regenerates the service table of every task attached to it
// on this node. Conntrack entries of flows DNATed to a backend that is no
// longer one (for that VIP) are deleted, so UDP "connections" do not keep
// going to it. Call it once per network even with no services: a task's
// table is only rewritten once the services of all its networks are known
// (until then a table left by a previous Manager stays as it is).
func (m *Manager) SetServices(ctx context.Context, networkID string, svcs []Service) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	clean := make([]Service, 0, len(svcs))
	for _, s := range svcs {
		if !s.VIP.Is4() {
			return fmt.Errorf("overlay: network %s: service %s: VIP %v is not IPv4", networkID, s.ID, s.VIP)
		}
		var bs []netip.Addr
		for _, b := range s.Backends {
			if !b.Is4() {
				return fmt.Errorf("overlay: network %s: service %s: backend %v is not IPv4", networkID, s.ID, b)
			}
			bs = append(bs, b)
		}
		slices.SortFunc(bs, netip.Addr.Compare)
		s.Backends = slices.Compact(bs)
		clean = append(clean, s)
	}
	m.services[networkID] = clean
	var errs []error
	for _, id := range sortedKeys(m.tasks) {
		if err := ctx.Err(); err != nil {
			return err
		}
		t := m.tasks[id]
		if t.onNetwork(networkID) {
			errs = append(errs, m.syncTaskLB(t))
		}
	}
	return errors.Join(errs...)
}

func (t *task) onNetwork(networkID string) bool {
	for _, a := range t.atts {
		if a.Network == networkID {
			return true
		}
	}
	return false
}

// taskVIPs is every VIP reachable from the task and its backends, or false
// if the services of one of its networks are not known yet. When two
// networks have the same VIP (overlapping subnets), the first attachment's
// wins.
func (m *Manager) taskVIPs(t *task) (map[netip.Addr][]netip.Addr, bool) {
	out := map[netip.Addr][]netip.Addr{}
	for _, a := range t.atts {
		svcs, ok := m.services[a.Network]
		if !ok {
			return nil, false
		}
		for _, s := range svcs {
			if _, dup := out[s.VIP]; !dup {
				out[s.VIP] = s.Backends
			}
		}
	}
	return out, true
}

// syncTaskLB rewrites the task's table and deletes conntrack entries of
// backends it no longer has.
func (m *Manager) syncTaskLB(t *task) error {
	if !t.ns.IsOpen() {
		return nil
	}
	vips, ok := m.taskVIPs(t)
	if !ok {
		return nil
	}
	if err := writeLBTable(t.ns, vips); err != nil {
		return fmt.Errorf("overlay: task %s: service table: %w", t.id, err)
	}
	old := t.lb
	t.lb = vips
	sweep := old == nil // first program by this Manager: anything may be stale
	for vip, obs := range old {
		for _, b := range obs {
			if !slices.Contains(vips[vip], b) {
				sweep = true
			}
		}
	}
	if !sweep {
		return nil
	}
	stale := staleVIPFlows{}
	for vip, bs := range vips {
		stale[vip] = addrSet(bs)
	}
	for vip := range old {
		if _, ok := stale[vip]; !ok {
			stale[vip] = nil
		}
	}
	if len(stale) == 0 {
		return nil
	}
	if err := deleteFlows(t.ns, stale); err != nil {
		return fmt.Errorf("overlay: task %s: %w", t.id, err)
	}
	return nil
}

// writeLBTable replaces the task's table with:
//
//	table ip shoal-lb {
//	  map vips { type ipv4_addr : verdict; elements = { VIP : goto svc-VIP, … } }
//	  chain output { type nat hook output priority dstnat; ip daddr vmap @vips }
//	  chain svc-VIP { dnat to numgen random mod N map { 0 : B0, … } }   # N > 1
//	  chain svc-VIP { dnat to B0 }                                      # N = 1
//	  set idle { type ipv4_addr; elements = { VIPs without backends } }
//	  chain reject-idle { type filter hook output priority filter; ip daddr @idle reject }
//	}
//
// or removes it when there is no VIP.
func writeLBTable(ns netns.NsHandle, vips map[netip.Addr][]netip.Addr) error {
	if len(vips) == 0 {
		return deleteTable(ns, lbTableName)
	}
	b, err := newTableBatch(ns, lbTableName)
	if err != nil {
		return err
	}
	var elems, idle []nftables.SetElement
	for _, vip := range sortedAddrs(vips) {
		k := vip.As4()
		if len(vips[vip]) == 0 {
			idle = append(idle, nftables.SetElement{Key: k[:]})
			continue
		}
		name := "svc-" + vip.String()
		ch := b.chain(name)
		ex, err := b.dnatExprs(vips[vip], 0)
		if err != nil {
			return err
		}
		b.rule(ch, ex...)
		elems = append(elems, nftables.SetElement{Key: k[:], VerdictData: gotoVerdict(name)})
	}
	if len(elems) > 0 {
		vm := &nftables.Set{Name: "vips", IsMap: true, KeyType: nftables.TypeIPAddr, DataType: nftables.TypeVerdict}
		if err := b.set(vm, elems); err != nil {
			return err
		}
		out := b.baseChain("output", nftables.ChainTypeNAT, nftables.ChainHookOutput, nftables.ChainPriorityNATDest)
		b.rule(out, loadDaddr(reg1), &expr.Lookup{SourceRegister: reg1, SetName: vm.Name, SetID: vm.ID, IsDestRegSet: true})
	}
	if len(idle) > 0 {
		set := &nftables.Set{Name: "idle", KeyType: nftables.TypeIPAddr}
		if err := b.set(set, idle); err != nil {
			return err
		}
		ch := b.baseChain("reject-idle", nftables.ChainTypeFilter, nftables.ChainHookOutput, nftables.ChainPriorityFilter)
		b.rule(ch, loadDaddr(reg1), &expr.Lookup{SourceRegister: reg1, SetName: set.Name, SetID: set.ID}, reject())
	}
	return b.flush()
}

func addrSet(as []netip.Addr) map[netip.Addr]bool {
	out := make(map[netip.Addr]bool, len(as))
	for _, a := range as {
		out[a] = true
	}
	return out
}

// staleVIPFlows matches conntrack entries of flows DNATed from a VIP to an
// address that is not (any more) one of its backends. A nil backend set
// means the VIP is gone.
type staleVIPFlows map[netip.Addr]map[netip.Addr]bool

func (s staleVIPFlows) MatchConntrackFlow(f *netlink.ConntrackFlow) bool {
	vip, ok := netip.AddrFromSlice(f.Forward.DstIP.To4())
	if !ok {
		return false
	}
	backends, known := s[vip]
	if !known {
		return false
	}
	to, ok := netip.AddrFromSlice(f.Reverse.SrcIP.To4())
	if !ok || to == vip {
		return false // not DNATed
	}
	return !backends[to]
}

// deleteFlows deletes the conntrack entries in ns that filter matches.
func deleteFlows(ns netns.NsHandle, filter netlink.CustomConntrackFilter) error {
	h, err := nsutil.NewHandle(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	if _, err := h.ConntrackDeleteFilters(netlink.ConntrackTable, netlink.FAMILY_V4, filter); err != nil {
		return fmt.Errorf("delete conntrack entries: %w", err)
	}
	return nil
}
