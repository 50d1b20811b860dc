package netmux_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/shoal-project/shoal/identity"
	"github.com/shoal-project/shoal/node/netmux"
)

// peerSeen is what the gRPC server learnt about the caller of one RPC.
type peerSeen struct {
	id       identity.Identity
	known    bool
	authType string
	alpn     string
	err      string
}

type grpcServer struct {
	srv      *grpc.Server
	peers    chan peerSeen
	serveErr chan error
}

// serveGRPC serves a health service on m.GRPC() with the handshaken
// credentials, recording the peer of every call.
func serveGRPC(t *testing.T, m *netmux.Mux) *grpcServer {
	t.Helper()
	s := &grpcServer{peers: make(chan peerSeen, 16), serveErr: make(chan error, 1)}
	record := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		var seen peerSeen
		p, ok := peer.FromContext(ctx)
		if !ok {
			seen.err = "no peer in context"
		} else if info, ok := p.AuthInfo.(credentials.TLSInfo); !ok {
			seen.err = "auth info is not TLSInfo"
		} else {
			seen.authType = info.AuthType()
			seen.alpn = info.State.NegotiatedProtocol
			seen.id, seen.known = identity.PeerIdentity(info.State)
		}
		select {
		case s.peers <- seen:
		default:
		}
		return handler(ctx, req)
	}
	s.srv = grpc.NewServer(grpc.Creds(netmux.HandshakenCreds{}), grpc.UnaryInterceptor(record))
	hs := health.NewServer()
	hs.SetServingStatus("shoal", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s.srv, hs)
	go func() { s.serveErr <- s.srv.Serve(m.GRPC()) }()
	t.Cleanup(func() {
		stopped := make(chan struct{})
		go func() {
			s.srv.Stop()
			close(stopped)
		}()
		select {
		case <-stopped:
		case <-time.After(waitFor):
			// Closing the whole mux also ends Accept, so the test ends.
			t.Error("grpc.Server.Stop blocked; closing the mux to release it")
			m.Close()
			<-stopped
		}
	})
	return s
}

// newGRPCClient returns a client of addr using TLS config conf; the
// connection is made on the first call.
func newGRPCClient(t *testing.T, addr string, creds credentials.TransportCredentials) healthpb.HealthClient {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return healthpb.NewHealthClient(cc)
}

func checkHealth(t *testing.T, c healthpb.HealthClient) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	resp, err := c.Check(ctx, &healthpb.HealthCheckRequest{Service: "shoal"})
	if err != nil {
		t.Fatalf("health check through the mux: %v", err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health status %v, want SERVING", resp.GetStatus())
	}
}

func nextPeer(t *testing.T, s *grpcServer) peerSeen {
	t.Helper()
	select {
	case p := <-s.peers:
		if p.err != "" {
			t.Fatal(p.err)
		}
		return p
	case <-time.After(waitFor):
		t.Fatal("the server recorded no call")
		return peerSeen{}
	}
}

func TestGRPCReachesServerWithClientIdentity(t *testing.T) {
	cl := newTestCluster(t, "cluster-a")
	m := startMux(t, cl.creds(t, "manager-1", identity.RoleManager), clientIsManager)
	s := serveGRPC(t, m)

	worker := cl.creds(t, "worker-7", identity.RoleWorker)
	checkHealth(t, newGRPCClient(t, m.Addr().String(), credentials.NewTLS(worker.ClientConfig(netmux.ProtoGRPC))))

	p := nextPeer(t, s)
	want := identity.Identity{NodeID: "worker-7", ClusterID: "cluster-a", Role: identity.RoleWorker}
	if !p.known || p.id != want {
		t.Errorf("server saw identity %+v (known %v), want %+v", p.id, p.known, want)
	}
	if p.authType != "tls" {
		t.Errorf("auth type %q, want tls", p.authType)
	}
	if p.alpn != netmux.ProtoGRPC {
		t.Errorf("negotiated protocol %q, want %q", p.alpn, netmux.ProtoGRPC)
	}
}

func TestGRPCAnonymousClientHasNoIdentity(t *testing.T) {
	cl := newTestCluster(t, "cluster-a")
	m := startMux(t, cl.creds(t, "manager-1", identity.RoleManager), clientIsManager)
	s := serveGRPC(t, m)

	// A joining node has no certificate yet and pins the root by digest.
	conf := identity.PinnedClientConfig(cl.root.Digest, netmux.ProtoGRPC)
	checkHealth(t, newGRPCClient(t, m.Addr().String(), credentials.NewTLS(conf)))

	if p := nextPeer(t, s); p.known {
		t.Errorf("anonymous client seen as %+v, want no identity", p.id)
	}
}

