package overlay

import (
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/shoal-project/shoal/overlay/internal/nsutil"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// twoHostApp builds two hosts with network "app" and a task on each:
// t1 (198.19.1.11) on h1 and t2 (198.19.1.12) on h2, peers programmed.
func twoHostApp(t *testing.T) (l *lab, t1, t2 *endpoint, a1, a2 Attachment) {
	l = newLab(t, 2)
	h1, h2 := l.hosts[0], l.hosts[1]
	h1.start()
	h2.start()
	app := testNet("app", 4097, "198.19.1.0/24")
	for _, h := range l.hosts {
		mustT(t, h.m.EnsureNetwork(l.ctx, app), h.name+": EnsureNetwork")
	}
	t1, t2 = l.task("t1"), l.task("t2")
	a1, a2 = att("app", "198.19.1.11/24"), att("app", "198.19.1.12/24")
	mustT(t, h1.m.AttachTask(l.ctx, Task{ID: "t1", NetNSPath: t1.path, Attachments: []Attachment{a1}}), "attach t1")
	mustT(t, h2.m.AttachTask(l.ctx, Task{ID: "t2", NetNSPath: t2.path, Attachments: []Attachment{a2}}), "attach t2")
	peers := []Peer{peerOf(a1, h1), peerOf(a2, h2)}
	mustT(t, h1.m.SetPeers(l.ctx, "app", peers), "h1 peers")
	mustT(t, h2.m.SetPeers(l.ctx, "app", peers), "h2 peers")
	return l, t1, t2, a1, a2
}

func TestCrossHostTasks(t *testing.T) {
	l, t1, t2, _, _ := twoHostApp(t)
	h1 := l.hosts[0]
	l.serveTCP(t1, ":8080", sayName("t1"))
	l.serveTCP(t2, ":8080", sayName("t2"))
	l.serveTCP(t2, ":8081", echo)
	l.serveUDP(t2, ":9000", "t2")

	mustFetch(t, t1, "198.19.1.12:8080", "t2")
	mustFetch(t, t2, "198.19.1.11:8080", "t1")
	// A datagram that fills the overlay MTU, and one that must be
	// fragmented: both only pass if every hop agrees on the MTU.
	for _, size := range []int{1350 - 28, 3000} {
		if got, err := udpAsk(t1, "198.19.1.12:9000", size); err != nil || got != "t2" {
			t.Fatalf("udp %d bytes t1 -> t2: %q, %v", size, got, err)
		}
	}
	transfer(t, t1, "198.19.1.12:8081", 2<<20)

	// What the task got: eth0 on the overlay, eth1 on the egress bridge
	// carrying the default route.
	th := l.handle(t1.ns)
	eth0, err := th.LinkByName("eth0")
	mustT(t, err, "t1 eth0")
	if eth0.Attrs().MTU != 1350 || eth0.Attrs().HardwareAddr.String() != "02:42:c6:13:01:0b" || eth0.Attrs().OperState != netlink.OperUp {
		t.Errorf("t1 eth0: mtu %d mac %s state %s", eth0.Attrs().MTU, eth0.Attrs().HardwareAddr, eth0.Attrs().OperState)
	}
	eth1, err := th.LinkByName("eth1")
	mustT(t, err, "t1 eth1")
	if eth1.Attrs().MTU != labUnderlayMTU {
		t.Errorf("t1 eth1 MTU %d, want %d", eth1.Attrs().MTU, labUnderlayMTU)
	}
	routes, err := th.RouteList(nil, netlink.FAMILY_V4)
	mustT(t, err, "routes")
	var gw string
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() {
			gw = r.Gw.String()
			if r.LinkIndex != eth1.Attrs().Index {
				t.Errorf("default route on link %d, want eth1", r.LinkIndex)
			}
		}
	}
	if gw != "198.19.250.1" {
		t.Errorf("t1 default gateway %q, want 198.19.250.1", gw)
	}

	// The sandbox's vxlan0: learning off, proxy ARP, local address, port.
	sb := h1.m.sandboxes[4097]
	vx, err := sb.h.LinkByName("vxlan0")
	mustT(t, err, "vxlan0")
	v := vx.(*netlink.Vxlan)
	if v.Learning || !v.Proxy || v.Port != 4789 || !v.SrcAddr.Equal(net.IP(h1.addr.AsSlice())) || v.VxlanId != 4097 || v.MTU != 1350 {
		t.Errorf("vxlan0: %+v", v)
	}
	if val, err := nsutil.ReadSysctl(sb.ns, "net.bridge.bridge-nf-call-iptables"); err != nil || val != "0" {
		t.Errorf("sandbox bridge-nf-call-iptables = %q, %v", val, err)
	}

	// Egress: an outside server sees the node's address; UDP (a resolver's
	// upstream query) works too.
	l.serveTCP(l.client, ":80", sayRemote)
	l.serveUDP(l.client, ":53", "upstream")
	mustFetch(t, t1, "198.18.0.100:80", "198.18.0.1")
	mustFetch(t, t2, "198.18.0.100:80", "198.18.0.2")
	if got, err := udpAsk(t1, "198.18.0.100:53", 60); err != nil || got != "upstream" {
		t.Fatalf("udp to outside: %q, %v", got, err)
	}

	// Detach: the task's interfaces go; the other task stops answering.
	mustT(t, l.hosts[1].m.DetachTask(l.ctx, "t2"), "detach t2")
	if got := l.links(t2.ns); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("t2 links after detach: %v", got)
	}
	unreachable(t, t1, "198.19.1.12:8080", 300*millis)
}

