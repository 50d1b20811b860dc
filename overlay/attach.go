package overlay

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/shoal-project/shoal/overlay/internal/nsutil"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// task is a task attached on this node.
type task struct {
	id   string
	ns   netns.NsHandle // open from AttachTask until DetachTask
	atts []Attachment
	// lb is the VIP -> backends programmed in the task's namespace; nil
	// until the first successful program.
	lb map[netip.Addr][]netip.Addr
}

func (t *task) close() {
	if t.ns.IsOpen() {
		t.ns.Close()
	}
}

func (t *task) dropNetwork(networkID string) {
	out := t.atts[:0]
	for _, a := range t.atts {
		if a.Network != networkID {
			out = append(out, a)
		}
	}
	t.atts = out
}

// Names and aliases of the node side of task veths. The alias records the
// task's ID (and, on the egress bridge, its address) so that a restarted
// Manager can find them.
const (
	ourAliasPrefix = "shoal "
	aliasPrefix    = ourAliasPrefix + "task="
	sandboxVethPx  = "shv"
	egressVethPx   = "shg"
)

func vethName(prefix, taskID string) string {
	sum := sha256.Sum256([]byte(taskID))
	return prefix + hex.EncodeToString(sum[:])[:10]
}

func taskAlias(taskID string, addr netip.Prefix) string {
	s := aliasPrefix + taskID
	if addr.IsValid() {
		s += " addr=" + addr.String()
	}
	return s
}

// parseTaskAlias reads back taskAlias.
func parseTaskAlias(alias string) (id string, addr netip.Prefix, ok bool) {
	rest, ok := strings.CutPrefix(alias, aliasPrefix)
	if !ok {
		return "", netip.Prefix{}, false
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return "", netip.Prefix{}, false
	}
	for _, kv := range f[1:] {
		if v, ok := strings.CutPrefix(kv, "addr="); ok {
			addr, _ = netip.ParsePrefix(v)
		}
	}
	return f[0], addr, true
}

// AttachTask gives the task an interface on each of its networks (eth0,
// eth1, … in order), each a veth from the network's sandbox bridge with
// the overlay MTU, the attachment's MAC and address; and, unless all its
// networks are internal or egress is disabled, a last interface on the
// egress bridge carrying its default route. It then programs the task's
// service VIP table. Every network must have been passed to EnsureNetwork.
//
// It is idempotent: calling it again (after a restart, say) keeps working
// interfaces, repairs what differs and re-opens the namespace handle. After
// an error the task is partly attached: call AttachTask again or
// DetachTask.
func (m *Manager) AttachTask(ctx context.Context, t Task) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if t.ID == "" {
		return errors.New("overlay: task has no ID")
	}
	if len(t.Attachments) == 0 {
		return fmt.Errorf("overlay: task %s: no attachments", t.ID)
	}
	atts := make([]Attachment, len(t.Attachments))
	seen := map[string]bool{}
	egress := false
	for i, a := range t.Attachments {
		n, ok := m.networks[a.Network]
		if !ok {
			return fmt.Errorf("overlay: task %s: network %s has not been ensured on this node", t.ID, a.Network)
		}
		if seen[a.Network] {
			return fmt.Errorf("overlay: task %s: attached twice to network %s", t.ID, a.Network)
		}
		seen[a.Network] = true
		if !a.Address.Addr().Is4() || a.Address.Bits() != n.Subnet.Bits() || !n.Subnet.Contains(a.Address.Addr()) {
			return fmt.Errorf("overlay: task %s: address %v is not in subnet %s of network %s", t.ID, a.Address, n.Subnet, n.ID)
		}
		if a.MAC == nil {
			a.MAC = macFromIP(a.Address.Addr())
		}
		if len(a.MAC) != 6 {
			return fmt.Errorf("overlay: task %s: bad MAC %s on network %s", t.ID, a.MAC, n.ID)
		}
		atts[i] = a
		if !n.Internal {
			egress = true
		}
	}
	egress = egress && m.cfg.EgressSubnet.IsValid()

	var ns netns.NsHandle
	var err error
	switch {
	case t.NetNSPath != "":
		ns, err = nsutil.Open(t.NetNSPath)
	case t.PID > 0:
		ns, err = nsutil.Open(fmt.Sprintf("/proc/%d/ns/net", t.PID))
	default:
		err = errors.New("neither a namespace path nor a PID")
	}
	if err != nil {
		return fmt.Errorf("overlay: task %s: %w", t.ID, err)
	}
	th, err := nsutil.NewHandle(ns)
	if err != nil {
		ns.Close()
		return fmt.Errorf("overlay: task %s: %w", t.ID, err)
	}
	defer th.Close()

	tk := &task{id: t.ID, ns: ns, atts: atts}
	if old := m.tasks[t.ID]; old != nil {
		if old.ns.IsOpen() && old.ns.Equal(ns) {
			tk.lb = old.lb
		}
		old.close()
	}
	m.tasks[t.ID] = tk

	if err := linkUp(th, "lo"); err != nil {
		return fmt.Errorf("overlay: task %s: %w", t.ID, err)
	}
	for i, a := range atts {
		sb := m.sandboxes[m.networks[a.Network].VNI]
		if err := m.ensureTaskVeth(sb, th, ns, t.ID, fmt.Sprintf("eth%d", i), a); err != nil {
			return fmt.Errorf("overlay: task %s on network %s (%s): %w", t.ID, a.Network, a.Address, err)
		}
	}
	if egress {
		if err := m.attachEgress(th, ns, t.ID, fmt.Sprintf("eth%d", len(atts))); err != nil {
			return fmt.Errorf("overlay: task %s: egress: %w", t.ID, err)
		}
	}
	if err := m.syncTaskLB(tk); err != nil {
		return err
	}
	m.log.Info("attached task", "task", t.ID, "interfaces", len(atts), "egress", egress)
	return nil
}