func TestConnectionWithoutALPNGoesToGRPC(t *testing.T) {
	cl := newTestCluster(t, "cluster-a")
	m := startMux(t, cl.creds(t, "manager-1", identity.RoleManager), clientIsManager)
	grpcCh := acceptAsync(t, m.GRPC())
	raftCh := acceptAsync(t, m.Raft())

	c, err := dialTLS(t, m.Addr().String(), cl.creds(t, "manager-2", identity.RoleManager).ClientConfig(""))
	if err != nil {
		t.Fatal(err)
	}
	if p := c.ConnectionState().NegotiatedProtocol; p != "" {
		t.Fatalf("negotiated %q, want no protocol", p)
	}
	s := acceptWithin(t, grpcCh)
	if id := peerNodeID(t, s); id != "manager-2" {
		t.Errorf("gRPC listener got a connection from %q, want manager-2", id)
	}
	exchange(t, c, s)
	select {
	case r := <-raftCh:
		t.Fatalf("Raft listener accepted %v (err %v), want nothing", r.conn, r.err)
	default:
	}
}

func TestUnknownALPNIsRefused(t *testing.T) {
	cl := newTestCluster(t, "cluster-a")
	m := startMux(t, cl.creds(t, "manager-1", identity.RoleManager), clientIsManager)
	grpcCh := acceptAsync(t, m.GRPC())
	raftCh := acceptAsync(t, m.Raft())

	if _, err := dialTLS(t, m.Addr().String(), cl.creds(t, "manager-2", identity.RoleManager).ClientConfig("shoal-unknown")); err == nil {
		t.Fatal("handshake offering only an unknown protocol succeeded, want it refused")
	}
	// The refused connection never reached a listener: the next ones each
	// arrive where they belong.
	if _, err := dialTLS(t, m.Addr().String(), cl.creds(t, "manager-3", identity.RoleManager).ClientConfig(netmux.ProtoRaft)); err != nil {
		t.Fatal(err)
	}
	if id := peerNodeID(t, acceptWithin(t, raftCh)); id != "manager-3" {
		t.Errorf("Raft listener got %q, want manager-3", id)
	}
	if _, err := dialTLS(t, m.Addr().String(), cl.creds(t, "manager-4", identity.RoleManager).ClientConfig(netmux.ProtoGRPC)); err != nil {
		t.Fatal(err)
	}
	if id := peerNodeID(t, acceptWithin(t, grpcCh)); id != "manager-4" {
		t.Errorf("gRPC listener got %q, want manager-4", id)
	}
}

func TestRaftFromManagerArrivesOnRaftListener(t *testing.T) {
	cl := newTestCluster(t, "cluster-a")
	m := startMux(t, cl.creds(t, "manager-1", identity.RoleManager), clientIsManager)
	raftCh := acceptAsync(t, m.Raft())
	grpcCh := acceptAsync(t, m.GRPC())

	c, err := dialTLS(t, m.Addr().String(), cl.creds(t, "manager-2", identity.RoleManager).ClientConfig(netmux.ProtoRaft))
	if err != nil {
		t.Fatal(err)
	}
	if p := c.ConnectionState().NegotiatedProtocol; p != netmux.ProtoRaft {
		t.Fatalf("negotiated %q, want %q", p, netmux.ProtoRaft)
	}
	s := acceptWithin(t, raftCh)
	if id := peerNodeID(t, s); id != "manager-2" {
		t.Errorf("Raft listener got a connection from %q, want manager-2", id)
	}
	exchange(t, c, s)
	select {
	case r := <-grpcCh:
		t.Fatalf("gRPC listener accepted %v (err %v), want nothing", r.conn, r.err)
	default:
	}
}

func TestRaftFromWorkerIsRefused(t *testing.T) {
	cl := newTestCluster(t, "cluster-a")
	m := startMux(t, cl.creds(t, "manager-1", identity.RoleManager), clientIsManager)
	// Accept is pending before the worker dials, so a worker connection
	// that got through would be the first one handed out.
	raftCh := acceptAsync(t, m.Raft())

	wc, err := dialTLS(t, m.Addr().String(), cl.creds(t, "worker-1", identity.RoleWorker).ClientConfig(netmux.ProtoRaft))
	if err != nil {
		// TLS 1.3 lets the client finish first, but failing here is a
		// refusal too.
		t.Logf("worker handshake failed: %v", err)
	} else {
		expectClosedByPeer(t, wc)
	}

	// An anonymous client is no manager either.
	ac, err := dialTLS(t, m.Addr().String(), identity.PinnedClientConfig(cl.root.Digest, netmux.ProtoRaft))
	if err == nil {
		expectClosedByPeer(t, ac)
	}

	mc, err := dialTLS(t, m.Addr().String(), cl.creds(t, "manager-2", identity.RoleManager).ClientConfig(netmux.ProtoRaft))
	if err != nil {
		t.Fatal(err)
	}
	s := acceptWithin(t, raftCh)
	if id := peerNodeID(t, s); id != "manager-2" {
		t.Fatalf("first Raft connection came from %q, want manager-2 (refused peers must not get through)", id)
	}
	exchange(t, mc, s)
}