// TestIdempotentAndRepair applies everything twice, breaks the plumbing in
// several ways and checks that applying again repairs it.
func TestIdempotentAndRepair(t *testing.T) {
	l, t1, t2, a1, a2 := twoHostApp(t)
	h1, h2 := l.hosts[0], l.hosts[1]
	l.serveTCP(t2, ":8080", sayName("t2"))
	mustFetch(t, t1, "198.19.1.12:8080", "t2")
	app := testNet("app", 4097, "198.19.1.0/24")
	task1 := Task{ID: "t1", NetNSPath: t1.path, Attachments: []Attachment{a1}}
	peers := []Peer{peerOf(a1, h1), peerOf(a2, h2)}

	snapshot := func() [3][]string {
		return [3][]string{l.links(h1.ns), l.links(h1.m.sandboxes[4097].ns), l.links(t1.ns)}
	}
	before := snapshot()
	reapply := func() {
		t.Helper()
		mustT(t, h1.m.EnsureNetwork(l.ctx, app), "EnsureNetwork again")
		mustT(t, h1.m.AttachTask(l.ctx, task1), "AttachTask again")
		mustT(t, h1.m.SetPeers(l.ctx, "app", peers), "SetPeers again")
		mustT(t, h1.m.AddPeer(l.ctx, "app", peerOf(a2, h2)), "AddPeer again")
	}
	reapply()
	if after := snapshot(); !slices.Equal(before[0], after[0]) || !slices.Equal(before[1], after[1]) || !slices.Equal(before[2], after[2]) {
		t.Fatalf("re-applying changed the links: %v -> %v", before, after)
	}
	mustFetch(t, t1, "198.19.1.12:8080", "t2")

	// Break things on h1.
	sb := h1.m.sandboxes[4097]
	br, _ := sb.h.LinkByName("br0")
	mustT(t, sb.h.LinkSetDown(br), "br0 down")
	vx, _ := sb.h.LinkByName("vxlan0")
	mustT(t, sb.h.LinkDel(vx), "delete vxlan0")
	th := l.handle(t1.ns)
	eth0, _ := th.LinkByName("eth0")
	mustT(t, th.AddrDel(eth0, &netlink.Addr{IPNet: ipNet(a1.Address)}), "delete t1 address")
	mustT(t, th.LinkSetMTU(eth0, 1500), "t1 mtu")
	unreachable(t, t1, "198.19.1.12:8080", 300*millis)

	reapply()
	mustFetch(t, t1, "198.19.1.12:8080", "t2")
	eth0, _ = th.LinkByName("eth0")
	if eth0.Attrs().MTU != 1350 {
		t.Errorf("t1 eth0 MTU %d after repair", eth0.Attrs().MTU)
	}

	// A stray neighbour entry disappears with the next SetPeers.
	idx, _ := sb.vxlanIndex()
	stray := Peer{IP: netip.MustParseAddr("198.19.1.99"), MAC: macFromIP(netip.MustParseAddr("198.19.1.99")), VTEP: netip.MustParseAddr("198.18.0.9")}
	mustT(t, neighSet(sb.h, idx, stray), "stray neigh")
	mustT(t, fdbSet(sb.h, idx, stray.MAC, stray.VTEP), "stray fdb")
	mustT(t, h1.m.SetPeers(l.ctx, "app", peers), "SetPeers")
	neigh, fdb, err := listPeerEntries(sb.h, idx)
	mustT(t, err, "list")
	if len(neigh) != 1 || len(fdb) != 1 || neigh[a2.Address.Addr()] == nil {
		t.Fatalf("after SetPeers: neigh %v fdb %v", neigh, fdb)
	}
}

