//go:build bench

package overlay

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/overlay/internal/nsutil"
	"github.com/vishvananda/netlink"
)

// TestBenchDataPlane measures, between two task namespaces on two hosts,
// TCP throughput (one stream) and connect latency over: a plain veth
// between the two namespaces (the baseline), the underlay between the two
// hosts, the overlay (task address), a service VIP, and the routing mesh
// (an outside client through a node without the task). Paths are measured
// round-robin, several rounds, and the median is reported with its ratio
// to the veth baseline.
//
//	go test -tags bench -run TestBenchDataPlane -v ./overlay/
//
// It reports, it does not assert. Run it without -race.
func TestBenchDataPlane(t *testing.T) {
	l, t1, t2, _, a2 := twoHostApp(t)
	h1, h2 := l.hosts[0], l.hosts[1]

	// Baseline: a veth straight from t1 to t2.
	th1 := l.handle(t1.ns)
	mustT(t, th1.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "bv0", MTU: labUnderlayMTU},
		PeerName: "bv0", PeerNamespace: netlink.NsFd(int(t2.ns)), PeerMTU: labUnderlayMTU}), "baseline veth")
	th2 := l.handle(t2.ns)
	for _, x := range []struct {
		h    *netlink.Handle
		addr string
	}{{th1, "198.18.200.1/30"}, {th2, "198.18.200.2/30"}} {
		lk, err := x.h.LinkByName("bv0")
		mustT(t, err, "bv0")
		mustT(t, x.h.AddrAdd(lk, &netlink.Addr{IPNet: ipNet(netip.MustParsePrefix(x.addr))}), "bv0 addr")
		mustT(t, x.h.LinkSetUp(lk), "bv0 up")
	}
	// Service VIP with t2 as its backend, and t2 published through the mesh.
	vip := netip.MustParseAddr("198.19.1.200")
	ing := testNet("ingress", 4096, "198.19.2.0/24")
	ing1, ing2 := netip.MustParsePrefix("198.19.2.241/24"), netip.MustParsePrefix("198.19.2.242/24")
	aIng := att("ingress", "198.19.2.12/24")
	mustT(t, h1.m.EnsureIngress(l.ctx, ing, ing1), "ingress")
	mustT(t, h2.m.EnsureIngress(l.ctx, ing, ing2), "ingress")
	mustT(t, h2.m.AttachTask(l.ctx, Task{ID: "t2", NetNSPath: t2.path, Attachments: []Attachment{a2, aIng}}), "t2 ingress")
	ingPeers := []Peer{
		{IP: ing1.Addr(), MAC: macFromIP(ing1.Addr()), VTEP: h1.addr},
		{IP: ing2.Addr(), MAC: macFromIP(ing2.Addr()), VTEP: h2.addr},
		peerOf(aIng, h2),
	}
	for _, h := range l.hosts {
		mustT(t, h.m.SetPeers(l.ctx, "ingress", ingPeers), "peers")
		mustT(t, h.m.SetServices(l.ctx, "app", []Service{{ID: "web", VIP: vip, Backends: []netip.Addr{a2.Address.Addr()}}}), "services")
		mustT(t, h.m.SetServices(l.ctx, "ingress", nil), "services")
		mustT(t, h.m.SetPublishedPorts(l.ctx, []PublishedPort{
			{Service: "web", Protocol: TCP, PublishedPort: 8080, TargetPort: 5001, Backends: []netip.Addr{aIng.Address.Addr()}},
			{Service: "web", Protocol: TCP, PublishedPort: 8081, TargetPort: 5002, Backends: []netip.Addr{aIng.Address.Addr()}},
		}), "ports")
	}
	h2ep := &endpoint{name: "h2", ns: h2.ns}
	h1ep := &endpoint{name: "h1", ns: h1.ns}

	// Servers: a sink (throughput) and an accept-and-close (connect latency).
	sink := func(c net.Conn) { io.Copy(io.Discard, c) }
	closer := func(c net.Conn) {}
	for _, ep := range []*endpoint{t2, h2ep} {
		l.serveTCPNoDeadline(ep, ":5001", sink)
		l.serveTCPNoDeadline(ep, ":5002", closer)
	}

	type path struct {
		name   string
		from   *endpoint
		target string // host, ports 5001/5002 (or 8080/8081 for the mesh)
		mesh   bool
	}
	paths := []path{
		{"veth (baseline)", t1, "198.18.200.2", false},
		{"underlay host to host", h1ep, "198.18.0.2", false},
		{"overlay task to task", t1, "198.19.1.12", false},
		{"service VIP", t1, vip.String(), false},
		{"routing mesh (client via h1)", l.client, "198.18.0.1", true},
	}
	const rounds = 7
	tput := map[string][]float64{}
	lat := map[string][]time.Duration{}
	for r := 0; r < rounds; r++ {
		for _, p := range paths {
			tp, lp := "5001", "5002"
			if p.mesh {
				tp, lp = "8080", "8081"
			}
			bps, err := throughput(p.from, p.target+":"+tp, time.Second)
			mustT(t, err, p.name+" throughput")
			tput[p.name] = append(tput[p.name], bps)
			ds, err := connectLatency(p.from, p.target+":"+lp, 200)
			mustT(t, err, p.name+" connect")
			lat[p.name] = append(lat[p.name], ds...)
		}
	}
	base := median(tput[paths[0].name])
	baseLat := medianDur(lat[paths[0].name])
	var b strings.Builder
	fmt.Fprintf(&b, "| path | throughput (median of %d × 1 s) | vs veth | connect median | p99 | vs veth |\n|---|---|---|---|---|---|\n", rounds)
	for _, p := range paths {
		m := median(tput[p.name])
		ds := lat[p.name]
		md := medianDur(ds)
		fmt.Fprintf(&b, "| %s | %.2f Gbit/s | %.2f | %v | %v | %.2f |\n", p.name, m*8/1e9, m/base,
			md.Round(time.Microsecond), pct(ds, 0.99).Round(time.Microsecond), float64(md)/float64(baseLat))
	}
	t.Logf("\n%s", b.String())
	if out := os.Getenv("OVERLAY_BENCH_OUT"); out != "" {
		os.WriteFile(out, []byte(b.String()), 0o644)
	}
}

