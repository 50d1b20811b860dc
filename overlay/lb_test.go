package overlay

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// TestServiceVIP: a VIP spreads connections over its backends on other
// hosts, follows backend changes (a new one is reached, a removed one
// never again), works from a backend to itself, refuses with no backends,
// carries 2 MB intact, and forgets conntrack state of removed backends.
func TestServiceVIP(t *testing.T) {
	l := newLab(t, 3)
	h1, h2, h3 := l.hosts[0], l.hosts[1], l.hosts[2]
	app := testNet("app", 4097, "198.19.1.0/24")
	for _, h := range l.hosts {
		h.start()
		mustT(t, h.m.EnsureNetwork(l.ctx, app), h.name+": EnsureNetwork")
	}
	type member struct {
		ep   *endpoint
		att  Attachment
		host *host
	}
	mk := func(name, addr string, h *host) member {
		ep := l.task(name)
		a := att("app", addr)
		mustT(t, h.m.AttachTask(l.ctx, Task{ID: name, NetNSPath: ep.path, Attachments: []Attachment{a}}), "attach "+name)
		return member{ep, a, h}
	}
	c1 := mk("c1", "198.19.1.11/24", h1)
	w2 := mk("w2", "198.19.1.12/24", h2)
	w3 := mk("w3", "198.19.1.13/24", h3)
	w4 := mk("w4", "198.19.1.14/24", h1)
	var peers []Peer
	for _, x := range []member{c1, w2, w3, w4} {
		peers = append(peers, peerOf(x.att, x.host))
	}
	for _, x := range []member{w2, w3, w4} {
		l.serveTCP(x.ep, ":80", sayName(x.ep.name))
		l.serveTCP(x.ep, ":81", echo)
		l.serveUDP(x.ep, ":9000", x.ep.name)
	}
	vip := netip.MustParseAddr("198.19.1.200")
	setBackends := func(bs ...member) {
		t.Helper()
		var addrs []netip.Addr
		for _, b := range bs {
			addrs = append(addrs, b.att.Address.Addr())
		}
		for _, h := range l.hosts {
			mustT(t, h.m.SetServices(l.ctx, "app", []Service{{ID: "web", VIP: vip, Backends: addrs}}), h.name+": SetServices")
		}
	}
	for _, h := range l.hosts {
		mustT(t, h.m.SetPeers(l.ctx, "app", peers), h.name+": SetPeers")
	}
	setBackends(w2, w3)
	web := vip.String() + ":80"

	seen := spread(t, c1.ep, web, 30)
	t.Logf("c1 -> VIP over 30 connections: %v", seen)
	if seen["w2"] == 0 || seen["w3"] == 0 || len(seen) != 2 {
		t.Fatalf("want both w2 and w3, got %v", seen)
	}
	transfer(t, c1.ep, vip.String()+":81", 2<<20)

	// Hairpin: a backend reaching its own VIP, itself included.
	seen = spread(t, w2.ep, web, 20)
	t.Logf("w2 -> its own VIP: %v", seen)
	if seen["w2"] == 0 || seen["w3"] == 0 {
		t.Fatalf("hairpin: want w2 (itself) and w3, got %v", seen)
	}

	// A UDP flow pinned to w2 by conntrack.
	var udp net.Conn
	for i := 0; i < 40 && udp == nil; i++ {
		c, err := dialIn(c1.ep, "udp4", vip.String()+":9000", testTimeout)
		mustT(t, err, "udp dial")
		got, err := udpAskOn(c, 10)
		mustT(t, err, "udp ask")
		if got == "w2" {
			udp = c
		} else {
			c.Close()
		}
	}
	if udp == nil {
		t.Fatal("no UDP flow landed on w2 in 40 tries")
	}
	defer udp.Close()
	if !hasFlowTo(t, l, c1.ep, w2.att.Address.Addr()) {
		t.Fatal("expected a conntrack entry to w2 in c1")
	}

	// w2 goes, w4 comes.
	setBackends(w3, w4)
	if hasFlowTo(t, l, c1.ep, w2.att.Address.Addr()) {
		t.Fatal("conntrack entry to removed backend w2 is still in c1")
	}
	if got, err := udpAskOn(udp, 10); err != nil || got == "w2" {
		t.Fatalf("UDP flow after w2 was removed: %q, %v", got, err)
	}
	seen = spread(t, c1.ep, web, 30)
	t.Logf("after the change: %v", seen)
	if seen["w2"] != 0 || seen["w4"] == 0 || seen["w3"] == 0 {
		t.Fatalf("want w3 and w4, never w2; got %v", seen)
	}

	// One backend: plain DNAT.
	setBackends(w4)
	if seen = spread(t, c1.ep, web, 5); seen["w4"] != 5 {
		t.Fatalf("single backend: %v", seen)
	}
	// No backends: refused at once, not a timeout.
	setBackends()
	start := time.Now()
	_, err := fetch(c1.ep, web)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("no backends: %v, want connection refused", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("refusal took %v", d)
	}
	// Service removed: the VIP is plain unrouted address again.
	for _, h := range l.hosts {
		mustT(t, h.m.SetServices(l.ctx, "app", nil), "no services")
	}
	if ts := l.tables(c1.ep.ns); len(ts) != 0 {
		t.Fatalf("tables left in c1 with no services: %v", ts)
	}
}

func hasFlowTo(t *testing.T, l *lab, ep *endpoint, backend netip.Addr) bool {
	t.Helper()
	h := l.handle(ep.ns)
	flows, err := h.ConntrackTableList(netlink.ConntrackTable, netlink.FAMILY_V4)
	mustT(t, err, "conntrack list")
	for _, f := range flows {
		if a, ok := netip.AddrFromSlice(f.Reverse.SrcIP.To4()); ok && a == backend {
			return true
		}
	}
	return false
}
