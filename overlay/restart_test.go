package overlay

import (
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/shoal-project/shoal/overlay/internal/nsutil"
)

// TestReconcileAfterRestart replaces h1's Manager with a fresh one on the
// same state directory: traffic (including an open connection through a
// VIP and the mesh) keeps flowing throughout, the peer table is read back
// from the kernel, and Reconcile removes what is no longer wanted.
func TestReconcileAfterRestart(t *testing.T) {
	l, t1, t2, a1, a2 := twoHostApp(t)
	h1, h2 := l.hosts[0], l.hosts[1]
	app := testNet("app", 4097, "198.19.1.0/24")
	old := testNet("old", 4999, "198.19.99.0/24")
	ing := testNet("ingress", 4096, "198.19.2.0/24")
	ing1, ing2 := netip.MustParsePrefix("198.19.2.241/24"), netip.MustParsePrefix("198.19.2.242/24")
	aIng2 := att("ingress", "198.19.2.12/24")
	vip := netip.MustParseAddr("198.19.1.200")
	services := []Service{{ID: "web", VIP: vip, Backends: []netip.Addr{a2.Address.Addr()}}}
	ports := []PublishedPort{
		{Service: "web", Protocol: TCP, PublishedPort: 8080, TargetPort: 80, Backends: []netip.Addr{aIng2.Address.Addr()}},
		{Service: "web", Protocol: TCP, PublishedPort: 8081, TargetPort: 81, Backends: []netip.Addr{aIng2.Address.Addr()}},
	}
	ingPeers := []Peer{
		{IP: ing1.Addr(), MAC: macFromIP(ing1.Addr()), VTEP: h1.addr},
		{IP: ing2.Addr(), MAC: macFromIP(ing2.Addr()), VTEP: h2.addr},
		peerOf(aIng2, h2),
	}
	t2task := Task{ID: "t2", NetNSPath: t2.path, Attachments: []Attachment{a2, aIng2}}
	mustT(t, h1.m.EnsureIngress(l.ctx, ing, ing1), "h1 ingress")
	mustT(t, h2.m.EnsureIngress(l.ctx, ing, ing2), "h2 ingress")
	mustT(t, h2.m.AttachTask(l.ctx, t2task), "t2 on ingress too")
	for _, h := range l.hosts {
		mustT(t, h.m.SetServices(l.ctx, "app", services), "services")
		mustT(t, h.m.SetServices(l.ctx, "ingress", nil), "services")
		mustT(t, h.m.SetPeers(l.ctx, "ingress", ingPeers), "ingress peers")
		mustT(t, h.m.SetPublishedPorts(l.ctx, ports), "ports")
	}
	// Things h1 will not want after the restart.
	mustT(t, h1.m.EnsureNetwork(l.ctx, old), "old network")
	gone := l.task("gone")
	mustT(t, h1.m.AttachTask(l.ctx, Task{ID: "gone", NetNSPath: gone.path, Attachments: []Attachment{att("old", "198.19.99.5/24")}}), "gone")

	l.serveTCP(t2, ":80", sayName("t2"))
	l.serveTCP(t2, ":81", echo)
	mustFetch(t, t1, vip.String()+":80", "t2")
	mustFetch(t, l.client, "198.18.0.1:8080", "t2")
	// Long-lived connections through the VIP and through the mesh.
	viaVIP, err := dialIn(t1, "tcp4", vip.String()+":81", testTimeout)
	mustT(t, err, "long-lived connection through the VIP")
	defer viaVIP.Close()
	viaMesh, err := dialIn(l.client, "tcp4", "198.18.0.1:8081", testTimeout)
	mustT(t, err, "long-lived connection through the mesh")
	defer viaMesh.Close()
	ping := func(what string) {
		t.Helper()
		for _, conn := range []net.Conn{viaVIP, viaMesh} {
			conn.SetDeadline(time.Now().Add(testTimeout))
			if _, err := conn.Write([]byte(what)); err != nil {
				t.Fatalf("%s: write: %v", what, err)
			}
			buf := make([]byte, len(what))
			if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != what {
				t.Fatalf("%s: echo %q, %v", what, buf, err)
			}
		}
	}
	ping("before")

	// Restart: a new Manager finds the sandboxes; nothing is disturbed.
	m := h1.start()
	ping("after New")
	mustFetch(t, t1, vip.String()+":80", "t2")
	mustFetch(t, l.client, "198.18.0.1:8080", "t2")
	if got := m.sandboxes[4097].found.len(); got != 1 {
		t.Fatalf("peers read back from app's sandbox: %d, want 1", got)
	}

	mustT(t, m.Reconcile(l.ctx, Desired{Networks: []Network{app, ing}, Tasks: []string{"t1"}}), "Reconcile")
	if _, err := os.Stat(m.SandboxPath(4999)); !os.IsNotExist(err) {
		t.Fatalf("sandbox of the unwanted network is still there: %v", err)
	}
	if got := l.links(gone.ns); len(got) != 1 {
		t.Fatalf("departed task still has links: %v", got)
	}
	if _, ok := m.egressAddr("gone"); ok {
		t.Fatal("departed task keeps its egress address")
	}
	ping("after Reconcile")

	// The daemon re-adopts its tasks and replays the cluster state.
	mustT(t, m.AttachTask(l.ctx, Task{ID: "t1", NetNSPath: t1.path, Attachments: []Attachment{a1}}), "re-attach t1")
	// Peers read back from the kernel: removing one really removes it.
	mustT(t, m.RemovePeer(l.ctx, "app", peerOf(a2, h2)), "remove peer")
	unreachable(t, t1, a2.Address.Addr().String()+":80", 300*millis)
	mustT(t, m.AddPeer(l.ctx, "app", peerOf(a2, h2)), "add peer")
	mustT(t, m.EnsureIngress(l.ctx, ing, ing1), "ingress again")
	mustT(t, m.SetServices(l.ctx, "app", services), "services again")
	mustT(t, m.SetPeers(l.ctx, "ingress", ingPeers), "ingress peers again")
	mustT(t, m.SetPublishedPorts(l.ctx, ports), "ports again")
	ping("after replay")
	mustFetch(t, t1, vip.String()+":80", "t2")
	mustFetch(t, l.client, "198.18.0.1:8080", "t2")

	// A reboot loses the mounts but not the state directory: the stale
	// files are cleaned up by the next Manager.
	stale := m.SandboxPath(4321)
	mustT(t, os.WriteFile(stale, nil, 0o444), "stale file")
	m = h1.start()
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale sandbox file kept: %v", err)
	}
	if !nsutil.IsMountedNetNS(m.SandboxPath(4097)) {
		t.Fatal("live sandbox lost")
	}
	ping("after second restart")
}
