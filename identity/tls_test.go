package identity_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-project/shoal/identity"
)

const testALPN = "shoal-test"

var managerID = identity.Identity{NodeID: "manager-1", ClusterID: "cluster-a", Role: identity.RoleManager}

type handshakeResult struct {
	server, client       tls.ConnectionState
	serverErr, clientErr error
}

// handshake runs a TLS handshake over an in-memory pipe. After a successful
// handshake the server writes one byte and the client reads it, so a
// client certificate the server refuses (reported after the client's side
// of a TLS 1.3 handshake has finished) surfaces as a client error too.
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) handshakeResult {
	t.Helper()
	sc, cc := net.Pipe()
	deadline := time.Now().Add(30 * time.Second) // guards against a hang only
	_ = sc.SetDeadline(deadline)
	_ = cc.SetDeadline(deadline)
	ctx := context.Background()

	var res handshakeResult
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer sc.Close()
		srv := tls.Server(sc, serverCfg)
		if res.serverErr = srv.HandshakeContext(ctx); res.serverErr != nil {
			return
		}
		res.server = srv.ConnectionState()
		_, res.serverErr = srv.Write([]byte{'x'})
	}()
	func() {
		defer cc.Close()
		cli := tls.Client(cc, clientCfg)
		if res.clientErr = cli.HandshakeContext(ctx); res.clientErr != nil {
			return
		}
		res.client = cli.ConnectionState()
		var b [1]byte
		_, res.clientErr = io.ReadFull(cli, b[:])
	}()
	wg.Wait()
	return res
}

func wantOK(t *testing.T, r handshakeResult) {
	t.Helper()
	if r.serverErr != nil || r.clientErr != nil {
		t.Fatalf("handshake failed: server: %v; client: %v", r.serverErr, r.clientErr)
	}
}

func TestMutualTLS(t *testing.T) {
	ca := newTestCA(t)
	server := mustCredentials(t, ca.material(t, managerID))
	client := mustCredentials(t, ca.material(t, workerID))

	r := handshake(t, server.ServerConfig([]string{testALPN}), client.ClientConfig(testALPN))
	wantOK(t, r)
	if r.client.Version != tls.VersionTLS13 {
		t.Errorf("negotiated version %x, want TLS 1.3", r.client.Version)
	}
	if r.client.NegotiatedProtocol != testALPN {
		t.Errorf("ALPN = %q, want %q", r.client.NegotiatedProtocol, testALPN)
	}
	id, ok := identity.PeerIdentity(r.server)
	if !ok {
		t.Fatal("server sees no client identity")
	}
	if id != workerID {
		t.Fatalf("client identity = %+v, want %+v", id, workerID)
	}
	// The server presents [leaf, root].
	if n := len(r.client.PeerCertificates); n != 2 {
		t.Fatalf("server presented %d certificates, want 2", n)
	}
	// On the client side the state records no verified chain.
	if _, ok := identity.PeerIdentity(r.client); ok {
		t.Error("PeerIdentity reported an identity on the client side")
	}
}

func TestServerAcceptsAnonymousClient(t *testing.T) {
	ca := newTestCA(t)
	server := mustCredentials(t, ca.material(t, managerID))
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}
	r := handshake(t, server.ServerConfig(nil), cfg)
	wantOK(t, r)
	if _, ok := identity.PeerIdentity(r.server); ok {
		t.Fatal("anonymous client has an identity")
	}
}

func TestServerRefusesClientFromOtherCA(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	server := mustCredentials(t, ca.material(t, managerID))
	p, err := other.material(t, workerID).Parse()
	if err != nil {
		t.Fatal(err)
	}
	// The intruder trusts any server, so only the server's check matters.
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, Certificates: []tls.Certificate{p.TLSCert}}

	r := handshake(t, server.ServerConfig(nil), cfg)
	if r.serverErr == nil {
		t.Fatal("server accepted a client certificate from another CA")
	}
	if !strings.Contains(r.serverErr.Error(), "certificate signed by unknown authority") {
		t.Errorf("server error = %v", r.serverErr)
	}
	if r.clientErr == nil {
		t.Error("client did not notice the refusal")
	}
}

func TestServerRefusesClientFromOtherCluster(t *testing.T) {
	ca := newTestCA(t)
	server := mustCredentials(t, ca.material(t, managerID))
	otherCluster := workerID
	otherCluster.ClusterID = "cluster-b"
	client := ca.material(t, otherCluster)
	// The client config checks the server's cluster, so present the
	// foreign certificate with a plain configuration.
	p, err := client.Parse()
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, Certificates: []tls.Certificate{p.TLSCert}}

	r := handshake(t, server.ServerConfig(nil), cfg)
	if r.serverErr == nil || !strings.Contains(r.serverErr.Error(), `belongs to cluster "cluster-b", want "cluster-a"`) {
		t.Fatalf("server error = %v, want a cluster mismatch", r.serverErr)
	}
}

func TestClientRefusesServer(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	client := mustCredentials(t, ca.material(t, workerID))

	t.Run("other CA", func(t *testing.T) {
		server := mustCredentials(t, other.material(t, managerID))
		r := handshake(t, server.ServerConfig(nil), client.ClientConfig(""))
		if r.clientErr == nil || !strings.Contains(r.clientErr.Error(), "unknown authority") {
			t.Fatalf("client error = %v, want unknown authority", r.clientErr)
		}
	})
	t.Run("other cluster", func(t *testing.T) {
		id := managerID
		id.ClusterID = "cluster-b"
		server := mustCredentials(t, ca.material(t, id))
		r := handshake(t, server.ServerConfig(nil), client.ClientConfig(""))
		if r.clientErr == nil || !strings.Contains(r.clientErr.Error(), `belongs to cluster "cluster-b", want "cluster-a"`) {
			t.Fatalf("client error = %v, want cluster mismatch", r.clientErr)
		}
	})
}

