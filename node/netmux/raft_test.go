package netmux_test

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/shoal-project/shoal/identity"
	"github.com/shoal-project/shoal/node/netmux"
)

// streamLayer makes the stream layer a manager with creds uses on mux m.
func streamLayer(t *testing.T, m *netmux.Mux, creds *identity.Credentials) *netmux.StreamLayer {
	t.Helper()
	sl, err := netmux.NewStreamLayer(m, m.Addr().String(), func() *tls.Config { return creds.ClientConfig(netmux.ProtoRaft) }, serverIsManager)
	if err != nil {
		t.Fatal(err)
	}
	return sl
}

func TestStreamLayerDialReachesPeerManager(t *testing.T) {
	cl := newTestCluster(t, "cluster-a")
	c1 := cl.creds(t, "manager-1", identity.RoleManager)
	c2 := cl.creds(t, "manager-2", identity.RoleManager)
	sl1 := streamLayer(t, startMux(t, c1, clientIsManager), c1)
	sl2 := streamLayer(t, startMux(t, c2, clientIsManager), c2)

	accepted := acceptAsync(t, sl1)
	c, err := sl2.Dial(raft.ServerAddress(sl1.Addr().String()), waitFor)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	tc, ok := c.(*tls.Conn)
	if !ok {
		t.Fatalf("Dial returned %T, want *tls.Conn", c)
	}
	if cn := tc.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "manager-1" {
		t.Errorf("dialled peer is %q, want manager-1", cn)
	}
	s := acceptWithin(t, accepted)
	if id := peerNodeID(t, s); id != "manager-2" {
		t.Errorf("accepted a Raft connection from %q, want manager-2", id)
	}
	exchange(t, c, s)
}

func TestStreamLayerRefusesPeerThatIsNoManager(t *testing.T) {
	cl := newTestCluster(t, "cluster-a")
	// The far end serves a worker certificate but would accept our Raft
	// connection: only the dialler's check can refuse it.
	far := startMux(t, cl.creds(t, "worker-1", identity.RoleWorker), clientIsManager)
	farCh := acceptAsync(t, far.Raft())

	c2 := cl.creds(t, "manager-2", identity.RoleManager)
	sl2 := streamLayer(t, startMux(t, c2, clientIsManager), c2)
	c, err := sl2.Dial(raft.ServerAddress(far.Addr().String()), waitFor)
	if err == nil {
		c.Close()
		t.Fatal("Dial to a worker succeeded, want it refused")
	}
	if c != nil {
		t.Errorf("Dial returned a connection with its error")
	}
	if !strings.Contains(err.Error(), "not a manager") || !strings.Contains(err.Error(), far.Addr().String()) {
		t.Errorf("Dial error %q, want the peer address and the authorizer's reason", err)
	}
	// The dialler hung up on the connection the far end accepted.
	expectClosedByPeer(t, acceptWithin(t, farCh))
}

func TestStreamLayerRefusesPeerWithoutRaftProtocol(t *testing.T) {
	cl := newTestCluster(t, "cluster-a")
	// A TLS server that offers no application protocols at all.
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cl.creds(t, "manager-1", identity.RoleManager).ServerConfig(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(io.Discard, c)
			}()
		}
	}()

	c2 := cl.creds(t, "manager-2", identity.RoleManager)
	sl2 := streamLayer(t, startMux(t, c2, clientIsManager), c2)
	c, err := sl2.Dial(raft.ServerAddress(ln.Addr().String()), waitFor)
	if err == nil {
		c.Close()
		t.Fatal("Dial to a server without the Raft protocol succeeded")
	}
	if !strings.Contains(err.Error(), "did not accept the raft protocol") {
		t.Errorf("Dial error %q, want the protocol refusal", err)
	}
}

func TestStreamLayerDialUnreachablePeer(t *testing.T) {
	cl := newTestCluster(t, "cluster-a")
	c2 := cl.creds(t, "manager-2", identity.RoleManager)
	sl2 := streamLayer(t, startMux(t, c2, clientIsManager), c2)

	// A loopback port that was free a moment ago.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if c, err := sl2.Dial(raft.ServerAddress(addr), waitFor); err == nil {
		c.Close()
		t.Fatalf("Dial to closed port %s succeeded", addr)
	} else if !strings.Contains(err.Error(), addr) {
		t.Errorf("Dial error %q does not name the peer %s", err, addr)
	}
}

func TestStreamLayerAddrAndClose(t *testing.T) {
	cl := newTestCluster(t, "cluster-a")
	creds := cl.creds(t, "manager-1", identity.RoleManager)
	m := startMux(t, creds, clientIsManager)
	client := func() *tls.Config { return creds.ClientConfig(netmux.ProtoRaft) }

	if _, err := netmux.NewStreamLayer(m, "no port here", client, nil); err == nil {
		t.Error("NewStreamLayer accepted an advertise address without a port")
	}
	sl, err := netmux.NewStreamLayer(m, "127.0.0.1:4242", client, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := sl.Addr().String(); got != "127.0.0.1:4242" {
		t.Errorf("Addr() = %q, want the advertised 127.0.0.1:4242", got)
	}

	if err := sl.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := sl.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
	// Closing the stream layer leaves gRPC on the mux alone.
	grpcCh := acceptAsync(t, m.GRPC())
	if _, err := dialTLS(t, m.Addr().String(), cl.creds(t, "worker-1", identity.RoleWorker).ClientConfig(netmux.ProtoGRPC)); err != nil {
		t.Fatal(err)
	}
	if id := peerNodeID(t, acceptWithin(t, grpcCh)); id != "worker-1" {
		t.Errorf("gRPC listener got %q, want worker-1", id)
	}
	// A Raft connection is now dropped by the mux.
	if c, err := dialTLS(t, m.Addr().String(), cl.creds(t, "manager-2", identity.RoleManager).ClientConfig(netmux.ProtoRaft)); err == nil {
		expectClosedByPeer(t, c)
	}
}

func TestRaftTransportOverStreamLayer(t *testing.T) {
	cl := newTestCluster(t, "cluster-a")
	c1 := cl.creds(t, "manager-1", identity.RoleManager)
	c2 := cl.creds(t, "manager-2", identity.RoleManager)
	sl1 := streamLayer(t, startMux(t, c1, clientIsManager), c1)
	sl2 := streamLayer(t, startMux(t, c2, clientIsManager), c2)
	t1 := raft.NewNetworkTransport(sl1, 2, waitFor, io.Discard)
	t2 := raft.NewNetworkTransport(sl2, 2, waitFor, io.Discard)
	t.Cleanup(func() { t1.Close(); t2.Close() })

	served := make(chan error, 1)
	go func() {
		rpc, ok := <-t1.Consumer()
		if !ok {
			served <- errors.New("consumer closed")
			return
		}
		req, ok := rpc.Command.(*raft.RequestVoteRequest)
		if !ok {
			rpc.Respond(nil, errors.New("unexpected command"))
			served <- errors.New("unexpected command type")
			return
		}
		rpc.Respond(&raft.RequestVoteResponse{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax}, Term: req.Term, Granted: true}, nil)
		served <- nil
	}()

	req := &raft.RequestVoteRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("manager-2"), Addr: []byte(sl2.Addr().String())},
		Term:      7,
	}
	var resp raft.RequestVoteResponse
	if err := t2.RequestVote("manager-1", raft.ServerAddress(sl1.Addr().String()), req, &resp); err != nil {
		t.Fatalf("RequestVote over the stream layer: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if !resp.Granted || resp.Term != 7 {
		t.Errorf("response %+v, want granted in term 7", resp)
	}
}
