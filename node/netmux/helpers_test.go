package netmux_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/shoal-project/shoal/identity"
	"github.com/shoal-project/shoal/manager/ca"
	"github.com/shoal-project/shoal/node/netmux"
)

// waitFor bounds every wait for something that should happen promptly.
const waitFor = 5 * time.Second

// testCluster is a root CA that issues node credentials for one cluster.
type testCluster struct {
	root      *ca.RootCA
	clusterID string
}

func newTestCluster(t *testing.T, clusterID string) *testCluster {
	t.Helper()
	root, err := ca.NewRootCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &testCluster{root: root, clusterID: clusterID}
}

// creds issues a certificate for nodeID with role and returns credentials
// holding it.
func (c *testCluster) creds(t *testing.T, nodeID string, role identity.Role) *identity.Credentials {
	t.Helper()
	key, keyPEM, err := identity.NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := identity.CreateCSR(key)
	if err != nil {
		t.Fatal(err)
	}
	id := identity.Identity{NodeID: nodeID, ClusterID: c.clusterID, Role: role}
	certPEM, _, err := c.root.Issue(csr, id, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	creds, err := identity.NewCredentials(identity.Material{CertPEM: certPEM, KeyPEM: keyPEM, RootPEM: c.root.CertPEM})
	if err != nil {
		t.Fatal(err)
	}
	return creds
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// clientIsManager is the node's Raft authorizer on the accepting side: the
// client must have presented a verified manager certificate.
func clientIsManager(cs tls.ConnectionState) error {
	id, ok := identity.PeerIdentity(cs)
	if !ok || id.Role != identity.RoleManager {
		return errors.New("peer is not a manager")
	}
	return nil
}

// serverIsManager is the node's check of a dialled Raft peer: on the client
// side there are no verified chains, so the certificate is read directly
// (VerifyConnection has already checked it against the root).
func serverIsManager(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("peer presented no certificate")
	}
	id, err := identity.IdentityFromCert(cs.PeerCertificates[0])
	if err != nil || id.Role != identity.RoleManager {
		return errors.New("peer is not a manager")
	}
	return nil
}

// startMux listens on a free loopback port with the server config the node
// uses and closes the mux when the test ends.
func startMux(t *testing.T, creds *identity.Credentials, auth netmux.RaftAuthorizer) *netmux.Mux {
	t.Helper()
	m, err := netmux.Listen("127.0.0.1:0", creds.ServerConfig([]string{netmux.ProtoGRPC, netmux.ProtoRaft}), auth, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// dialTLS opens a TLS connection to addr and completes the client side of
// the handshake within waitFor.
func dialTLS(t *testing.T, addr string, conf *tls.Config) (*tls.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	d := &tls.Dialer{NetDialer: &net.Dialer{}, Config: conf}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c.(*tls.Conn), nil
}

type acceptResult struct {
	conn net.Conn
	err  error
}

// acceptAsync calls ln.Accept once in the background. A connection that the
// test never collects is closed when the test ends.
func acceptAsync(t *testing.T, ln net.Listener) <-chan acceptResult {
	t.Helper()
	ch := make(chan acceptResult, 1)
	go func() {
		c, err := ln.Accept()
		ch <- acceptResult{c, err}
	}()
	return ch
}

// acceptWithin waits for a result of acceptAsync.
func acceptWithin(t *testing.T, ch <-chan acceptResult) net.Conn {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("Accept: %v", r.err)
		}
		t.Cleanup(func() { r.conn.Close() })
		return r.conn
	case <-time.After(waitFor):
		t.Fatal("no connection accepted within the deadline")
		return nil
	}
}

// exchange writes ping on a, reads it on b, writes pong on b and reads it
// on a, all within waitFor.
func exchange(t *testing.T, a, b net.Conn) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	a.SetDeadline(deadline)
	b.SetDeadline(deadline)
	defer a.SetDeadline(time.Time{})
	defer b.SetDeadline(time.Time{})
	transfer := func(from, to net.Conn, msg string) {
		t.Helper()
		errc := make(chan error, 1)
		go func() {
			_, err := from.Write([]byte(msg))
			errc <- err
		}()
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(to, buf); err != nil {
			t.Fatalf("read %q: %v", msg, err)
		}
		if err := <-errc; err != nil {
			t.Fatalf("write %q: %v", msg, err)
		}
		if string(buf) != msg {
			t.Fatalf("read %q, want %q", buf, msg)
		}
	}
	transfer(a, b, "ping from the dialler")
	transfer(b, a, "pong from the acceptor")
}

// expectClosedByPeer reads from c until the peer's close arrives. A
// timeout means the peer kept the connection open.
func expectClosedByPeer(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitFor))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err == nil {
		t.Fatalf("read %d unexpected bytes %q; want the connection closed", n, buf[:n])
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("connection still open after the deadline; want it closed by the peer")
	}
}

// peerNodeID returns the node ID in the certificate the far side of the
// server-side TLS connection c presented.
func peerNodeID(t *testing.T, c net.Conn) string {
	t.Helper()
	tc, ok := c.(*tls.Conn)
	if !ok {
		t.Fatalf("accepted %T, want *tls.Conn", c)
	}
	id, ok := identity.PeerIdentity(tc.ConnectionState())
	if !ok {
		return ""
	}
	return id.NodeID
}