// ensureTaskVeth makes ifname in the task a veth whose peer is the task's
// port on the sandbox bridge, configured as a says.
func (m *Manager) ensureTaskVeth(sb *sandbox, th *netlink.Handle, ns netns.NsHandle, taskID, ifname string, a Attachment) error {
	br, err := sb.h.LinkByName(bridgeName)
	if err != nil {
		return fmt.Errorf("look up %s: %w", bridgeName, err)
	}
	hostName := vethName(sandboxVethPx, taskID)
	tl, err := m.ensureVethPair(sb.h, th, ns, hostName, ifname, taskAlias(taskID, netip.Prefix{}), m.ovMTU, a.MAC)
	if err != nil {
		return err
	}
	hl, err := sb.h.LinkByName(hostName)
	if err != nil {
		return fmt.Errorf("look up %s: %w", hostName, err)
	}
	if hl.Attrs().MasterIndex != br.Attrs().Index {
		if err := sb.h.LinkSetMaster(hl, br); err != nil {
			return fmt.Errorf("attach %s to %s: %w", hostName, bridgeName, err)
		}
	}
	if err := sb.h.LinkSetUp(hl); err != nil {
		return fmt.Errorf("set %s up: %w", hostName, err)
	}
	return configureTaskSide(th, tl, m.ovMTU, a.MAC, a.Address)
}

// ensureVethPair makes hostName (in the namespace of hh) and ifname (in the
// task's namespace) the two ends of one veth, recreating them if they are
// not. It returns the task end. A task-side interface of that name that is
// not ours is an error.
func (m *Manager) ensureVethPair(hh, th *netlink.Handle, taskNS netns.NsHandle, hostName, ifname, alias string, mtu int, mac net.HardwareAddr) (netlink.Link, error) {
	hl, herr := hh.LinkByName(hostName)
	tl, terr := th.LinkByName(ifname)
	if herr != nil && !isNotFound(herr) {
		return nil, fmt.Errorf("look up %s: %w", hostName, herr)
	}
	if terr != nil && !isNotFound(terr) {
		return nil, fmt.Errorf("look up %s in the task: %w", ifname, terr)
	}
	if herr == nil && terr == nil {
		_, hv := hl.(*netlink.Veth)
		_, tv := tl.(*netlink.Veth)
		if hv && tv && hl.Attrs().ParentIndex == tl.Attrs().Index && tl.Attrs().ParentIndex == hl.Attrs().Index {
			if hl.Attrs().Alias != alias {
				if err := hh.LinkSetAlias(hl, alias); err != nil {
					return nil, fmt.Errorf("set alias of %s: %w", hostName, err)
				}
			}
			if err := setMTU(hh, hl, mtu); err != nil {
				return nil, err
			}
			return tl, nil
		}
	}
	if herr == nil {
		// A stale end (its task is gone, or the pair was broken).
		if err := hh.LinkDel(hl); err != nil && !isNotFound(err) {
			return nil, fmt.Errorf("delete stale %s: %w", hostName, err)
		}
	}
	if terr == nil {
		if !strings.HasPrefix(tl.Attrs().Alias, ourAliasPrefix) {
			return nil, fmt.Errorf("the task already has an interface %s that is not an overlay interface", ifname)
		}
		if err := th.LinkDel(tl); err != nil && !isNotFound(err) {
			return nil, fmt.Errorf("delete stale %s in the task: %w", ifname, err)
		}
	}
	v := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: hostName, MTU: mtu, Alias: alias},
		PeerName:         ifname,
		PeerNamespace:    netlink.NsFd(int(taskNS)),
		PeerMTU:          uint32(mtu),
		PeerHardwareAddr: mac,
	}
	if err := hh.LinkAdd(v); err != nil {
		return nil, fmt.Errorf("create veth %s / %s: %w", hostName, ifname, err)
	}
	// The kernel ignores the alias of a link being created.
	hl, err := hh.LinkByName(hostName)
	if err != nil {
		return nil, fmt.Errorf("look up new %s: %w", hostName, err)
	}
	if err := hh.LinkSetAlias(hl, alias); err != nil {
		return nil, fmt.Errorf("set alias of %s: %w", hostName, err)
	}
	tl, err = th.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("look up new %s in the task: %w", ifname, err)
	}
	if err := th.LinkSetAlias(tl, alias); err != nil {
		return nil, fmt.Errorf("set alias of %s in the task: %w", ifname, err)
	}
	return tl, nil
}

