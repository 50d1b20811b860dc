package overlay

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"

	"github.com/shoal-project/shoal/overlay/internal/nsutil"
)

// meshLab: three hosts on the ingress network (ing0 at .241-.243), service
// "web" with tasks w2 on h2 and w3 on h3 (ingress addresses .12/.13; w2
// is also on "app" so it has egress), published on every node.
type meshLab struct {
	*lab
	ing    Network
	w2, w3 *endpoint
	peers  []Peer
}

func newMeshLab(t *testing.T) *meshLab {
	l := newLab(t, 3)
	ml := &meshLab{lab: l, ing: testNet("ingress", 4096, "198.19.2.0/24")}
	for i, h := range l.hosts {
		// A strict reverse-path filter, as many distributions set it.
		mustT(t, nsutil.Sysctl(h.ns, "net.ipv4.conf.all.rp_filter", "1"), "rp_filter")
		mustT(t, nsutil.Sysctl(h.ns, "net.ipv4.conf.default.rp_filter", "1"), "rp_filter")
		h.start()
		addr := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, 2, byte(241 + i)}), 24)
		mustT(t, h.m.EnsureIngress(l.ctx, ml.ing, addr), h.name+": EnsureIngress")
		ml.peers = append(ml.peers, Peer{IP: addr.Addr(), MAC: macFromIP(addr.Addr()), VTEP: h.addr})
	}
	ml.w2, ml.w3 = l.task("w2"), l.task("w3")
	a2, a3 := att("ingress", "198.19.2.12/24"), att("ingress", "198.19.2.13/24")
	mustT(t, l.hosts[1].m.AttachTask(l.ctx, Task{ID: "w2", NetNSPath: ml.w2.path, Attachments: []Attachment{a2}}), "attach w2")
	mustT(t, l.hosts[2].m.AttachTask(l.ctx, Task{ID: "w3", NetNSPath: ml.w3.path, Attachments: []Attachment{a3}}), "attach w3")
	ml.peers = append(ml.peers, peerOf(a2, l.hosts[1]), peerOf(a3, l.hosts[2]))
	for _, h := range l.hosts {
		mustT(t, h.m.SetPeers(l.ctx, "ingress", ml.peers), h.name+": SetPeers")
	}
	for _, w := range []*endpoint{ml.w2, ml.w3} {
		l.serveTCP(w, ":80", sayName(w.name))
		l.serveTCP(w, ":81", echo)
		l.serveTCP(w, ":82", sayRemote)
		l.serveUDP(w, ":9000", w.name)
	}
	return ml
}

func (ml *meshLab) publish(h *host, ports ...PublishedPort) {
	ml.t.Helper()
	mustT(ml.t, h.m.SetPublishedPorts(ml.ctx, ports), h.name+": SetPublishedPorts")
}

var both = []netip.Addr{netip.MustParseAddr("198.19.2.12"), netip.MustParseAddr("198.19.2.13")}

func ingressPorts(backends []netip.Addr) []PublishedPort {
	return []PublishedPort{
		{Service: "web", Protocol: TCP, PublishedPort: 8080, TargetPort: 80, Backends: backends},
		{Service: "web", Protocol: TCP, PublishedPort: 8081, TargetPort: 81, Backends: backends},
		{Service: "web", Protocol: TCP, PublishedPort: 8082, TargetPort: 82, Backends: backends},
		{Service: "web", Protocol: UDP, PublishedPort: 5353, TargetPort: 9000, Backends: backends},
	}
}

