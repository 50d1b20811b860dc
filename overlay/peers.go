package overlay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// peerDB is what this node knows of a network's remote endpoints. Several
// records may exist for one IP (an address reused on another node before
// the old record is gone); the first one is programmed, and when it goes
// the next one takes over. The kernel state is a function of the records:
//
//   - a permanent neighbour entry IP -> MAC on vxlan0 per IP (the first
//     record's), which vxlan0 answers ARP from;
//   - a permanent FDB entry MAC -> VTEP on vxlan0 per MAC used by a
//     programmed record. Several programmed IPs may share one MAC (one
//     interface with several addresses); refs counts them, and the entry
//     is removed when the last one goes.
type peerDB struct {
	byIP map[netip.Addr][]Peer
	refs map[string]map[netip.Addr]int // MAC -> VTEP -> programmed records using it
}

func newPeerDB() *peerDB {
	return &peerDB{byIP: map[netip.Addr][]Peer{}, refs: map[string]map[netip.Addr]int{}}
}

func (db *peerDB) len() int {
	if db == nil {
		return 0
	}
	return len(db.byIP)
}

func (db *peerDB) ref(p Peer, d int) {
	k := p.MAC.String()
	if db.refs[k] == nil {
		db.refs[k] = map[netip.Addr]int{}
	}
	db.refs[k][p.VTEP] += d
	if db.refs[k][p.VTEP] <= 0 {
		delete(db.refs[k], p.VTEP)
		if len(db.refs[k]) == 0 {
			delete(db.refs, k)
		}
	}
}

// fdbTarget is the VTEP the kernel should send mac to: the lowest VTEP
// among the programmed records with this MAC (normally there is only one).
func (db *peerDB) fdbTarget(mac string) (netip.Addr, bool) {
	vteps := db.refs[mac]
	if len(vteps) == 0 {
		return netip.Addr{}, false
	}
	var best netip.Addr
	for v := range vteps {
		if !best.IsValid() || v.Less(best) {
			best = v
		}
	}
	return best, true
}

// add inserts p; it reports the programmed record of p.IP before and after.
func (db *peerDB) add(p Peer) (before, after *Peer) {
	recs := db.byIP[p.IP]
	if len(recs) > 0 {
		b := recs[0]
		before = &b
	}
	for _, r := range recs {
		if samePeer(r, p) {
			return before, before
		}
	}
	db.byIP[p.IP] = append(recs, p)
	a := db.byIP[p.IP][0]
	if before == nil {
		db.ref(a, 1)
	}
	return before, &a
}

// remove deletes p; it reports the programmed record of p.IP before and
// after, and whether p was known.
func (db *peerDB) remove(p Peer) (before, after *Peer, found bool) {
	recs := db.byIP[p.IP]
	for i, r := range recs {
		if !samePeer(r, p) {
			continue
		}
		b := recs[0]
		before = &b
		recs = append(recs[:i:i], recs[i+1:]...)
		if len(recs) == 0 {
			delete(db.byIP, p.IP)
		} else {
			db.byIP[p.IP] = recs
			a := recs[0]
			after = &a
		}
		if i == 0 {
			db.ref(b, -1)
			if after != nil {
				db.ref(*after, 1)
			}
		}
		return before, after, true
	}
	if len(recs) > 0 {
		b := recs[0]
		return &b, &b, false
	}
	return nil, nil, false
}

func samePeer(a, b Peer) bool {
	return a.IP == b.IP && a.VTEP == b.VTEP && bytes.Equal(a.MAC, b.MAC)
}

// normalizePeer validates p and fills in a default MAC. It reports false
// for records of this node itself, which are not programmed.
func (m *Manager) normalizePeer(networkID string, p Peer) (Peer, bool, error) {
	if !p.IP.Is4() || !p.VTEP.Is4() {
		return p, false, fmt.Errorf("overlay: network %s: peer %s: IPv4 address and VTEP required", networkID, p)
	}
	if p.MAC == nil {
		p.MAC = macFromIP(p.IP)
	}
	if len(p.MAC) != 6 {
		return p, false, fmt.Errorf("overlay: network %s: peer %s: bad MAC", networkID, p)
	}
	p.MAC = append(net.HardwareAddr(nil), p.MAC...)
	return p, p.VTEP != m.cfg.DataPathAddr, nil
}