// TestPeerRefcount checks the neighbour and FDB entries as peers come and
// go: shared MACs keep their FDB entry until the last user goes, and a
// reused IP falls back to its next record.
func TestPeerRefcount(t *testing.T) {
	l := newLab(t, 1)
	h := l.hosts[0]
	m := h.start()
	mustT(t, m.EnsureNetwork(l.ctx, testNet("app", 4097, "198.19.1.0/24")), "EnsureNetwork")
	sb := m.sandboxes[4097]
	idx, err := sb.vxlanIndex()
	mustT(t, err, "vxlan index")
	state := func() (map[netip.Addr]net.HardwareAddr, map[string]fdbEntry) {
		t.Helper()
		n, f, err := listPeerEntries(sb.h, idx)
		mustT(t, err, "list entries")
		return n, f
	}
	ip := netip.MustParseAddr
	mac := net.HardwareAddr{0x02, 0x42, 0xaa, 0, 0, 1}
	vA, vB := ip("198.18.0.7"), ip("198.18.0.8")
	p50 := Peer{IP: ip("198.19.1.50"), MAC: mac, VTEP: vA}
	p51 := Peer{IP: ip("198.19.1.51"), MAC: mac, VTEP: vA}

	mustT(t, m.AddPeer(l.ctx, "app", p50), "add .50")
	mustT(t, m.AddPeer(l.ctx, "app", p51), "add .51")
	mustT(t, m.AddPeer(l.ctx, "app", p51), "add .51 again")
	n, f := state()
	if len(n) != 2 || f[mac.String()].vtep != vA {
		t.Fatalf("two IPs on one MAC: neigh %v fdb %v", n, f)
	}
	mustT(t, m.RemovePeer(l.ctx, "app", p50), "remove .50")
	n, f = state()
	if _, ok := n[p50.IP]; ok || len(n) != 1 || f[mac.String()].vtep != vA {
		t.Fatalf("after removing .50: neigh %v fdb %v (the FDB entry must stay for .51)", n, f)
	}
	mustT(t, m.RemovePeer(l.ctx, "app", p51), "remove .51")
	n, f = state()
	if len(n) != 0 || len(f) != 0 {
		t.Fatalf("after removing both: neigh %v fdb %v", n, f)
	}

	// An address reused on another node before the old record is gone.
	old := Peer{IP: ip("198.19.1.60"), MAC: macFromIP(ip("198.19.1.60")), VTEP: vA}
	reused := Peer{IP: old.IP, MAC: old.MAC, VTEP: vB}
	mustT(t, m.AddPeer(l.ctx, "app", old), "add old")
	mustT(t, m.AddPeer(l.ctx, "app", reused), "add reused")
	if _, f = state(); f[old.MAC.String()].vtep != vA {
		t.Fatalf("first record must stay programmed: %v", f)
	}
	mustT(t, m.RemovePeer(l.ctx, "app", old), "remove old")
	n, f = state()
	if n[old.IP] == nil || f[old.MAC.String()].vtep != vB {
		t.Fatalf("after the old record went, the reused one must be programmed: neigh %v fdb %v", n, f)
	}
	mustT(t, m.RemovePeer(l.ctx, "app", reused), "remove reused")
	mustT(t, m.RemovePeer(l.ctx, "app", reused), "remove unknown")
	if n, f = state(); len(n) != 0 || len(f) != 0 {
		t.Fatalf("entries left: %v %v", n, f)
	}

	// Own records are ignored; peers set before the network exists are
	// programmed when it is created.
	mustT(t, m.SetPeers(l.ctx, "later", []Peer{{IP: ip("198.19.9.2"), VTEP: vA}, {IP: ip("198.19.9.3"), VTEP: h.addr}}), "SetPeers before network")
	mustT(t, m.EnsureNetwork(l.ctx, testNet("later", 4098, "198.19.9.0/24")), "EnsureNetwork later")
	sb2 := m.sandboxes[4098]
	idx2, _ := sb2.vxlanIndex()
	n2, f2, err := listPeerEntries(sb2.h, idx2)
	mustT(t, err, "list later")
	if len(n2) != 1 || n2[ip("198.19.9.2")] == nil || len(f2) != 1 {
		t.Fatalf("late network entries: %v %v", n2, f2)
	}
}

