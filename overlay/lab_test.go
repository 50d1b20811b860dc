package overlay

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/shoal-project/shoal/overlay/internal/nsutil"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// The lab: "hosts" are network namespaces joined by a LAN bridge that
// lives in a namespace of its own; task "containers" are plain namespaces.
// Underlay addresses are in 198.18.0.0/15, overlays in 198.19.0.0/16.
// Nothing is configured in the root namespace, and every namespace is
// unnamed (it dies with its last handle), so a failed test leaves nothing.

const (
	labUnderlayMTU = 1400 // as on the VM's eth0, so the overlay MTU is 1350
	labPrefix      = 24
	testTimeout    = 2 * time.Second
	millis         = time.Millisecond
)

type lab struct {
	t      *testing.T
	ctx    context.Context
	lan    netns.NsHandle
	lanH   *netlink.Handle
	hosts  []*host
	client *endpoint // an outside machine on the LAN
	origNS netns.NsHandle
}

type host struct {
	lab   *lab
	name  string
	ns    netns.NsHandle
	path  string
	addr  netip.Addr
	dir   string
	m     *Manager
	extra func(*Config)
}

// endpoint is a namespace playing a task or an outside client.
type endpoint struct {
	name string
	ns   netns.NsHandle
	path string
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
}

func newLab(t *testing.T, hosts int) *lab {
	t.Helper()
	requireRoot(t)
	orig, err := nsutil.Current()
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, ctx: context.Background(), origNS: orig}
	t.Cleanup(func() {
		l.checkThreads()
		orig.Close()
	})
	l.lan = l.newNS()
	l.lanH = l.handle(l.lan)
	mustT(t, l.lanH.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "lan0", MTU: labUnderlayMTU}}), "lan bridge")
	mustT(t, linkUp(l.lanH, "lan0"), "lan0 up")
	for i := 1; i <= hosts; i++ {
		ep := l.lanEndpoint(fmt.Sprintf("h%d", i), netip.AddrFrom4([4]byte{198, 18, 0, byte(i)}))
		h := &host{lab: l, name: ep.name, ns: ep.ns, path: ep.path, addr: netip.AddrFrom4([4]byte{198, 18, 0, byte(i)}),
			dir: filepath.Join(t.TempDir(), ep.name)}
		l.hosts = append(l.hosts, h)
		t.Cleanup(func() {
			if h.m != nil {
				h.m.Close()
			}
			// A Manager that was only closed keeps its state directory
			// mounted; undo that for the test.
			nsutil.UnmountDir(filepath.Join(h.dir, "netns"))
			ents, _ := os.ReadDir(filepath.Join(h.dir, "netns"))
			for _, e := range ents {
				nsutil.Remove(filepath.Join(h.dir, "netns", e.Name()))
			}
		})
	}
	l.client = l.lanEndpoint("client", netip.MustParseAddr("198.18.0.100"))
	return l
}

// checkThreads fails the test if any OS thread of the process is left in a
// namespace other than the one the test started in. Threads locked by a
// goroutine that just ended may take a moment to exit.
func (l *lab) checkThreads() {
	t := l.t
	want, err := os.Readlink(fmt.Sprintf("/proc/self/task/%d/ns/net", os.Getpid()))
	if err != nil {
		t.Errorf("read main thread's namespace: %v", err)
		return
	}
	var bad []string
	deadline := time.Now().Add(3 * time.Second)
	for {
		bad = bad[:0]
		ents, _ := os.ReadDir("/proc/self/task")
		for _, e := range ents {
			got, err := os.Readlink("/proc/self/task/" + e.Name() + "/ns/net")
			if err == nil && got != want {
				bad = append(bad, e.Name()+":"+got)
			}
		}
		if len(bad) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling for exiting threads, bounded by the deadline
	}
	if len(bad) > 0 {
		t.Errorf("threads left in foreign network namespaces: %v", bad)
	}
	cur, err := nsutil.Current()
	if err == nil {
		if !cur.Equal(l.origNS) {
			t.Errorf("test goroutine's thread is in another network namespace")
		}
		cur.Close()
	}
}

