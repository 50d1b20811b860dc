package dns

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// These tests run resolvers in real network namespaces, so they need
// root. Every namespace is unnamed: it lives while a descriptor or a
// socket holds it, and the descriptors are closed when the test ends.

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
}

// newNetNS creates a network namespace, with lo up, and returns a
// descriptor of it. The thread that creates it goes back to its own
// namespace before it is unlocked (or is discarded).
func newNetNS(t *testing.T) int {
	t.Helper()
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		orig, err := unix.Open(self, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{-1, err}
			return
		}
		defer unix.Close(orig)
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{-1, fmt.Errorf("unshare: %w", err)}
			return
		}
		fd, err := unix.Open(self, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			err = setLoopbackUp()
		}
		if serr := unix.Setns(orig, unix.CLONE_NEWNET); serr != nil {
			ch <- result{-1, fmt.Errorf("back to the test's namespace: %w", serr)} // the thread stays locked and is discarded
			return
		}
		runtime.UnlockOSThread()
		ch <- result{fd, err}
	}()
	r := <-ch
	if r.err != nil {
		if r.fd >= 0 {
			unix.Close(r.fd)
		}
		t.Fatalf("new network namespace: %v", r.err)
	}
	t.Cleanup(func() { unix.Close(r.fd) })
	return r.fd
}

// setLoopbackUp brings lo up in the calling thread's namespace.
func setLoopbackUp() error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr)
}

// checkThreads fails the test if any thread of the process is in another
// network namespace than the process's main thread.
func checkThreads(t *testing.T) {
	t.Helper()
	want, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		got, err := os.Readlink(filepath.Join("/proc/self/task", task.Name(), "ns/net"))
		if err != nil {
			continue // the thread has exited
		}
		if got != want {
			t.Errorf("thread %s is in %s, not in the process's namespace %s", task.Name(), got, want)
		}
	}
}

// exchangeIn sends m to addr over proto from a socket made inside ns.
func exchangeIn(ns int, proto string, addr netip.AddrPort, m *mdns.Msg) (*mdns.Msg, error) {
	var conn net.Conn
	if err := NetNSFD(ns).do(func() (err error) {
		conn, err = net.DialTimeout(proto, addr.String(), 2*time.Second)
		return err
	}); err != nil {
		return nil, err
	}
	defer conn.Close()
	c := &mdns.Client{Net: proto, Timeout: 3 * time.Second}
	resp, _, err := c.ExchangeWithConn(m, &mdns.Conn{Conn: conn})
	return resp, err
}

func mustExchangeIn(t *testing.T, ns int, proto string, addr netip.AddrPort, m *mdns.Msg) *mdns.Msg {
	t.Helper()
	resp, err := exchangeIn(ns, proto, addr, m)
	if err != nil {
		t.Fatalf("%s query %s: %v", proto, m.Question[0].Name, err)
	}
	return resp
}