// serveTCPNoDeadline is serveTCP without the per-connection deadline.
func (l *lab) serveTCPNoDeadline(ep *endpoint, addr string, h handler) {
	l.serveTCP(ep, addr, func(c net.Conn) {
		c.SetDeadline(time.Time{})
		h(c)
	})
}

// throughput writes for d from ep to addr and returns bytes per second.
func throughput(ep *endpoint, addr string, d time.Duration) (float64, error) {
	c, err := dialIn(ep, "tcp4", addr, testTimeout)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	buf := make([]byte, 256<<10)
	var n int64
	start := time.Now()
	c.SetWriteDeadline(start.Add(d))
	for {
		k, err := c.Write(buf)
		n += int64(k)
		if err != nil {
			if isTimeout(err) {
				break
			}
			return 0, err
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// connectLatency times n sequential TCP handshakes from ep to addr.
func connectLatency(ep *endpoint, addr string, n int) ([]time.Duration, error) {
	var out []time.Duration
	var err error
	// Dial from one locked thread in ep's namespace: the timing then
	// excludes the namespace switch.
	derr := doIn(ep, func() {
		for i := 0; i < n; i++ {
			start := time.Now()
			var c net.Conn
			c, err = net.DialTimeout("tcp4", addr, testTimeout)
			if err != nil {
				return
			}
			out = append(out, time.Since(start))
			c.Close()
		}
	})
	if derr != nil {
		return nil, derr
	}
	return out, err
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func medianDur(ds []time.Duration) time.Duration { return pct(ds, 0.5) }

func pct(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}

func doIn(ep *endpoint, fn func()) error {
	return nsutil.Do(ep.ns, func() error { fn(); return nil })
}