func TestPinnedClientConfig(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	server := mustCredentials(t, ca.material(t, managerID))

	t.Run("right CA", func(t *testing.T) {
		r := handshake(t, server.ServerConfig([]string{testALPN}), identity.PinnedClientConfig(ca.digest(), testALPN))
		wantOK(t, r)
		if _, ok := identity.PeerIdentity(r.server); ok {
			t.Error("joining client presented an identity")
		}
		if len(r.client.PeerCertificates) == 0 || r.client.PeerCertificates[0].Subject.CommonName != managerID.NodeID {
			t.Error("client did not see the manager certificate")
		}
	})
	t.Run("other CA", func(t *testing.T) {
		r := handshake(t, server.ServerConfig(nil), identity.PinnedClientConfig(other.digest(), ""))
		if r.clientErr == nil || !strings.Contains(r.clientErr.Error(), "remote CA does not match the join token's digest") {
			t.Fatalf("client error = %v, want digest mismatch", r.clientErr)
		}
	})
	t.Run("leaf not signed by pinned CA", func(t *testing.T) {
		// The server presents the pinned root but a leaf from another CA.
		p, err := other.material(t, managerID).Parse()
		if err != nil {
			t.Fatal(err)
		}
		cert := p.TLSCert
		cert.Certificate = [][]byte{p.Leaf.Raw, ca.cert.Raw}
		cfg := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}}
		r := handshake(t, cfg, identity.PinnedClientConfig(ca.digest(), ""))
		if r.clientErr == nil || !strings.Contains(r.clientErr.Error(), "verify server certificate") {
			t.Fatalf("client error = %v, want verification failure", r.clientErr)
		}
	})
}

func TestCredentialsUpdate(t *testing.T) {
	ca := newTestCA(t)
	serverMat := ca.material(t, managerID)
	clientMat := ca.material(t, workerID)
	server := mustCredentials(t, serverMat)
	client := mustCredentials(t, clientMat)
	// Configurations are built once, as a long-running listener would.
	serverCfg := server.ServerConfig(nil)
	clientCfg := client.ClientConfig("")

	first := handshake(t, serverCfg, clientCfg)
	wantOK(t, first)
	oldServerSerial := first.client.PeerCertificates[0].SerialNumber

	renewedServer := ca.renew(t, serverMat)
	if err := server.Update(renewedServer); err != nil {
		t.Fatal(err)
	}
	promoted := workerID
	promoted.Role = identity.RoleManager
	renewedClient := ca.material(t, promoted)
	if err := client.Update(renewedClient); err != nil {
		t.Fatal(err)
	}

	second := handshake(t, serverCfg, clientCfg)
	wantOK(t, second)
	gotServer := second.client.PeerCertificates[0].SerialNumber
	if gotServer.Cmp(oldServerSerial) == 0 {
		t.Fatal("server still presents the old certificate")
	}
	if want := server.Current().Leaf.SerialNumber; gotServer.Cmp(want) != 0 {
		t.Fatalf("server presented serial %s, want %s", gotServer, want)
	}
	gotClient := second.server.PeerCertificates[0].SerialNumber
	if want := client.Current().Leaf.SerialNumber; gotClient.Cmp(want) != 0 {
		t.Fatalf("client presented serial %s, want %s", gotClient, want)
	}
	if id, _ := identity.PeerIdentity(second.server); id.Role != identity.RoleManager {
		t.Fatalf("client role after update = %s, want manager", id.Role)
	}
}

func TestCredentialsUpdateRefusals(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	creds := mustCredentials(t, ca.material(t, workerID))
	before := creds.Current()

	otherNode := workerID
	otherNode.NodeID = "worker-2"
	otherCluster := workerID
	otherCluster.ClusterID = "cluster-b"
	bad := ca.material(t, workerID)
	bad.KeyPEM = ca.material(t, workerID).KeyPEM

	tests := []struct {
		name string
		m    identity.Material
		want string
	}{
		{"other root", other.material(t, workerID), "root CA"},
		{"other node", ca.material(t, otherNode), `node ID "worker-2" differs from current node ID "worker-1"`},
		{"other cluster", ca.material(t, otherCluster), `cluster ID "cluster-b" differs`},
		{"unparsable", bad, "node key does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := creds.Update(tt.m)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
			if creds.Current() != before {
				t.Fatal("refused update changed the current material")
			}
		})
	}
	if _, err := identity.NewCredentials(bad); err == nil {
		t.Error("NewCredentials accepted unusable material")
	}
}

func TestCredentialsConcurrentUpdate(t *testing.T) {
	ca := newTestCA(t)
	m := ca.material(t, managerID)
	creds := mustCredentials(t, m)
	renewals := make([]identity.Material, 8)
	for i := range renewals {
		renewals[i] = ca.renew(t, m)
	}
	cfg := creds.ServerConfig(nil)
	var wg sync.WaitGroup
	for _, r := range renewals {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := creds.Update(r); err != nil {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			cert, err := cfg.GetCertificate(&tls.ClientHelloInfo{})
			if err != nil || cert.Leaf == nil {
				t.Errorf("GetCertificate: %v", err)
			}
		}()
	}
	wg.Wait()
}