// TestIsolation runs two networks with the same subnet on the same hosts:
// each task reaches only its own network's tasks, and the egress bridge
// connects nobody.
func TestIsolation(t *testing.T) {
	l := newLab(t, 2)
	h1, h2 := l.hosts[0], l.hosts[1]
	h1.start()
	h2.start()
	netA, netB := testNet("a", 5001, "198.19.3.0/24"), testNet("b", 5002, "198.19.3.0/24")
	for _, h := range l.hosts {
		mustT(t, h.m.EnsureNetwork(l.ctx, netA), "ensure a")
		mustT(t, h.m.EnsureNetwork(l.ctx, netB), "ensure b")
	}
	ta1, ta2, tb1, tb2 := l.task("a1"), l.task("a2"), l.task("b1"), l.task("b2")
	aa1, aa2 := att("a", "198.19.3.10/24"), att("a", "198.19.3.11/24")
	ab1, ab2 := att("b", "198.19.3.20/24"), att("b", "198.19.3.11/24")
	mustT(t, h1.m.AttachTask(l.ctx, Task{ID: "a1", NetNSPath: ta1.path, Attachments: []Attachment{aa1}}), "a1")
	mustT(t, h2.m.AttachTask(l.ctx, Task{ID: "a2", NetNSPath: ta2.path, Attachments: []Attachment{aa2}}), "a2")
	mustT(t, h1.m.AttachTask(l.ctx, Task{ID: "b1", NetNSPath: tb1.path, Attachments: []Attachment{ab1}}), "b1")
	mustT(t, h2.m.AttachTask(l.ctx, Task{ID: "b2", NetNSPath: tb2.path, Attachments: []Attachment{ab2}}), "b2")
	for _, h := range l.hosts {
		mustT(t, h.m.SetPeers(l.ctx, "a", []Peer{peerOf(aa1, h1), peerOf(aa2, h2)}), "peers a")
		mustT(t, h.m.SetPeers(l.ctx, "b", []Peer{peerOf(ab1, h1), peerOf(ab2, h2)}), "peers b")
	}
	for _, ep := range []*endpoint{ta2, tb1, tb2} {
		l.serveTCP(ep, ":80", sayName(ep.name))
	}
	mustFetch(t, ta1, "198.19.3.11:80", "a2")
	mustFetch(t, tb1, "198.19.3.11:80", "b2")
	// b1 is on the same host as a1, on the other network.
	unreachable(t, ta1, "198.19.3.20:80", 300*millis)
	// Nor through the egress bridge.
	b1egress, ok := h1.m.egressAddr("b1")
	if !ok {
		t.Fatal("b1 has no egress address")
	}
	unreachable(t, ta1, netip.AddrPortFrom(b1egress, 80).String(), 300*millis)
	mustFetch(t, tb2, "198.19.3.20:80", "b1")
}

