package node

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
}

// newTestNS creates a network namespace without leaving the calling
// thread in it; it is released when the test ends.
func newTestNS(t *testing.T) netns.NsHandle {
	t.Helper()
	var ns netns.NsHandle
	err := inThread(func() error {
		orig, err := netns.Get()
		if err != nil {
			return err
		}
		defer orig.Close()
		ns, err = netns.New()
		if err != nil {
			return err
		}
		return netns.Set(orig)
	})
	if err != nil {
		t.Fatalf("new network namespace: %v", err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

// inThread runs fn on a locked OS thread of its own; the thread is only
// unlocked (and so reused) if fn returns nil, which callers only do once
// the thread is back in its own namespace.
func inThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		err := fn()
		if err == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// inNS runs fn with the thread in ns, and returns it to its namespace.
func inNS(ns netns.NsHandle, fn func() error) error {
	var ferr error
	err := inThread(func() error {
		orig, err := netns.Get()
		if err != nil {
			return err
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			return err
		}
		ferr = fn()
		return netns.Set(orig)
	})
	if err != nil {
		return err
	}
	return ferr
}

func mustNetlink(t *testing.T, ns netns.NsHandle) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func mustAddr(t *testing.T, h *netlink.Handle, link, cidr string) {
	t.Helper()
	l, err := h.LinkByName(link)
	if err != nil {
		t.Fatal(err)
	}
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(l, a); err != nil {
		t.Fatalf("add %s to %s: %v", cidr, link, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
}

func mustRoute(t *testing.T, h *netlink.Handle, dst, gw string) {
	t.Helper()
	r := &netlink.Route{Gw: net.ParseIP(gw)}
	if dst != "" {
		_, n, err := net.ParseCIDR(dst)
		if err != nil {
			t.Fatal(err)
		}
		r.Dst = n
	}
	if err := h.RouteAdd(r); err != nil {
		t.Fatalf("route %s via %s: %v", dst, gw, err)
	}
}

// vethInto creates a veth named name in the namespace of h with its peer
// peerName in peerNS.
func vethInto(t *testing.T, h *netlink.Handle, name, peerName string, peerNS netns.NsHandle) {
	t.Helper()
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peerName, PeerNamespace: netlink.NsFd(int(peerNS))}); err != nil {
		t.Fatalf("veth %s/%s: %v", name, peerName, err)
	}
}

// TestDockerUserRules builds, in namespaces, a node whose FORWARD chain
// drops everything but jumps first to a DOCKER-USER chain, as Docker's
// does; a task behind the node's egress bridge; and a server outside.
// The task reaches the server only while the daemon's accepts are in
// DOCKER-USER; adding them twice changes nothing, and removing them
// leaves the chain as it was.
func TestDockerUserRules(t *testing.T) {
	requireRoot(t)
	const bridge, ingress = "shgw-test", "shing-test"
	nodeNS, taskNS, outNS := newTestNS(t), newTestNS(t), newTestNS(t)
	node, task, out := mustNetlink(t, nodeNS), mustNetlink(t, taskNS), mustNetlink(t, outNS)

	if err := node.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: bridge}}); err != nil {
		t.Fatal(err)
	}
	mustAddr(t, node, bridge, "198.18.99.1/24")
	vethInto(t, node, "tsk0", "eth0", taskNS)
	br, _ := node.LinkByName(bridge)
	tl, _ := node.LinkByName("tsk0")
	if err := node.LinkSetMaster(tl, br); err != nil {
		t.Fatal(err)
	}
	if err := node.LinkSetUp(tl); err != nil {
		t.Fatal(err)
	}
	mustAddr(t, task, "eth0", "198.18.99.2/24")
	mustRoute(t, task, "", "198.18.99.1")
	vethInto(t, node, "out0", "eth0", outNS)
	mustAddr(t, node, "out0", "198.18.98.1/24")
	mustAddr(t, out, "eth0", "198.18.98.2/24")
	mustRoute(t, out, "198.18.99.0/24", "198.18.98.1")
	if err := inNS(nodeNS, func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
	}); err != nil {
		t.Fatal(err)
	}

	// No DOCKER-USER chain (no Docker): nothing to do.
	if ok, err := ensureDockerUserRules(int(nodeNS), bridge, ingress); ok || err != nil {
		t.Fatalf("without the chain: ok=%v err=%v", ok, err)
	}

	// Docker's layout: FORWARD, policy drop, jumps to DOCKER-USER, which
	// returns; a user's rule of its own stays untouched.
	conn, err := nftables.New(nftables.WithNetNSFd(int(nodeNS)))
	if err != nil {
		t.Fatal(err)
	}
	filter := conn.AddTable(&nftables.Table{Name: "filter", Family: nftables.TableFamilyIPv4})
	drop := nftables.ChainPolicyDrop
	fwd := conn.AddChain(&nftables.Chain{Name: "FORWARD", Table: filter, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &drop})
	user := conn.AddChain(&nftables.Chain{Name: "DOCKER-USER", Table: filter})
	conn.AddRule(&nftables.Rule{Table: filter, Chain: user, Exprs: append(ifname(expr.MetaKeyIIFNAME, "other0"), accept()),
		UserData: userdata.AppendString(nil, userdata.TypeComment, "mine")})
	conn.AddRule(&nftables.Rule{Table: filter, Chain: user, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictReturn}}})
	conn.AddRule(&nftables.Rule{Table: filter, Chain: fwd, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: "DOCKER-USER"}}})
	if err := conn.Flush(); err != nil {
		t.Fatal(err)
	}

	// A server outside, and a client in the task.
	var ln net.Listener
	if err := inNS(outNS, func() error {
		var err error
		ln, err = net.Listen("tcp", "198.18.98.2:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	dial := func() error {
		return inNS(taskNS, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
			if err != nil {
				return err
			}
			return c.Close()
		})
	}
	if err := dial(); err == nil {
		t.Fatal("the task reached the server through a FORWARD chain that drops everything")
	}

	rules := func() []string {
		t.Helper()
		rs, err := conn.GetRules(filter, user)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rs {
			c, _ := userdata.GetString(r.UserData, userdata.TypeComment)
			out = append(out, c)
		}
		return out
	}
	tag := dockerUserComment(bridge, ingress)
	for i := 0; i < 2; i++ {
		ok, err := ensureDockerUserRules(int(nodeNS), bridge, ingress)
		if !ok || err != nil {
			t.Fatalf("ensure #%d: ok=%v err=%v", i+1, ok, err)
		}
		got := rules()
		want := []string{tag, tag, tag, tag, tag, "mine", ""}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("after ensure #%d DOCKER-USER holds rules tagged %q, want %q", i+1, got, want)
		}
	}
	if err := dial(); err != nil {
		t.Fatalf("the task cannot reach the server with the accepts in place: %v", err)
	}

	if err := removeDockerUserRules(int(nodeNS), bridge, ingress); err != nil {
		t.Fatal(err)
	}
	if got := rules(); fmt.Sprint(got) != fmt.Sprint([]string{"mine", ""}) {
		t.Fatalf("after removal DOCKER-USER holds rules tagged %q", got)
	}
	if err := dial(); err == nil {
		t.Fatal("the task still reaches the server after the accepts were removed")
	}
}