func TestResolverServesInsideTheTaskNamespace(t *testing.T) {
	requireRoot(t)
	t.Cleanup(func() { checkThreads(t) })
	ns := newNetNS(t)

	// The node's upstream, in the test's own namespace; a decoy on the
	// same port inside the task's namespace must never be asked.
	decoyIP := netip.MustParseAddr("198.18.66.6")
	up := startUpstream(t, "127.0.0.1", 0, nil, answerWith("example.test.", outside))
	decoy := startUpstream(t, "127.0.0.1", up.addr.Port(), NetNSFD(ns).do, answerWith("example.test.", decoyIP))

	tb := clusterTable()
	r, err := Start(Config{NetNS: NetNSFD(ns), Records: tb, Upstreams: []netip.AddrPort{up.addr}, TTL: 4 * time.Second, SearchDomains: []string{"corp.example"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	if r.Addr() != DefaultAddr {
		t.Fatalf("listening on %s, want %s", r.Addr(), DefaultAddr)
	}
	checkThreads(t)

	for _, proto := range []string{"udp", "tcp"} {
		for name, want := range map[string][]netip.Addr{
			"web.":                   {webVIP},
			"WWW.corp.example.":      {webVIP},
			"tasks.web.":             webIPs,
			"rr.":                    rrIPs,
			"web.2.abc1.":            webIPs[1:2],
			"tasks.rr.corp.example.": rrIPs,
		} {
			resp := mustExchangeIn(t, ns, proto, r.Addr(), query(name, mdns.TypeA))
			if got := aRecords(t, resp, 4); !slices.Equal(got, want) {
				t.Errorf("%s %s = %v, want %v", proto, name, got, want)
			}
		}
		if resp := mustExchangeIn(t, ns, proto, r.Addr(), query("web.", mdns.TypeAAAA)); resp.Rcode != mdns.RcodeSuccess || len(resp.Answer) != 0 {
			t.Errorf("%s AAAA web.: %s with %d answers, want empty NOERROR", proto, mdns.RcodeToString[resp.Rcode], len(resp.Answer))
		}
		rev, _ := mdns.ReverseAddr(webIPs[0].String())
		if resp := mustExchangeIn(t, ns, proto, r.Addr(), query(rev, mdns.TypePTR)); len(resp.Answer) != 1 || resp.Answer[0].(*mdns.PTR).Ptr != "web.1.abc0." {
			t.Errorf("%s PTR %s: %v", proto, webIPs[0], resp.Answer)
		}
		resp := mustExchangeIn(t, ns, proto, r.Addr(), query("example.test.", mdns.TypeA))
		if got := aRecords(t, resp, 300); !slices.Equal(got, []netip.Addr{outside}) {
			t.Errorf("%s forwarded example.test. = %v, want %s from the node's upstream", proto, got, outside)
		}
	}
	if n := decoy.queries.Load(); n != 0 {
		t.Errorf("the upstream inside the task's namespace got %d queries: forwarding must leave from the node's namespace", n)
	}
	if up.queries.Load() == 0 {
		t.Error("the node's upstream got no query")
	}

	// A change to the records shows in the next answer.
	newIP := netip.MustParseAddr("198.19.1.14")
	tb.Set(Endpoint{ID: "w3", IP: newIP, TaskName: "web.4.new", ServiceName: "web", VIP: webVIP})
	if got := aRecords(t, mustExchangeIn(t, ns, "udp", r.Addr(), query("web.4.new.", mdns.TypeA)), 4); !slices.Equal(got, []netip.Addr{newIP}) {
		t.Errorf("new task = %v, want %s", got, newIP)
	}

	// The sockets are in the task's namespace, not the test's.
	outsider := &mdns.Client{Net: "udp", Timeout: time.Second}
	if resp, _, err := outsider.Exchange(query("web.", mdns.TypeA), r.Addr().String()); err == nil && slices.Equal(aRecords(t, resp, 4), []netip.Addr{webVIP}) {
		t.Error("the resolver answered a query from the test's own namespace")
	}

	// Close frees the address: a new resolver binds it again.
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := exchangeIn(ns, "tcp", DefaultAddr, query("web.", mdns.TypeA)); err == nil {
		t.Error("a closed resolver still answers over TCP")
	}
	r2, err := Start(Config{NetNS: NetNSFD(ns), Records: tb})
	if err != nil {
		t.Fatalf("binding again after Close: %v", err)
	}
	defer r2.Close()
	if got := aRecords(t, mustExchangeIn(t, ns, "udp", r2.Addr(), query("web.", mdns.TypeA)), 2); !slices.Equal(got, []netip.Addr{webVIP}) {
		t.Errorf("the second resolver answered %v", got)
	}
}

func TestResolverServfailsWithoutUpstream(t *testing.T) {
	requireRoot(t)
	t.Cleanup(func() { checkThreads(t) })
	ns := newNetNS(t)
	// Named by path this time, on a port of its own.
	path := fmt.Sprintf("/proc/self/fd/%d", ns)
	r, err := Start(Config{
		NetNS: NetNSPath(path), Addr: netip.MustParseAddrPort("127.0.0.11:0"), Records: clusterTable(),
		Upstreams: []netip.AddrPort{closedPort(t)}, UpstreamTimeout: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Addr().Port() == 0 || r.Addr().Addr() != DefaultAddr.Addr() {
		t.Fatalf("listening on %s", r.Addr())
	}
	for _, proto := range []string{"udp", "tcp"} {
		resp := mustExchangeIn(t, ns, proto, r.Addr(), query("example.test.", mdns.TypeA))
		if resp.Rcode != mdns.RcodeServerFailure {
			t.Errorf("%s: %s with the upstream down, want SERVFAIL", proto, mdns.RcodeToString[resp.Rcode])
		}
		// Cluster names do not need the upstream.
		if got := aRecords(t, mustExchangeIn(t, ns, proto, r.Addr(), query("web.", mdns.TypeA)), 2); !slices.Equal(got, []netip.Addr{webVIP}) {
			t.Errorf("%s web. = %v", proto, got)
		}
	}
}

func TestStartFailsCleanly(t *testing.T) {
	requireRoot(t)
	t.Cleanup(func() { checkThreads(t) })
	file, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	for name, tc := range map[string]struct {
		ns   NetNS
		want string
	}{
		"no namespace":    {NetNS{}, "no network namespace"},
		"missing path":    {NetNSPath("/nonexistent/netns"), "/nonexistent/netns"},
		"not a namespace": {NetNSFD(int(file.Fd())), "enter network namespace"},
	} {
		r, err := Start(Config{NetNS: tc.ns})
		if err == nil {
			r.Close()
			t.Errorf("%s: Start succeeded", name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not mention %q", name, err, tc.want)
		}
	}
}