func mustT(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func (l *lab) newNS() netns.NsHandle {
	l.t.Helper()
	h, err := nsutil.NewUnnamed()
	mustT(l.t, err, "new namespace")
	l.t.Cleanup(func() { h.Close() })
	return h
}

func (l *lab) handle(ns netns.NsHandle) *netlink.Handle {
	l.t.Helper()
	h, err := nsutil.NewHandle(ns)
	mustT(l.t, err, "netlink handle")
	l.t.Cleanup(h.Close)
	return h
}

func nsPath(ns netns.NsHandle) string {
	return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), int(ns))
}

// lanEndpoint makes a namespace with eth0 on the LAN bridge at addr/24.
func (l *lab) lanEndpoint(name string, addr netip.Addr) *endpoint {
	t := l.t
	ns := l.newNS()
	mustT(t, l.lanH.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: labUnderlayMTU},
		PeerName: "eth0", PeerNamespace: netlink.NsFd(int(ns)), PeerMTU: labUnderlayMTU}), "lan veth "+name)
	port, err := l.lanH.LinkByName(name)
	mustT(t, err, "lan port")
	br, _ := l.lanH.LinkByName("lan0")
	mustT(t, l.lanH.LinkSetMaster(port, br), "lan port master")
	mustT(t, l.lanH.LinkSetUp(port), "lan port up")
	h := l.handle(ns)
	mustT(t, linkUp(h, "lo"), "lo up")
	eth, err := h.LinkByName("eth0")
	mustT(t, err, "eth0")
	mustT(t, h.AddrAdd(eth, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(addr, labPrefix))}), "eth0 addr")
	mustT(t, h.LinkSetUp(eth), "eth0 up")
	return &endpoint{name: name, ns: ns, path: nsPath(ns)}
}

// task makes an empty namespace for a task (only lo).
func (l *lab) task(name string) *endpoint {
	ns := l.newNS()
	return &endpoint{name: name, ns: ns, path: nsPath(ns)}
}

func (h *host) config() Config {
	c := Config{
		StateDir:     h.dir,
		NetNSPath:    h.path,
		DataPathAddr: h.addr,
		EgressSubnet: netip.MustParsePrefix("198.19.250.0/24"),
	}
	if h.extra != nil {
		h.extra(&c)
	}
	return c
}

// start (re)creates the host's Manager.
func (h *host) start() *Manager {
	h.lab.t.Helper()
	if h.m != nil {
		h.m.Close()
	}
	m, err := New(h.lab.ctx, h.config())
	mustT(h.lab.t, err, h.name+": New")
	h.m = m
	return m
}

// Network definitions used by the tests.
func testNet(id string, vni uint32, subnet string) Network {
	p := netip.MustParsePrefix(subnet)
	return Network{ID: id, VNI: vni, Subnet: p, Gateway: p.Addr().Next()}
}

func att(network, addr string) Attachment {
	return Attachment{Network: network, Address: netip.MustParsePrefix(addr)}
}

func peerOf(a Attachment, h *host) Peer {
	return Peer{IP: a.Address.Addr(), MAC: macFromIP(a.Address.Addr()), VTEP: h.addr}
}

// Servers and clients. Sockets are opened inside a namespace on a locked
// thread (nsutil.Do) and used from ordinary goroutines.

type handler func(c net.Conn)

