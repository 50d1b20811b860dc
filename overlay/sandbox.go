package overlay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/shoal-project/shoal/overlay/internal/nsutil"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const (
	bridgeName = "br0"
	vxlanName  = "vxlan0"
)

// sandbox is the namespace of one network on this node: br0, vxlan0 and
// the node side of every local task's veth on that network.
type sandbox struct {
	vni   uint32
	path  string
	ns    netns.NsHandle
	h     *netlink.Handle
	netID string // "" while found on disk but not yet claimed
	found *peerDB
}

func (sb *sandbox) close() {
	if sb.h != nil {
		sb.h.Close()
		sb.h = nil
	}
	if sb.ns.IsOpen() {
		sb.ns.Close()
	}
}

// EnsureNetwork creates the network's sandbox on this node, or checks and
// repairs an existing one (idempotent), and programs the peers known for it.
// Call it before the first AttachTask on the network and on every restart
// (Reconcile does).
func (m *Manager) EnsureNetwork(ctx context.Context, n Network) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	return m.ensureNetworkLocked(n)
}

func validateNetwork(n Network) error {
	if n.ID == "" {
		return errors.New("overlay: network has no ID")
	}
	if n.VNI == 0 || n.VNI >= 1<<24 {
		return fmt.Errorf("overlay: network %s: VNI %d out of range", n.ID, n.VNI)
	}
	if !n.Subnet.IsValid() || !n.Subnet.Addr().Is4() {
		return fmt.Errorf("overlay: network %s: subnet %v is not an IPv4 prefix", n.ID, n.Subnet)
	}
	if n.Gateway.IsValid() && !n.Subnet.Contains(n.Gateway) {
		return fmt.Errorf("overlay: network %s: gateway %s is outside subnet %s", n.ID, n.Gateway, n.Subnet)
	}
	return nil
}

func (m *Manager) ensureNetworkLocked(n Network) error {
	if err := validateNetwork(n); err != nil {
		return err
	}
	n.Subnet = n.Subnet.Masked()
	if e := m.cfg.EgressSubnet; e.IsValid() && e.Overlaps(n.Subnet) {
		return fmt.Errorf("overlay: network %s: subnet %s overlaps the egress subnet %s", n.ID, n.Subnet, e)
	}
	if old, ok := m.networks[n.ID]; ok && old.VNI != n.VNI {
		return fmt.Errorf("overlay: network %s: VNI changed from %d to %d; remove it first", n.ID, old.VNI, n.VNI)
	}
	sb := m.sandboxes[n.VNI]
	if sb != nil && sb.netID != "" && sb.netID != n.ID {
		return fmt.Errorf("overlay: network %s: VNI %d is already used by network %s", n.ID, n.VNI, sb.netID)
	}
	if sb == nil {
		var err error
		if sb, err = m.createSandbox(n.VNI); err != nil {
			return fmt.Errorf("overlay: network %s: %w", n.ID, err)
		}
		m.sandboxes[n.VNI] = sb
	}
	if err := m.configureSandbox(sb, n); err != nil {
		return fmt.Errorf("overlay: network %s (vni %d): %w", n.ID, n.VNI, err)
	}
	sb.netID = n.ID
	nn := n
	m.networks[n.ID] = &nn
	db := m.peers[n.ID]
	if db == nil {
		// Adopt what a previous Manager programmed until SetPeers says
		// otherwise.
		db = sb.found
		if db == nil {
			db = newPeerDB()
		}
		m.peers[n.ID] = db
	}
	sb.found = nil
	if err := m.syncAllPeers(sb, db); err != nil {
		return fmt.Errorf("overlay: network %s (vni %d): %w", n.ID, n.VNI, err)
	}
	return nil
}