// TestTeardownLeavesNothing builds everything, makes traffic, tears down
// and checks the namespaces, mounts, links, tables and conntrack entries.
func TestTeardownLeavesNothing(t *testing.T) {
	l, t1, t2, a1, _ := twoHostApp(t)
	h1, h2 := l.hosts[0], l.hosts[1]
	ing := testNet("ingress", 4096, "198.19.2.0/24")
	ing1, ing2 := netip.MustParsePrefix("198.19.2.241/24"), netip.MustParsePrefix("198.19.2.242/24")
	mustT(t, h1.m.EnsureIngress(l.ctx, ing, ing1), "ingress h1")
	mustT(t, h2.m.EnsureIngress(l.ctx, ing, ing2), "ingress h2")
	vip := netip.MustParseAddr("198.19.1.200")
	for _, h := range l.hosts {
		mustT(t, h.m.SetServices(l.ctx, "app", []Service{{ID: "web", VIP: vip, Backends: []netip.Addr{a1.Address.Addr()}}}), "services")
		mustT(t, h.m.SetClusterPeers(l.ctx, []netip.Addr{h1.addr, h2.addr}), "cluster peers")
		mustT(t, h.m.SetPublishedPorts(l.ctx, []PublishedPort{{Service: "web", Protocol: TCP, PublishedPort: 8080, TargetPort: 80, Mode: PublishHost}}), "published")
	}
	mustT(t, h1.m.SetPublishedPorts(l.ctx, []PublishedPort{{Service: "web", Protocol: TCP, PublishedPort: 8080, TargetPort: 80, Mode: PublishHost, Tasks: []string{"t1"}}}), "published h1")
	l.serveTCP(t1, ":80", sayName("t1"))
	l.serveTCP(t2, ":80", sayName("t2"))
	l.serveTCP(l.client, ":80", sayName("outside"))
	mustFetch(t, t2, vip.String()+":80", "t1")
	mustFetch(t, l.client, "198.18.0.1:8080", "t1")
	mustFetch(t, t1, "198.18.0.100:80", "outside")
	if len(l.tables(t1.ns)) == 0 || len(l.tables(h1.ns)) == 0 {
		t.Fatal("expected tables before teardown")
	}

	for _, h := range l.hosts {
		mustT(t, h.m.Teardown(l.ctx), h.name+": Teardown")
		h.m = nil
	}
	for _, h := range l.hosts {
		if got := l.links(h.ns); !slices.Equal(got, []string{"lo", "eth0"}) {
			t.Errorf("%s links after teardown: %v", h.name, got)
		}
		if got := l.tables(h.ns); len(got) != 0 {
			t.Errorf("%s tables after teardown: %v", h.name, got)
		}
		if _, err := netlinkStat(h.dir + "/netns"); err == nil {
			t.Errorf("%s: %s/netns still exists", h.name, h.dir)
		}
		points, err := nsutil.MountPoints()
		mustT(t, err, "mount points")
		for _, p := range points {
			if strings.HasPrefix(p, h.dir) {
				t.Errorf("%s: mount left: %s", h.name, p)
			}
		}
		hh := l.handle(h.ns)
		flows, err := hh.ConntrackTableList(netlink.ConntrackTable, netlink.FAMILY_V4)
		mustT(t, err, "conntrack list")
		for _, f := range flows {
			if overlayFlows([]netip.Prefix{netip.MustParsePrefix("198.19.0.0/16")}).MatchConntrackFlow(f) {
				t.Errorf("%s: conntrack entry left: %s", h.name, f)
			}
		}
	}
	flows, err := l.handle(t2.ns).ConntrackTableList(netlink.ConntrackTable, netlink.FAMILY_V4)
	mustT(t, err, "t2 conntrack")
	for _, f := range flows {
		if f.Forward.DstIP.Equal(net.IP(vip.AsSlice())) {
			t.Errorf("t2: conntrack entry of a VIP flow left: %s", f)
		}
	}
	for _, ep := range []*endpoint{t1, t2} {
		if got := l.links(ep.ns); !slices.Equal(got, []string{"lo"}) {
			t.Errorf("%s links after teardown: %v", ep.name, got)
		}
		if got := l.tables(ep.ns); len(got) != 0 {
			t.Errorf("%s tables after teardown: %v", ep.name, got)
		}
	}
	// The state directory can be used again at once (the VNI's UDP port is
	// free in the node's namespace).
	m := h1.start()
	mustT(t, m.EnsureNetwork(l.ctx, testNet("app", 4097, "198.19.1.0/24")), "EnsureNetwork after teardown")
	mustT(t, m.Teardown(l.ctx), "second teardown")
	h1.m = nil
	if err := m.EnsureNetwork(l.ctx, testNet("app", 4097, "198.19.1.0/24")); err != ErrClosed {
		t.Errorf("after Teardown: %v, want ErrClosed", err)
	}
}