func TestRaftWithoutAuthorizerAcceptsAnyRole(t *testing.T) {
	cl := newTestCluster(t, "cluster-a")
	m := startMux(t, cl.creds(t, "manager-1", identity.RoleManager), nil)
	raftCh := acceptAsync(t, m.Raft())
	wc, err := dialTLS(t, m.Addr().String(), cl.creds(t, "worker-1", identity.RoleWorker).ClientConfig(netmux.ProtoRaft))
	if err != nil {
		t.Fatal(err)
	}
	s := acceptWithin(t, raftCh)
	if id := peerNodeID(t, s); id != "worker-1" {
		t.Fatalf("Raft listener got %q, want worker-1", id)
	}
	exchange(t, wc, s)
}

func TestClientFromOtherClusterIsRefused(t *testing.T) {
	cl := newTestCluster(t, "cluster-a")
	other := newTestCluster(t, "cluster-b")
	m := startMux(t, cl.creds(t, "manager-1", identity.RoleManager), clientIsManager)
	raftCh := acceptAsync(t, m.Raft())
	grpcCh := acceptAsync(t, m.GRPC())

	intruder := other.creds(t, "intruder", identity.RoleManager)
	for _, proto := range []string{netmux.ProtoRaft, netmux.ProtoGRPC} {
		// The intruder skips its own check of the server, so only the
		// server's verification of the client stands in the way.
		conf := intruder.ClientConfig(proto)
		conf.VerifyConnection = nil
		if c, err := dialTLS(t, m.Addr().String(), conf); err == nil {
			expectClosedByPeer(t, c)
		}
	}
	// Accepts were pending all along, so an intruder that got through
	// would be handed out before these.
	if _, err := dialTLS(t, m.Addr().String(), cl.creds(t, "manager-2", identity.RoleManager).ClientConfig(netmux.ProtoRaft)); err != nil {
		t.Fatal(err)
	}
	if id := peerNodeID(t, acceptWithin(t, raftCh)); id != "manager-2" {
		t.Errorf("Raft listener got %q first, want manager-2", id)
	}
	if _, err := dialTLS(t, m.Addr().String(), cl.creds(t, "worker-3", identity.RoleWorker).ClientConfig(netmux.ProtoGRPC)); err != nil {
		t.Fatal(err)
	}
	if id := peerNodeID(t, acceptWithin(t, grpcCh)); id != "worker-3" {
		t.Errorf("gRPC listener got %q first, want worker-3", id)
	}
}

func TestStoppingGRPCServerDoesNotStopRaft(t *testing.T) {
	for _, tc := range []struct {
		name          string
		closeListener bool
	}{
		{"close listener then Stop", true},
		{"Stop alone", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := newTestCluster(t, "cluster-a")
			m := startMux(t, cl.creds(t, "manager-1", identity.RoleManager), clientIsManager)
			s := serveGRPC(t, m)
			// A live client connection makes Stop close a transport too.
			checkHealth(t, newGRPCClient(t, m.Addr().String(),
				credentials.NewTLS(cl.creds(t, "worker-1", identity.RoleWorker).ClientConfig(netmux.ProtoGRPC))))

			if tc.closeListener {
				if err := m.GRPC().Close(); err != nil {
					t.Fatal(err)
				}
				select {
				case err := <-s.serveErr:
					if !errors.Is(err, net.ErrClosed) {
						t.Errorf("Serve returned %v, want net.ErrClosed", err)
					}
				case <-time.After(waitFor):
					t.Fatal("Serve did not return after its listener was closed")
				}
			}
			stopped := make(chan struct{})
			go func() {
				s.srv.Stop()
				close(stopped)
			}()
			select {
			case <-stopped:
			case <-time.After(waitFor):
				t.Fatal("grpc.Server.Stop did not return: the listener's Close does not end Accept")
			}
			if !tc.closeListener {
				select {
				case err := <-s.serveErr:
					if err != nil {
						t.Errorf("Serve after Stop returned %v, want nil", err)
					}
				case <-time.After(waitFor):
					t.Fatal("Serve did not return after Stop")
				}
			}

			// The gRPC listener stays closed and new gRPC connections are
			// dropped by the mux.
			if _, err := m.GRPC().Accept(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Accept on closed gRPC listener: %v, want net.ErrClosed", err)
			}
			if c, err := dialTLS(t, m.Addr().String(), cl.creds(t, "worker-2", identity.RoleWorker).ClientConfig(netmux.ProtoGRPC)); err == nil {
				expectClosedByPeer(t, c)
			}

			// Raft is unaffected.
			raftCh := acceptAsync(t, m.Raft())
			c, err := dialTLS(t, m.Addr().String(), cl.creds(t, "manager-2", identity.RoleManager).ClientConfig(netmux.ProtoRaft))
			if err != nil {
				t.Fatal(err)
			}
			exchange(t, c, acceptWithin(t, raftCh))
		})
	}
}