func (l *lab) serveTCP(ep *endpoint, addr string, h handler) {
	t := l.t
	t.Helper()
	var ln net.Listener
	mustT(t, nsutil.Do(ep.ns, func() (err error) { ln, err = net.Listen("tcp4", addr); return err }), "listen in "+ep.name)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				h(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
}

// serveUDP answers every datagram with name.
func (l *lab) serveUDP(ep *endpoint, addr, name string) {
	t := l.t
	t.Helper()
	var pc net.PacketConn
	mustT(t, nsutil.Do(ep.ns, func() (err error) { pc, err = net.ListenPacket("udp4", addr); return err }), "listen udp in "+ep.name)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_ = n
			pc.WriteTo([]byte(name), from)
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
}

func sayName(name string) handler {
	return func(c net.Conn) { io.WriteString(c, name) }
}

// sayRemote answers with the client's address as the server sees it.
func sayRemote(c net.Conn) { io.WriteString(c, c.RemoteAddr().(*net.TCPAddr).IP.String()) }

func echo(c net.Conn) { io.Copy(c, c) }

func dialIn(ep *endpoint, network, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := nsutil.Do(ep.ns, func() (err error) {
		c, err = net.DialTimeout(network, addr, timeout)
		return err
	})
	return c, err
}

// fetch connects from ep to addr and returns everything the server sends.
func fetch(ep *endpoint, addr string) (string, error) {
	c, err := dialIn(ep, "tcp4", addr, testTimeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testTimeout))
	b, err := io.ReadAll(c)
	return string(b), err
}

func mustFetch(t *testing.T, ep *endpoint, addr, want string) {
	t.Helper()
	got, err := fetch(ep, addr)
	if err != nil || got != want {
		t.Fatalf("%s -> %s: got %q, %v; want %q", ep.name, addr, got, err, want)
	}
}

// spread makes n connections from ep to addr and counts the answers.
func spread(t *testing.T, ep *endpoint, addr string, n int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for i := 0; i < n; i++ {
		got, err := fetch(ep, addr)
		if err != nil {
			t.Fatalf("%s -> %s, connection %d: %v", ep.name, addr, i, err)
		}
		seen[got]++
	}
	return seen
}

// udpAsk sends one datagram from ep to addr and returns the answer.
func udpAsk(ep *endpoint, addr string, size int) (string, error) {
	c, err := dialIn(ep, "udp4", addr, testTimeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return udpAskOn(c, size)
}

func udpAskOn(c net.Conn, size int) (string, error) {
	c.SetDeadline(time.Now().Add(testTimeout))
	if _, err := c.Write(make([]byte, size)); err != nil {
		return "", err
	}
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}

// transfer pushes size random bytes from ep through an echo server at
// addr and checks what comes back is identical (SHA-256).
func transfer(t *testing.T, ep *endpoint, addr string, size int) {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	c, err := dialIn(ep, "tcp4", addr, testTimeout)
	if err != nil {
		t.Fatalf("%s -> %s: %v", ep.name, addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	back, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("%s -> %s: read: %v", ep.name, addr, err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("%s -> %s: write: %v", ep.name, addr, err)
	}
	if sha256.Sum256(back) != sha256.Sum256(data) {
		t.Fatalf("%s -> %s: %d bytes sent, %d came back and differ", ep.name, addr, len(data), len(back))
	}
}

// unreachable checks that a TCP connection from ep to addr fails.
func unreachable(t *testing.T, ep *endpoint, addr string, timeout time.Duration) {
	t.Helper()
	c, err := dialIn(ep, "tcp4", addr, timeout)
	if err == nil {
		c.SetDeadline(time.Now().Add(timeout))
		b, _ := io.ReadAll(c)
		c.Close()
		t.Fatalf("%s -> %s: connected (and got %q), want no connection", ep.name, addr, b)
	}
}

// links lists the link names in ns.
func (l *lab) links(ns netns.NsHandle) []string {
	h, err := nsutil.NewHandle(ns)
	mustT(l.t, err, "handle")
	defer h.Close()
	ls, err := h.LinkList()
	mustT(l.t, err, "link list")
	var out []string
	for _, x := range ls {
		out = append(out, x.Attrs().Name)
	}
	return out
}

func (l *lab) tables(ns netns.NsHandle) []string {
	ts, err := listTables(ns)
	mustT(l.t, err, "list tables")
	return ts
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