// RemoveNetwork deletes the network's sandbox on this node. It refuses
// while tasks are attached to the network (DetachTask them first). Unknown
// networks are not an error. The network's peers and services are
// forgotten.
func (m *Manager) RemoveNetwork(ctx context.Context, networkID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	var users []string
	for _, id := range sortedKeys(m.tasks) {
		for _, a := range m.tasks[id].atts {
			if a.Network == networkID {
				users = append(users, id)
			}
		}
	}
	if len(users) > 0 {
		return fmt.Errorf("overlay: network %s: tasks still attached: %s", networkID, strings.Join(users, ", "))
	}
	n, ok := m.networks[networkID]
	if !ok {
		delete(m.peers, networkID)
		delete(m.services, networkID)
		return nil
	}
	if m.ingress != nil && m.ingress.network == networkID {
		if err := m.deleteIngressLink(); err != nil {
			return err
		}
		m.ingress = nil
	}
	if sb := m.sandboxes[n.VNI]; sb != nil {
		if err := m.removeSandboxLocked(sb); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manager) removeSandboxLocked(sb *sandbox) error {
	if sb.netID != "" {
		delete(m.networks, sb.netID)
		delete(m.peers, sb.netID)
		delete(m.services, sb.netID)
		if m.ingress != nil && m.ingress.network == sb.netID {
			m.ingress = nil
		}
		for _, t := range m.tasks {
			t.dropNetwork(sb.netID)
		}
	}
	delete(m.sandboxes, sb.vni)
	err := m.destroySandbox(sb)
	if err != nil {
		return fmt.Errorf("overlay: sandbox ov-%d (network %s): %w", sb.vni, sb.netID, err)
	}
	m.log.Info("removed network sandbox", "vni", sb.vni, "network", sb.netID)
	return nil
}

// destroySandbox deletes the sandbox's links first (synchronously, so the
// VNI's UDP binding in the node's namespace is free at once; namespace
// destruction itself is asynchronous) and then its bind mount.
func (m *Manager) destroySandbox(sb *sandbox) error {
	var errs []error
	if sb.h != nil {
		links, err := sb.h.LinkList()
		if err != nil {
			errs = append(errs, fmt.Errorf("list links: %w", err))
		}
		for _, l := range links {
			if l.Attrs().Name == "lo" {
				continue
			}
			if err := sb.h.LinkDel(l); err != nil && !isNotFound(err) {
				errs = append(errs, fmt.Errorf("delete %s: %w", l.Attrs().Name, err))
			}
		}
	}
	sb.close()
	errs = append(errs, nsutil.Remove(sb.path))
	return errors.Join(errs...)
}

func (m *Manager) createSandbox(vni uint32) (*sandbox, error) {
	path := m.SandboxPath(vni)
	if _, err := os.Lstat(path); err == nil {
		// A half-made sandbox (file without a mount) from an earlier run.
		if err := nsutil.Remove(path); err != nil {
			return nil, err
		}
	}
	ns, err := nsutil.Create(path)
	if err != nil {
		return nil, err
	}
	h, err := nsutil.NewHandle(ns)
	if err != nil {
		ns.Close()
		nsutil.Remove(path)
		return nil, fmt.Errorf("sandbox ov-%d: %w", vni, err)
	}
	m.log.Info("created network sandbox", "vni", vni, "path", path)
	return &sandbox{vni: vni, path: path, ns: ns, h: h}, nil
}

// discoverSandboxes opens the sandboxes left in the state directory and
// reads back their peers. Files whose mount is gone (after a reboot) are
// deleted.
func (m *Manager) discoverSandboxes(ctx context.Context) error {
	ents, err := os.ReadDir(m.nsDir)
	if err != nil {
		return fmt.Errorf("overlay: read %s: %w", m.nsDir, err)
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		path := filepath.Join(m.nsDir, e.Name())
		vni, ok := parseSandboxName(e.Name())
		if !ok || !nsutil.IsMountedNetNS(path) {
			m.log.Info("removing stale sandbox file", "path", path)
			if err := nsutil.Remove(path); err != nil {
				return fmt.Errorf("overlay: %w", err)
			}
			continue
		}
		ns, err := nsutil.Open(path)
		if err != nil {
			return fmt.Errorf("overlay: sandbox ov-%d: %w", vni, err)
		}
		h, err := nsutil.NewHandle(ns)
		if err != nil {
			ns.Close()
			return fmt.Errorf("overlay: sandbox ov-%d: %w", vni, err)
		}
		sb := &sandbox{vni: vni, path: path, ns: ns, h: h}
		m.sandboxes[vni] = sb
		db, err := m.readPeers(sb)
		if err != nil {
			m.log.Warn("could not read peers of sandbox", "vni", vni, "err", err)
		}
		sb.found = db
		m.log.Info("found network sandbox", "vni", vni, "peers", db.len())
	}
	return nil
}

func parseSandboxName(name string) (uint32, bool) {
	s, ok := strings.CutPrefix(name, "ov-")
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || v == 0 || v >= 1<<24 || strconv.FormatUint(v, 10) != s {
		return 0, false
	}
	return uint32(v), true
}

// configureSandbox makes the sandbox hold lo, br0 (with the gateway) and
// vxlan0 as specified, creating or fixing whatever differs.
func (m *Manager) configureSandbox(sb *sandbox, n Network) error {
	h := sb.h
	if err := linkUp(h, "lo"); err != nil {
		return err
	}
	br, err := h.LinkByName(bridgeName)
	if err == nil {
		if _, ok := br.(*netlink.Bridge); !ok {
			if err := h.LinkDel(br); err != nil {
				return fmt.Errorf("delete %s of type %s: %w", bridgeName, br.Type(), err)
			}
			br = nil
		}
	} else if !isNotFound(err) {
		return fmt.Errorf("look up %s: %w", bridgeName, err)
	} else {
		br = nil
	}
	if br == nil {
		if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: bridgeName, MTU: m.ovMTU}}); err != nil {
			return fmt.Errorf("create %s: %w", bridgeName, err)
		}
		if br, err = h.LinkByName(bridgeName); err != nil {
			return fmt.Errorf("look up %s: %w", bridgeName, err)
		}
	}
	if err := setMTU(h, br, m.ovMTU); err != nil {
		return err
	}
	var want []netip.Prefix
	if n.Gateway.IsValid() {
		want = []netip.Prefix{netip.PrefixFrom(n.Gateway, n.Subnet.Bits())}
	}
	if err := setAddrs(h, br, want); err != nil {
		return err
	}
	if err := m.ensureVxlan(sb, n, br); err != nil {
		return err
	}
	if err := h.LinkSetUp(br); err != nil {
		return fmt.Errorf("set %s up: %w", bridgeName, err)
	}
	// Bridged frames must not traverse the sandbox's IP hooks (built-in
	// br_netfilter defaults to on in every namespace).
	for _, k := range []string{"net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables", "net.bridge.bridge-nf-call-arptables"} {
		if err := nsutil.Sysctl(sb.ns, k, "0"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

func (m *Manager) vxlanOK(l netlink.Link, vni uint32) bool {
	vx, ok := l.(*netlink.Vxlan)
	if !ok {
		return false
	}
	src, _ := netip.AddrFromSlice(vx.SrcAddr.To4())
	return vx.VxlanId == int(vni) && vx.Port == int(m.cfg.DataPathPort) &&
		src == m.cfg.DataPathAddr && !vx.Learning && vx.Proxy
}

// ensureVxlan creates vxlan0 in the node's namespace (so its UDP socket
// lives there and uses the node's routing) and moves it into the sandbox,
// unless a correct one is already there.
func (m *Manager) ensureVxlan(sb *sandbox, n Network, br netlink.Link) error {
	h := sb.h
	l, err := h.LinkByName(vxlanName)
	switch {
	case err == nil && m.vxlanOK(l, n.VNI):
	case err == nil:
		m.log.Warn("replacing mis-configured vxlan0", "vni", n.VNI)
		if err := h.LinkDel(l); err != nil {
			return fmt.Errorf("delete mis-configured %s: %w", vxlanName, err)
		}
		l = nil
	case isNotFound(err):
		l = nil
	default:
		return fmt.Errorf("look up %s: %w", vxlanName, err)
	}
	if l == nil {
		tmp := fmt.Sprintf("vx-%d", n.VNI)
		if old, err := m.node.LinkByName(tmp); err == nil {
			// Left by a Manager that died between creating and moving it.
			if err := m.node.LinkDel(old); err != nil {
				return fmt.Errorf("delete leftover %s in the node's namespace: %w", tmp, err)
			}
		}
		vx := &netlink.Vxlan{
			LinkAttrs: netlink.LinkAttrs{Name: tmp, MTU: m.ovMTU},
			VxlanId:   int(n.VNI),
			SrcAddr:   net.IP(m.cfg.DataPathAddr.AsSlice()),
			Port:      int(m.cfg.DataPathPort),
			Learning:  false,
			Proxy:     true,
		}
		if err := m.node.LinkAdd(vx); err != nil {
			if errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("create vxlan for VNI %d on port %d: another VXLAN device in the node's namespace already uses them: %w", n.VNI, m.cfg.DataPathPort, err)
			}
			return fmt.Errorf("create vxlan for VNI %d: %w", n.VNI, err)
		}
		nl, err := m.node.LinkByName(tmp)
		if err != nil {
			return fmt.Errorf("look up new %s: %w", tmp, err)
		}
		if err := m.node.LinkSetNsFd(nl, int(sb.ns)); err != nil {
			m.node.LinkDel(nl)
			return fmt.Errorf("move %s into the sandbox: %w", tmp, err)
		}
		if l, err = h.LinkByName(tmp); err != nil {
			return fmt.Errorf("look up moved %s: %w", tmp, err)
		}
		if err := h.LinkSetName(l, vxlanName); err != nil {
			return fmt.Errorf("rename %s to %s: %w", tmp, vxlanName, err)
		}
		if l, err = h.LinkByName(vxlanName); err != nil {
			return fmt.Errorf("look up %s: %w", vxlanName, err)
		}
	}
	if err := setMTU(h, l, m.ovMTU); err != nil {
		return err
	}
	if l.Attrs().MasterIndex != br.Attrs().Index {
		if err := h.LinkSetMaster(l, br); err != nil {
			return fmt.Errorf("attach %s to %s: %w", vxlanName, bridgeName, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", vxlanName, err)
	}
	return nil
}

// vxlanIndex returns vxlan0's index in the sandbox.
func (sb *sandbox) vxlanIndex() (int, error) {
	l, err := sb.h.LinkByName(vxlanName)
	if err != nil {
		return 0, fmt.Errorf("look up %s in sandbox ov-%d: %w", vxlanName, sb.vni, err)
	}
	return l.Attrs().Index, nil
}

// linkUp sets the named link up.
func linkUp(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("look up %s: %w", name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

func setMTU(h *netlink.Handle, l netlink.Link, mtu int) error {
	if l.Attrs().MTU == mtu {
		return nil
	}
	if err := h.LinkSetMTU(l, mtu); err != nil {
		return fmt.Errorf("set MTU of %s to %d: %w", l.Attrs().Name, mtu, err)
	}
	return nil
}

// setAddrs makes want the link's only IPv4 addresses.
func setAddrs(h *netlink.Handle, l netlink.Link, want []netip.Prefix) error {
	have, err := h.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", l.Attrs().Name, err)
	}
	keep := map[netip.Prefix]bool{}
	for _, p := range want {
		keep[p] = true
	}
	present := map[netip.Prefix]bool{}
	for _, a := range have {
		p, ok := prefixOf(a.IPNet)
		if ok && keep[p] {
			present[p] = true
			continue
		}
		if err := h.AddrDel(l, &a); err != nil && !isNotFound(err) {
			return fmt.Errorf("remove address %s from %s: %w", a.IPNet, l.Attrs().Name, err)
		}
	}
	for _, p := range want {
		if present[p] {
			continue
		}
		if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(p)}); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add address %s to %s: %w", p, l.Attrs().Name, err)
		}
	}
	return nil
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func isNotFound(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ESRCH)
}