func TestRoutingMesh(t *testing.T) {
	ml := newMeshLab(t)
	l := ml.lab
	for _, h := range l.hosts {
		ml.publish(h, ingressPorts(both)...)
	}
	// Every node answers, including h1, which has no task of the service.
	for _, h := range l.hosts {
		seen := spread(t, l.client, h.addr.String()+":8080", 20)
		t.Logf("client -> %s:8080: %v", h.name, seen)
		if seen["w2"] == 0 || seen["w3"] == 0 {
			t.Fatalf("via %s: want both tasks, got %v", h.name, seen)
		}
	}
	transfer(t, l.client, "198.18.0.1:8081", 2<<20)
	// The task sees h1's ingress address, not the client's.
	mustFetchOneOf(t, l.client, "198.18.0.1:8082", "198.19.2.241")
	// UDP.
	if got, err := udpAsk(l.client, "198.18.0.1:5353", 100); err != nil || (got != "w2" && got != "w3") {
		t.Fatalf("udp via mesh: %q, %v", got, err)
	}
	// A client on the node itself, to the node's own address.
	h1ep := &endpoint{name: "h1", ns: l.hosts[0].ns}
	if got, err := fetch(h1ep, "198.18.0.1:8080"); err != nil || (got != "w2" && got != "w3") {
		t.Fatalf("from h1 itself: %q, %v", got, err)
	}
	// A task on h1 (with egress) reaching a published port of h2.
	c1 := l.task("c1")
	app := testNet("app", 4097, "198.19.1.0/24")
	mustT(t, l.hosts[0].m.EnsureNetwork(l.ctx, app), "app")
	mustT(t, l.hosts[0].m.AttachTask(l.ctx, Task{ID: "c1", NetNSPath: c1.path, Attachments: []Attachment{att("app", "198.19.1.11/24")}}), "c1")
	for _, h := range l.hosts[:2] {
		if got, err := fetch(c1, h.addr.String()+":8080"); err != nil || (got != "w2" && got != "w3") {
			t.Fatalf("task on h1 -> published port on %s: %q, %v", h.name, got, err)
		}
	}
	// Loopback on the node: through the reservation socket's proxy.
	if got, err := fetch(h1ep, "127.0.0.1:8080"); err != nil || (got != "w2" && got != "w3") {
		t.Fatalf("from h1 to 127.0.0.1: %q, %v", got, err)
	}
	// The port is reserved in the node's namespace.
	err := nsutil.Do(l.hosts[0].ns, func() error {
		ln, err := net.Listen("tcp4", ":8080")
		if err == nil {
			ln.Close()
		}
		return err
	})
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("binding a published port on the node: %v, want EADDRINUSE", err)
	}

	// Only w3 left: w2 is never reached again.
	for _, h := range l.hosts {
		ml.publish(h, ingressPorts(both[1:])...)
	}
	if seen := spread(t, l.client, "198.18.0.1:8080", 10); seen["w3"] != 10 {
		t.Fatalf("after removing w2: %v", seen)
	}
	// Nobody: refused.
	ml.publish(l.hosts[0], ingressPorts(nil)...)
	if _, err := fetch(l.client, "198.18.0.1:8080"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("no backends: %v, want refused", err)
	}
	// Unpublished: the reservation goes too.
	ml.publish(l.hosts[0])
	mustT(t, nsutil.Do(l.hosts[0].ns, func() error {
		ln, err := net.Listen("tcp4", ":8080")
		if err == nil {
			ln.Close()
		}
		return err
	}), "bind after unpublishing")

	// Data-path filter: h1 accepts VXLAN only from h2, so replies from w3
	// (on h3) never arrive.
	for _, h := range l.hosts {
		ml.publish(h, ingressPorts(both[1:])...)
	}
	mustT(t, l.hosts[0].m.SetClusterPeers(l.ctx, []netip.Addr{l.hosts[1].addr}), "cluster peers")
	unreachable(t, l.client, "198.18.0.1:8080", 500*millis)
	mustT(t, l.hosts[0].m.SetClusterPeers(l.ctx, []netip.Addr{l.hosts[1].addr, l.hosts[2].addr}), "cluster peers")
	mustFetch(t, l.client, "198.18.0.1:8080", "w3")
}

// TestHostModePublishing: the port is open only where a task runs, goes
// only to local tasks and keeps the client's address.
func TestHostModePublishing(t *testing.T) {
	l, t1, t2, _, _ := twoHostApp(t)
	h1, h2 := l.hosts[0], l.hosts[1]
	l.serveTCP(t1, ":82", sayRemote)
	l.serveTCP(t2, ":82", sayRemote)
	l.serveTCP(t2, ":81", echo)
	hostPort := func(port, target uint16, tasks ...string) PublishedPort {
		return PublishedPort{Service: "web", Protocol: TCP, PublishedPort: port, TargetPort: target, Mode: PublishHost, Tasks: tasks}
	}
	mustT(t, h2.m.SetPublishedPorts(l.ctx, []PublishedPort{hostPort(9090, 82, "t2"), hostPort(9091, 81, "t2")}), "h2 publish")
	mustT(t, h1.m.SetPublishedPorts(l.ctx, nil), "h1 publish")

	mustFetch(t, l.client, "198.18.0.2:9090", "198.18.0.100")
	transfer(t, l.client, "198.18.0.2:9091", 2<<20)
	if _, err := fetch(l.client, "198.18.0.1:9090"); err == nil {
		t.Fatal("h1 answered a port published in host mode on h2 only")
	}
	// A task on another node reaches it (masqueraded by its own node).
	mustFetch(t, t1, "198.18.0.2:9090", "198.18.0.1")
	// A task of the same node, through the node's address (hairpin through
	// the egress bridge).
	mustFetch(t, t2, "198.18.0.2:9090", "198.19.250.1")

	// Unknown tasks are reported, the rest still programmed.
	err := h1.m.SetPublishedPorts(l.ctx, []PublishedPort{hostPort(9092, 82, "t1", "nope")})
	if err == nil {
		t.Fatal("want an error for a task not attached here")
	}
	mustFetch(t, l.client, "198.18.0.1:9092", "198.18.0.100")
}

func mustFetchOneOf(t *testing.T, ep *endpoint, addr string, want ...string) {
	t.Helper()
	got, err := fetch(ep, addr)
	if err != nil {
		t.Fatalf("%s -> %s: %v", ep.name, addr, err)
	}
	for _, w := range want {
		if got == w {
			return
		}
	}
	t.Fatalf("%s -> %s: %q, want one of %v", ep.name, addr, got, want)
}