func TestCloseEndsBothListeners(t *testing.T) {
	cl := newTestCluster(t, "cluster-a")
	m := startMux(t, cl.creds(t, "manager-1", identity.RoleManager), clientIsManager)

	// A Raft connection routed but never accepted waits inside the mux.
	c, err := dialTLS(t, m.Addr().String(), cl.creds(t, "manager-2", identity.RoleManager).ClientConfig(netmux.ProtoRaft))
	if err != nil {
		t.Fatal(err)
	}

	// An Accept call already blocked when Close happens must return too.
	grpcCh := acceptAsync(t, m.GRPC())
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case r := <-grpcCh:
		if !errors.Is(r.err, net.ErrClosed) {
			t.Errorf("pending gRPC Accept returned (%v, %v), want net.ErrClosed", r.conn, r.err)
		}
	case <-time.After(waitFor):
		t.Fatal("pending gRPC Accept did not return after Close")
	}
	// With the mux closed the routed connection is dropped, not handed out.
	expectClosedByPeer(t, c)
	for name, ln := range map[string]net.Listener{"gRPC": m.GRPC(), "Raft": m.Raft()} {
		done := make(chan error, 1)
		go func() {
			conn, err := ln.Accept()
			if conn != nil {
				conn.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("%s Accept after Close: %v, want net.ErrClosed", name, err)
			}
		case <-time.After(waitFor):
			t.Fatalf("%s Accept blocks after Close", name)
		}
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v, want nil", err)
	}
}

func TestCloseEndsBlockedRaftAccept(t *testing.T) {
	cl := newTestCluster(t, "cluster-a")
	m := startMux(t, cl.creds(t, "manager-1", identity.RoleManager), clientIsManager)
	raftCh := acceptAsync(t, m.Raft())
	grpcCh := acceptAsync(t, m.GRPC())
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]<-chan acceptResult{"Raft": raftCh, "gRPC": grpcCh} {
		select {
		case r := <-ch:
			if !errors.Is(r.err, net.ErrClosed) {
				t.Errorf("%s Accept returned (%v, %v), want net.ErrClosed", name, r.conn, r.err)
			}
		case <-time.After(waitFor):
			t.Fatalf("%s Accept did not return after Close", name)
		}
	}
}

func TestStalledHandshakeDoesNotBlockOthers(t *testing.T) {
	cl := newTestCluster(t, "cluster-a")
	m := startMux(t, cl.creds(t, "manager-1", identity.RoleManager), clientIsManager)
	serveGRPC(t, m)

	// Clients that connect and never finish a ClientHello: one silent,
	// one that sends the start of a TLS record and stops.
	var stalled []net.Conn
	for _, prefix := range [][]byte{nil, {0x16, 0x03, 0x01, 0x02, 0x00, 0x01}} {
		c, err := net.DialTimeout("tcp", m.Addr().String(), waitFor)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if prefix != nil {
			if _, err := c.Write(prefix); err != nil {
				t.Fatal(err)
			}
		}
		stalled = append(stalled, c)
	}

	checkHealth(t, newGRPCClient(t, m.Addr().String(),
		credentials.NewTLS(cl.creds(t, "worker-1", identity.RoleWorker).ClientConfig(netmux.ProtoGRPC))))

	raftCh := acceptAsync(t, m.Raft())
	c, err := dialTLS(t, m.Addr().String(), cl.creds(t, "manager-2", identity.RoleManager).ClientConfig(netmux.ProtoRaft))
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, c, acceptWithin(t, raftCh))

	// The stalled handshakes were still pending the whole time: the server
	// neither answered nor closed them. The short read deadline only
	// samples that state.
	for i, s := range stalled {
		s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		n, err := s.Read(make([]byte, 1))
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("stalled client %d: read (%d, %v), want a timeout (handshake still pending)", i, n, err)
		}
	}
}
