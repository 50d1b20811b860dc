package overlay

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/google/nftables"
	"github.com/shoal-project/shoal/overlay/internal/nsutil"
	"github.com/vishvananda/netlink"
)

// TestReplaceIngress moves the routing mesh of three hosts from one
// ingress network to another, as the daemon does when the swarm's ingress
// network is removed and a new one created: RemoveIngress leaves nothing
// of the old endpoint (link, address, route, mesh rules, reservations,
// conntrack entries), RemoveNetwork then the sandbox, and EnsureIngress on
// a new network, with the old one's VNI, serves the published ports again
// on every host.
func TestReplaceIngress(t *testing.T) {
	ml := newMeshLab(t)
	l := ml.lab
	h1, h2, h3 := l.hosts[0], l.hosts[1], l.hosts[2]
	hostPort := PublishedPort{Service: "hm", Protocol: TCP, PublishedPort: 9099, TargetPort: 80, Mode: PublishHost}
	for _, h := range l.hosts {
		ml.publish(h, append(ingressPorts(both), hostPort)...)
	}
	for _, h := range l.hosts {
		mustFetchOneOf(t, l.client, h.addr.String()+":8080", "w2", "w3")
	}
	if got, err := udpAsk(l.client, "198.18.0.1:5353", 100); err != nil || (got != "w2" && got != "w3") {
		t.Fatalf("udp via mesh: %q, %v", got, err)
	}
	old := ml.ing.Subnet

	// h1 runs no task of the old network: everything goes.
	mustT(t, h1.m.RemoveIngress(l.ctx), "h1: RemoveIngress")
	mustT(t, h1.m.RemoveIngress(l.ctx), "h1: RemoveIngress again")
	mustT(t, h1.m.RemoveNetwork(l.ctx, "ingress"), "h1: RemoveNetwork")
	checkNoIngress(t, l, h1, old)
	if got := sandboxFiles(t, h1); len(got) != 0 {
		t.Errorf("h1: sandboxes left: %v", got)
	}
	// Its ingress-mode ports are gone, reservations too; the host-mode
	// port stays reserved.
	if _, err := fetch(l.client, "198.18.0.1:8080"); err == nil {
		t.Error("h1 still answers port 8080 without an ingress endpoint")
	}
	if err := bindIn(h1, 8080); err != nil {
		t.Errorf("h1: port 8080 still reserved: %v", err)
	}
	if err := bindIn(h1, 9099); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("h1: host-mode port 9099: bind gave %v, want EADDRINUSE", err)
	}

	// h2 still has w2 on the old network: its sandbox stays, with w2's
	// interface, until the task goes.
	mustT(t, h2.m.RemoveIngress(l.ctx), "h2: RemoveIngress")
	checkNoIngress(t, l, h2, old)
	if got := sandboxFiles(t, h2); !slices.Equal(got, []string{"ov-4096"}) {
		t.Errorf("h2: sandboxes with a task still attached: %v, want ov-4096", got)
	}
	if err := h2.m.RemoveNetwork(l.ctx, "ingress"); err == nil {
		t.Error("h2: RemoveNetwork with a task attached succeeded")
	}
	mustT(t, h2.m.DetachTask(l.ctx, "w2"), "h2: detach w2")
	mustT(t, h2.m.RemoveNetwork(l.ctx, "ingress"), "h2: RemoveNetwork")
	mustT(t, h3.m.DetachTask(l.ctx, "w3"), "h3: detach w3")
	mustT(t, h3.m.RemoveIngress(l.ctx), "h3: RemoveIngress")
	mustT(t, h3.m.RemoveNetwork(l.ctx, "ingress"), "h3: RemoveNetwork")
	for _, h := range l.hosts {
		checkNoIngress(t, l, h, old)
		if got := sandboxFiles(t, h); len(got) != 0 {
			t.Errorf("%s: sandboxes left: %v", h.name, got)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// The new ingress network, with the same VNI, and new tasks on it.
	ing2 := testNet("ingress2", 4096, "198.19.3.0/24")
	var peers []Peer
	for i, h := range l.hosts {
		addr := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, 3, byte(241 + i)}), 24)
		mustT(t, h.m.EnsureIngress(l.ctx, ing2, addr), h.name+": EnsureIngress on the new network")
		peers = append(peers, Peer{IP: addr.Addr(), MAC: macFromIP(addr.Addr()), VTEP: h.addr})
	}
	n2, n3 := l.task("n2"), l.task("n3")
	a2, a3 := att("ingress2", "198.19.3.12/24"), att("ingress2", "198.19.3.13/24")
	mustT(t, h2.m.AttachTask(l.ctx, Task{ID: "n2", NetNSPath: n2.path, Attachments: []Attachment{a2}}), "attach n2")
	mustT(t, h3.m.AttachTask(l.ctx, Task{ID: "n3", NetNSPath: n3.path, Attachments: []Attachment{a3}}), "attach n3")
	peers = append(peers, peerOf(a2, h2), peerOf(a3, h3))
	for _, h := range l.hosts {
		mustT(t, h.m.SetPeers(l.ctx, "ingress2", peers), h.name+": SetPeers")
	}
	for _, w := range []*endpoint{n2, n3} {
		l.serveTCP(w, ":80", sayName(w.name))
		l.serveTCP(w, ":82", sayRemote)
	}
	backends := []netip.Addr{a2.Address.Addr(), a3.Address.Addr()}
	for _, h := range l.hosts {
		ml.publish(h, PublishedPort{Service: "web", Protocol: TCP, PublishedPort: 8081, TargetPort: 80, Backends: backends},
			PublishedPort{Service: "web", Protocol: TCP, PublishedPort: 8082, TargetPort: 82, Backends: backends}, hostPort)
	}
	// Every host answers, h1 without a task included, through its new
	// ingress address.
	for _, h := range l.hosts {
		seen := spread(t, l.client, h.addr.String()+":8081", 20)
		if seen["n2"] == 0 || seen["n3"] == 0 {
			t.Fatalf("via %s on the new ingress network: want both tasks, got %v", h.name, seen)
		}
	}
	mustFetchOneOf(t, l.client, "198.18.0.1:8082", "198.19.3.241")
}