// SetPeers makes peers the complete set of remote endpoints of the network
// on this node, and makes the sandbox's neighbour and FDB entries match it
// exactly (removing any others). Records whose VTEP is this node's own
// data-path address are ignored. It may be called before EnsureNetwork; the
// entries are then programmed when the sandbox is created.
func (m *Manager) SetPeers(ctx context.Context, networkID string, peers []Peer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	db := newPeerDB()
	for _, p := range peers {
		p, remote, err := m.normalizePeer(networkID, p)
		if err != nil {
			return err
		}
		if remote {
			db.add(p)
		}
	}
	m.peers[networkID] = db
	n, ok := m.networks[networkID]
	if !ok {
		return nil
	}
	if err := m.syncAllPeers(m.sandboxes[n.VNI], db); err != nil {
		return fmt.Errorf("overlay: network %s: %w", networkID, err)
	}
	return nil
}

// AddPeer adds one remote endpoint of the network (idempotent).
func (m *Manager) AddPeer(ctx context.Context, networkID string, p Peer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	p, remote, err := m.normalizePeer(networkID, p)
	if err != nil || !remote {
		return err
	}
	db := m.peers[networkID]
	if db == nil {
		db = newPeerDB()
		m.peers[networkID] = db
	}
	before, after := db.add(p)
	return m.syncPeerChange(networkID, before, after)
}

// RemovePeer removes one remote endpoint of the network, and its kernel
// entries unless another record still needs them. Unknown peers are not
// an error.
func (m *Manager) RemovePeer(ctx context.Context, networkID string, p Peer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	p, remote, err := m.normalizePeer(networkID, p)
	if err != nil || !remote {
		return err
	}
	db := m.peers[networkID]
	if db == nil {
		return nil
	}
	before, after, found := db.remove(p)
	if !found {
		return nil
	}
	return m.syncPeerChange(networkID, before, after)
}