func netlinkStat(path string) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := unix.Stat(path, &st)
	return st, err
}

// TestDefaultNodeNamespace runs New from a thread inside the host's
// namespace with no NetNSPath, as the daemon does: everything must land in
// that namespace, none in the test process's own.
func TestDefaultNodeNamespace(t *testing.T) {
	l := newLab(t, 1)
	h := l.hosts[0]
	cfg := h.config()
	cfg.NetNSPath = ""
	cfg.EgressBridge = "shoal_dfltns"
	var m *Manager
	mustT(t, nsutil.Do(h.ns, func() (err error) { m, err = New(l.ctx, cfg); return err }), "New inside the host")
	h.m = m
	root := l.handle(l.origNS)
	t.Cleanup(func() {
		if lk, err := root.LinkByName(cfg.EgressBridge); err == nil {
			root.LinkDel(lk)
		}
	})
	// Called from the test's own thread from now on.
	mustT(t, m.EnsureNetwork(l.ctx, testNet("app", 4097, "198.19.1.0/24")), "EnsureNetwork")
	hh := l.handle(h.ns)
	if _, err := hh.LinkByName(cfg.EgressBridge); err != nil {
		t.Fatalf("egress bridge not in the host: %v", err)
	}
	if _, err := root.LinkByName(cfg.EgressBridge); err == nil {
		t.Fatal("egress bridge created in the test process's namespace")
	}
	// The VXLAN UDP socket (port 4789 = 0x12B5) is in the host.
	var udp []byte
	mustT(t, nsutil.Do(h.ns, func() (err error) { udp, err = os.ReadFile("/proc/thread-self/net/udp"); return err }), "read udp sockets")
	if !strings.Contains(string(udp), ":12B5 ") {
		t.Fatalf("no VXLAN socket in the host:\n%s", udp)
	}
	if v, err := nsutil.ReadSysctl(h.ns, "net.ipv4.ip_forward"); err != nil || v != "1" {
		t.Fatalf("ip_forward in host: %q, %v", v, err)
	}
	mustT(t, m.Teardown(l.ctx), "Teardown")
	h.m = nil
}
