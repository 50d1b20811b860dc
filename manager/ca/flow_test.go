package ca_test

import (
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-project/shoal/identity"
	"github.com/shoal-project/shoal/manager/ca"
)

// nodeMaterial runs the node side of joining: a fresh key and CSR, a
// certificate issued by r for id, packaged as identity.Material.
func nodeMaterial(t *testing.T, r *ca.RootCA, id identity.Identity, now time.Time) identity.Material {
	t.Helper()
	key, keyPEM, err := identity.NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := identity.CreateCSR(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := r.Issue(csr, id, ca.DefaultNodeCertExpiry, now)
	if err != nil {
		t.Fatal(err)
	}
	return identity.Material{CertPEM: certPEM, KeyPEM: keyPEM, RootPEM: r.CertPEM}
}

// pipeHandshake runs a TLS handshake over net.Pipe; on success the server
// sends one byte that the client reads, so late refusals reach the client.
func pipeHandshake(t *testing.T, serverCfg, clientCfg *tls.Config) (server tls.ConnectionState, serverErr, clientErr error) {
	t.Helper()
	sc, cc := net.Pipe()
	deadline := time.Now().Add(30 * time.Second) // guards against a hang only
	_ = sc.SetDeadline(deadline)
	_ = cc.SetDeadline(deadline)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer sc.Close()
		srv := tls.Server(sc, serverCfg)
		if serverErr = srv.Handshake(); serverErr != nil {
			return
		}
		server = srv.ConnectionState()
		_, serverErr = srv.Write([]byte{1})
	}()
	func() {
		defer cc.Close()
		cli := tls.Client(cc, clientCfg)
		if clientErr = cli.Handshake(); clientErr != nil {
			return
		}
		var b [1]byte
		_, clientErr = io.ReadFull(cli, b[:])
	}()
	wg.Wait()
	return server, serverErr, clientErr
}

// TestJoinFlow walks a cluster's life: bootstrap a root and the first
// manager, join a worker with a token over a pinned connection, then talk
// with mutual TLS.
func TestJoinFlow(t *testing.T) {
	now := time.Now()
	root, err := ca.NewRootCA(now)
	if err != nil {
		t.Fatal(err)
	}
	const clusterID = "cluster-1"
	mgrID := identity.Identity{NodeID: "mgr-1", ClusterID: clusterID, Role: identity.RoleManager}
	mgr, err := identity.NewCredentials(nodeMaterial(t, root, mgrID, now))
	if err != nil {
		t.Fatal(err)
	}
	workerToken, managerToken, err := root.NewJoinTokens()
	if err != nil {
		t.Fatal(err)
	}

	// The joining worker knows only the token.
	tok, err := identity.ParseJoinToken(workerToken)
	if err != nil {
		t.Fatal(err)
	}
	_, serverErr, clientErr := pipeHandshake(t, mgr.ServerConfig(nil), identity.PinnedClientConfig(tok.Digest, ""))
	if serverErr != nil || clientErr != nil {
		t.Fatalf("pinned handshake: server %v, client %v", serverErr, clientErr)
	}
	role, err := ca.ValidateToken(workerToken, workerToken, managerToken, root.Digest)
	if err != nil || role != identity.RoleWorker {
		t.Fatalf("ValidateToken: %v, %v", role, err)
	}
	wID := identity.Identity{NodeID: "wrk-1", ClusterID: clusterID, Role: role}
	wrk, err := identity.NewCredentials(nodeMaterial(t, root, wID, now))
	if err != nil {
		t.Fatal(err)
	}

	state, serverErr, clientErr := pipeHandshake(t, mgr.ServerConfig(nil), wrk.ClientConfig(""))
	if serverErr != nil || clientErr != nil {
		t.Fatalf("mutual handshake: server %v, client %v", serverErr, clientErr)
	}
	if got, ok := identity.PeerIdentity(state); !ok || got != wID {
		t.Fatalf("manager sees %+v (%v), want %+v", got, ok, wID)
	}

	// A token pinned to another cluster's CA refuses this manager.
	other, err := ca.NewRootCA(now)
	if err != nil {
		t.Fatal(err)
	}
	_, _, clientErr = pipeHandshake(t, mgr.ServerConfig(nil), identity.PinnedClientConfig(other.Digest, ""))
	if clientErr == nil || !strings.Contains(clientErr.Error(), "does not match the join token's digest") {
		t.Fatalf("pinned to other CA: client err = %v", clientErr)
	}
}
