package netmux_test

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/shoal-project/shoal/identity"
	"github.com/shoal-project/shoal/node/netmux"
)

// handshakenPair returns the two ends of a TLS connection over an
// in-memory pipe, both handshaken.
func handshakenPair(t *testing.T, server, client *tls.Config) (srv, cli *tls.Conn) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	srv, cli = tls.Server(a, server), tls.Client(b, client)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- cli.HandshakeContext(ctx) }()
	if err := srv.HandshakeContext(ctx); err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	return srv, cli
}

func TestHandshakenCredsServerHandshakeExposesTLSState(t *testing.T) {
	cl := newTestCluster(t, "cluster-a")
	srvCreds := cl.creds(t, "manager-1", identity.RoleManager)
	cliCreds := cl.creds(t, "worker-1", identity.RoleWorker)
	srv, _ := handshakenPair(t, srvCreds.ServerConfig([]string{netmux.ProtoGRPC}), cliCreds.ClientConfig(netmux.ProtoGRPC))

	conn, auth, err := netmux.HandshakenCreds{}.ServerHandshake(srv)
	if err != nil {
		t.Fatalf("ServerHandshake: %v", err)
	}
	if conn != net.Conn(srv) {
		t.Errorf("ServerHandshake returned %v, want the TLS connection itself", conn)
	}
	info, ok := auth.(credentials.TLSInfo)
	if !ok {
		t.Fatalf("auth info is %T, want credentials.TLSInfo", auth)
	}
	if info.SecurityLevel != credentials.PrivacyAndIntegrity {
		t.Errorf("security level %v, want PrivacyAndIntegrity", info.SecurityLevel)
	}
	if !info.State.HandshakeComplete || info.State.NegotiatedProtocol != netmux.ProtoGRPC {
		t.Errorf("state: handshake complete %v, protocol %q", info.State.HandshakeComplete, info.State.NegotiatedProtocol)
	}
	id, ok := identity.PeerIdentity(info.State)
	if want := (identity.Identity{NodeID: "worker-1", ClusterID: "cluster-a", Role: identity.RoleWorker}); !ok || id != want {
		t.Errorf("peer identity %+v (%v), want %+v", id, ok, want)
	}
}

func TestHandshakenCredsRefusesPlainConnections(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	conn, auth, err := netmux.HandshakenCreds{}.ServerHandshake(a)
	if err == nil || !strings.Contains(err.Error(), "not TLS") {
		t.Fatalf("ServerHandshake on a plain connection: (%v, %v, %v), want a not-TLS error", conn, auth, err)
	}
	if conn != nil || auth != nil {
		t.Errorf("ServerHandshake returned (%v, %v) with its error, want nils", conn, auth)
	}
}

func TestHandshakenCredsIsServerOnly(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if conn, _, err := (netmux.HandshakenCreds{}).ClientHandshake(ctx, "x", a); err == nil || conn != nil {
		t.Fatalf("ClientHandshake: (%v, %v), want an error", conn, err)
	}
	c := netmux.HandshakenCreds{}
	if info := c.Info(); info.SecurityProtocol != "tls" {
		t.Errorf("Info().SecurityProtocol = %q, want tls", info.SecurityProtocol)
	}
	if _, ok := c.Clone().(netmux.HandshakenCreds); !ok {
		t.Errorf("Clone returned %T", c.Clone())
	}
	if err := c.OverrideServerName("other"); err != nil {
		t.Errorf("OverrideServerName: %v", err)
	}
}