// configureTaskSide sets the task end's MTU, MAC and only address, and sets
// it up.
func configureTaskSide(th *netlink.Handle, tl netlink.Link, mtu int, mac net.HardwareAddr, addr netip.Prefix) error {
	name := tl.Attrs().Name
	if err := setMTU(th, tl, mtu); err != nil {
		return err
	}
	if mac != nil && !bytes.Equal(tl.Attrs().HardwareAddr, mac) {
		if err := th.LinkSetHardwareAddr(tl, mac); err != nil {
			return fmt.Errorf("set MAC of %s to %s: %w", name, mac, err)
		}
	}
	if err := setAddrs(th, tl, []netip.Prefix{addr}); err != nil {
		return err
	}
	if err := th.LinkSetUp(tl); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

// DetachTask removes the task's interfaces (the node ends of its veths,
// which takes the task ends with them), its service table, its egress
// address, and closes its namespace handle. It works for tasks a previous
// Manager attached and for tasks whose namespace is already gone. Unknown
// tasks are not an error.
func (m *Manager) DetachTask(ctx context.Context, taskID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	return m.detachLocked(taskID)
}

func (m *Manager) detachLocked(taskID string) error {
	var errs []error
	if t := m.tasks[taskID]; t != nil {
		if t.ns.IsOpen() {
			errs = append(errs, deleteTable(t.ns, lbTableName))
			if len(t.lb) > 0 {
				// Flows DNATed from any VIP: no backend is valid any more.
				gone := staleVIPFlows{}
				for vip := range t.lb {
					gone[vip] = nil
				}
				errs = append(errs, deleteFlows(t.ns, gone))
			}
		}
		t.close()
		delete(m.tasks, taskID)
	}
	name := vethName(sandboxVethPx, taskID)
	for _, vni := range sortedVNIs(m.sandboxes) {
		sb := m.sandboxes[vni]
		if l, err := sb.h.LinkByName(name); err == nil {
			if err := sb.h.LinkDel(l); err != nil && !isNotFound(err) {
				errs = append(errs, fmt.Errorf("delete %s in sandbox ov-%d: %w", name, vni, err))
			}
		}
	}
	errs = append(errs, m.detachEgress(taskID))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("overlay: detach task %s: %w", taskID, err)
	}
	m.log.Info("detached task", "task", taskID)
	return nil
}

// removeStaleTaskLinks deletes the task ports in a sandbox whose task is not
// in keep.
func (m *Manager) removeStaleTaskLinks(sb *sandbox, keep map[string]bool) error {
	links, err := sb.h.LinkList()
	if err != nil {
		return fmt.Errorf("overlay: sandbox ov-%d: list links: %w", sb.vni, err)
	}
	var errs []error
	for _, l := range links {
		id, _, ok := parseTaskAlias(l.Attrs().Alias)
		if !ok || keep[id] {
			continue
		}
		m.log.Info("removing interface of departed task", "task", id, "vni", sb.vni)
		if err := sb.h.LinkDel(l); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("overlay: sandbox ov-%d: delete %s of task %s: %w", sb.vni, l.Attrs().Name, id, err))
		}
	}
	return errors.Join(errs...)
}
