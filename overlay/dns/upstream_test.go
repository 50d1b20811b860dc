package dns

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"

	mdns "github.com/miekg/dns"
)

// upstream is a fake DNS server standing for the node's name servers.
type upstream struct {
	addr    netip.AddrPort
	queries atomic.Int32
	udp     *mdns.Server
	tcp     *mdns.Server
}

// answerWith returns a handler that gives every A query for name the
// address ip, and NXDOMAIN for any other name.
func answerWith(name string, ip netip.Addr) func(*mdns.Msg) *mdns.Msg {
	return func(req *mdns.Msg) *mdns.Msg {
		resp := new(mdns.Msg).SetReply(req)
		q := req.Question[0]
		if mdns.CanonicalName(q.Name) != mdns.CanonicalName(name) {
			resp.Rcode = mdns.RcodeNameError
			return resp
		}
		if q.Qtype == mdns.TypeA {
			resp.Answer = append(resp.Answer, &mdns.A{
				Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 300},
				A:   ip.AsSlice(),
			})
		}
		return resp
	}
}

// startUpstream serves handle on UDP and TCP at host:port (port 0 picks
// one) in the calling thread's network namespace, or inside ns when
// listen is given; it stops when the test ends.
func startUpstream(t *testing.T, host string, port uint16, listen func(func() error) error, handle func(*mdns.Msg) *mdns.Msg) *upstream {
	t.Helper()
	if listen == nil {
		listen = func(f func() error) error { return f() }
	}
	var (
		pc net.PacketConn
		ln net.Listener
	)
	err := listen(func() error {
		var lc net.ListenConfig
		var err error
		pc, err = lc.ListenPacket(context.Background(), "udp", netip.AddrPortFrom(netip.MustParseAddr(host), port).String())
		if err != nil {
			return err
		}
		port = uint16(pc.LocalAddr().(*net.UDPAddr).Port)
		ln, err = lc.Listen(context.Background(), "tcp", netip.AddrPortFrom(netip.MustParseAddr(host), port).String())
		return err
	})
	if err != nil {
		closeAll(pc, ln)
		t.Fatalf("fake upstream on %s:%d: %v", host, port, err)
	}
	u := &upstream{addr: pc.LocalAddr().(*net.UDPAddr).AddrPort()}
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, req *mdns.Msg) {
		u.queries.Add(1)
		if resp := handle(req); resp != nil {
			_ = w.WriteMsg(resp)
		}
	})
	u.udp = &mdns.Server{PacketConn: pc, Handler: h}
	u.tcp = &mdns.Server{Listener: ln, Handler: h}
	for _, srv := range []*mdns.Server{u.udp, u.tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		failed := make(chan error, 1)
		go func() { failed <- srv.ActivateAndServe() }()
		select {
		case <-started:
		case err := <-failed:
			t.Fatalf("fake upstream: %v", err)
		}
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return u
}

// closedPort returns a loopback UDP and TCP port nothing listens on.
func closedPort(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	_ = pc.Close()
	return addr
}