// checkNoIngress fails the test if h's namespace still has anything of an
// ingress endpoint on subnet: the link, an address or route in subnet,
// the mesh table's ingress chains, or conntrack entries of flows into it.
func checkNoIngress(t *testing.T, l *lab, h *host, subnet netip.Prefix) {
	t.Helper()
	if slices.Contains(l.links(h.ns), "shoal_ing0") {
		t.Errorf("%s: shoal_ing0 left", h.name)
	}
	hh := l.handle(h.ns)
	addrs, err := hh.AddrList(nil, netlink.FAMILY_V4)
	mustT(t, err, "addresses")
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok && subnet.Contains(ip) {
			t.Errorf("%s: address %s left", h.name, a.IPNet)
		}
	}
	routes, err := hh.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: 0}, netlink.RT_FILTER_TABLE)
	mustT(t, err, "routes")
	for _, r := range routes {
		if p, ok := ipv4Prefix(r.Dst); ok && p.Overlaps(subnet) {
			t.Errorf("%s: route to %s left", h.name, p)
		}
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(h.ns)))
	mustT(t, err, "nftables")
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	mustT(t, err, "chains")
	for _, ch := range chains {
		if ch.Table.Name != meshTableName {
			continue
		}
		switch ch.Name {
		case "postrouting", "forward", "input", "pub-tcp-8080", "pub-tcp-8081", "pub-tcp-8082", "pub-udp-5353":
			t.Errorf("%s: mesh chain %s left", h.name, ch.Name)
		}
	}
	flows, err := hh.ConntrackTableList(netlink.ConntrackTable, netlink.FAMILY_V4)
	mustT(t, err, "conntrack list")
	for _, f := range flows {
		if overlayFlows([]netip.Prefix{subnet}).MatchConntrackFlow(f) {
			t.Errorf("%s: conntrack entry left: %s", h.name, f)
		}
	}
}

func sandboxFiles(t *testing.T, h *host) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(h.dir, "netns"))
	mustT(t, err, "read sandboxes")
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// bindIn tries to listen on a TCP port in the host's namespace.
func bindIn(h *host, port int) error {
	return nsutil.Do(h.ns, func() error {
		ln, err := net.ListenTCP("tcp4", &net.TCPAddr{Port: port})
		if err == nil {
			ln.Close()
		}
		return err
	})
}