// TestCheckEgressSubnet: an egress subnet that would capture a route,
// address or name server the node already has is refused, naming it.
func TestCheckEgressSubnet(t *testing.T) {
	requireRoot(t)
	ns := newTestNS(t)
	h := mustNetlink(t, ns)
	vethInto(t, h, "lan0", "lan1", ns)
	mustAddr(t, h, "lan0", "198.18.5.1/24")
	l1, _ := h.LinkByName("lan1")
	if err := h.LinkSetUp(l1); err != nil {
		t.Fatal(err)
	}
	mustRoute(t, h, "198.18.64.0/20", "198.18.5.254")
	if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: egressBridgeName}}); err != nil {
		t.Fatal(err)
	}
	mustAddr(t, h, egressBridgeName, "198.19.7.1/24") // the bridge's own route does not count
	for _, c := range []struct {
		egress, ns, want string
	}{
		{"198.19.7.0/24", "", ""},
		{"198.18.6.0/24", "198.18.5.53", ""},
		{"198.18.5.0/25", "", "route 198.18.5.0/24"},
		{"198.18.0.0/16", "", "route 198.18."},
		{"198.18.70.0/24", "", "route 198.18.64.0/20"},
		{"198.19.8.0/24", "198.19.8.53", "name server 198.19.8.53"},
	} {
		var nss []netip.Addr
		if c.ns != "" {
			nss = append(nss, netip.MustParseAddr(c.ns))
		}
		var err error
		if nerr := inNS(ns, func() error { err = checkEgressSubnet(netip.MustParsePrefix(c.egress), nss); return nil }); nerr != nil {
			t.Fatal(nerr)
		}
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.egress, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "--egress-subnet")):
			t.Errorf("%s: err = %v, want one naming %q and the flag", c.egress, err, c.want)
		}
	}
}