// syncPeerChange programs the change of one IP's programmed record.
func (m *Manager) syncPeerChange(networkID string, before, after *Peer) error {
	n, ok := m.networks[networkID]
	if !ok {
		return nil
	}
	sb := m.sandboxes[n.VNI]
	db := m.peers[networkID]
	idx, err := sb.vxlanIndex()
	if err != nil {
		return fmt.Errorf("overlay: network %s: %w", networkID, err)
	}
	ip := before
	if ip == nil {
		ip = after
	}
	if ip == nil {
		return nil
	}
	var errs []error
	if after != nil {
		errs = append(errs, neighSet(sb.h, idx, *after))
	} else {
		errs = append(errs, neighDel(sb.h, idx, ip.IP))
	}
	macs := map[string]net.HardwareAddr{}
	if before != nil {
		macs[before.MAC.String()] = before.MAC
	}
	if after != nil {
		macs[after.MAC.String()] = after.MAC
	}
	for k, mac := range macs {
		if vtep, ok := db.fdbTarget(k); ok {
			errs = append(errs, fdbSet(sb.h, idx, mac, vtep))
		} else if before != nil && bytes.Equal(before.MAC, mac) {
			errs = append(errs, fdbDel(sb.h, idx, mac, before.VTEP))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("overlay: network %s: peer %s: %w", networkID, ip.IP, err)
	}
	return nil
}

// syncAllPeers makes the sandbox's neighbour and FDB entries on vxlan0 equal
// to what db says, removing every other entry.
func (m *Manager) syncAllPeers(sb *sandbox, db *peerDB) error {
	idx, err := sb.vxlanIndex()
	if err != nil {
		return err
	}
	wantNeigh := map[netip.Addr]net.HardwareAddr{}
	wantFDB := map[string]netip.Addr{}
	macs := map[string]net.HardwareAddr{}
	for ip, recs := range db.byIP {
		wantNeigh[ip] = recs[0].MAC
		macs[recs[0].MAC.String()] = recs[0].MAC
	}
	haveNeigh, haveFDB, err := listPeerEntries(sb.h, idx)
	if err != nil {
		return err
	}
	for k := range macs {
		if v, ok := db.fdbTarget(k); ok {
			wantFDB[k] = v
		}
	}
	var errs []error
	for ip := range haveNeigh {
		if _, ok := wantNeigh[ip]; !ok {
			errs = append(errs, neighDel(sb.h, idx, ip))
		}
	}
	for k, e := range haveFDB {
		if w, ok := wantFDB[k]; !ok || w != e.vtep {
			errs = append(errs, fdbDel(sb.h, idx, e.mac, e.vtep))
		}
	}
	for _, ip := range sortedAddrs(wantNeigh) {
		errs = append(errs, neighSet(sb.h, idx, Peer{IP: ip, MAC: wantNeigh[ip]}))
	}
	for k, v := range wantFDB {
		errs = append(errs, fdbSet(sb.h, idx, macs[k], v))
	}
	return errors.Join(errs...)
}

type fdbEntry struct {
	mac  net.HardwareAddr
	vtep netip.Addr
}

// listPeerEntries returns the permanent neighbour entries and the remote FDB
// entries on vxlan0.
func listPeerEntries(h *netlink.Handle, idx int) (map[netip.Addr]net.HardwareAddr, map[string]fdbEntry, error) {
	neighs, err := h.NeighList(idx, unix.AF_INET)
	if err != nil {
		return nil, nil, fmt.Errorf("list neighbours of %s: %w", vxlanName, err)
	}
	outN := map[netip.Addr]net.HardwareAddr{}
	for _, n := range neighs {
		ip, ok := netip.AddrFromSlice(n.IP.To4())
		if !ok || n.State&netlink.NUD_PERMANENT == 0 || len(n.HardwareAddr) != 6 {
			continue
		}
		outN[ip] = n.HardwareAddr
	}
	fdb, err := h.NeighList(idx, unix.AF_BRIDGE)
	if err != nil {
		return nil, nil, fmt.Errorf("list FDB of %s: %w", vxlanName, err)
	}
	outF := map[string]fdbEntry{}
	for _, n := range fdb {
		vtep, ok := netip.AddrFromSlice(n.IP.To4())
		if !ok || len(n.HardwareAddr) != 6 || bytes.Equal(n.HardwareAddr, make([]byte, 6)) {
			continue
		}
		outF[n.HardwareAddr.String()] = fdbEntry{mac: n.HardwareAddr, vtep: vtep}
	}
	return outN, outF, nil
}

// readPeers rebuilds a peer database from a sandbox's kernel entries.
func (m *Manager) readPeers(sb *sandbox) (*peerDB, error) {
	db := newPeerDB()
	idx, err := sb.vxlanIndex()
	if err != nil {
		return db, err
	}
	neighs, fdb, err := listPeerEntries(sb.h, idx)
	if err != nil {
		return db, err
	}
	for ip, mac := range neighs {
		if e, ok := fdb[mac.String()]; ok {
			db.add(Peer{IP: ip, MAC: mac, VTEP: e.vtep})
		}
	}
	return db, nil
}

func neighSet(h *netlink.Handle, idx int, p Peer) error {
	err := h.NeighSet(&netlink.Neigh{
		LinkIndex: idx, Family: unix.AF_INET, State: netlink.NUD_PERMANENT,
		Type: unix.RTN_UNICAST, IP: net.IP(p.IP.AsSlice()), HardwareAddr: p.MAC,
	})
	if err != nil {
		return fmt.Errorf("set neighbour %s -> %s: %w", p.IP, p.MAC, err)
	}
	return nil
}

func neighDel(h *netlink.Handle, idx int, ip netip.Addr) error {
	err := h.NeighDel(&netlink.Neigh{LinkIndex: idx, Family: unix.AF_INET, IP: net.IP(ip.AsSlice())})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("delete neighbour %s: %w", ip, err)
	}
	return nil
}

func fdbSet(h *netlink.Handle, idx int, mac net.HardwareAddr, vtep netip.Addr) error {
	err := h.NeighSet(&netlink.Neigh{
		LinkIndex: idx, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
		State: netlink.NUD_PERMANENT, IP: net.IP(vtep.AsSlice()), HardwareAddr: mac,
	})
	if err != nil {
		return fmt.Errorf("set FDB %s -> %s: %w", mac, vtep, err)
	}
	return nil
}

func fdbDel(h *netlink.Handle, idx int, mac net.HardwareAddr, vtep netip.Addr) error {
	err := h.NeighDel(&netlink.Neigh{
		LinkIndex: idx, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
		State: netlink.NUD_PERMANENT, IP: net.IP(vtep.AsSlice()), HardwareAddr: mac,
	})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("delete FDB %s -> %s: %w", mac, vtep, err)
	}
	return nil
}

func sortedAddrs[V any](m map[netip.Addr]V) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}
