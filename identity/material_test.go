package identity_test

import (
	"bytes"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/shoal-project/shoal/identity"
)

var workerID = identity.Identity{NodeID: "worker-1", ClusterID: "cluster-a", Role: identity.RoleWorker}

func TestMaterialParse(t *testing.T) {
	ca := newTestCA(t)
	m := ca.material(t, workerID)
	p, err := m.Parse()
	if err != nil {
		t.Fatal(err)
	}
	if p.Identity != workerID {
		t.Errorf("identity = %+v, want %+v", p.Identity, workerID)
	}
	if !bytes.Equal(p.Root.Raw, ca.cert.Raw) {
		t.Error("root is not the CA certificate")
	}
	if len(p.TLSCert.Certificate) != 2 ||
		!bytes.Equal(p.TLSCert.Certificate[0], p.Leaf.Raw) ||
		!bytes.Equal(p.TLSCert.Certificate[1], ca.cert.Raw) {
		t.Error("TLS chain is not [leaf, root]")
	}
	if p.TLSCert.Leaf != p.Leaf || p.TLSCert.PrivateKey == nil {
		t.Error("TLS certificate lacks leaf or key")
	}
	if _, err := p.Leaf.Verify(x509.VerifyOptions{Roots: p.Roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("leaf does not verify against Roots: %v", err)
	}

	// A PEM chain that already carries the root is accepted as well.
	withRoot := m
	withRoot.CertPEM = append(append([]byte(nil), m.CertPEM...), ca.certPEM...)
	if _, err := withRoot.Parse(); err != nil {
		t.Errorf("leaf+root PEM refused: %v", err)
	}

	// Parsed keeps its own copy of the input.
	m.CertPEM[0] = 'X'
	if p.Material.CertPEM[0] == 'X' {
		t.Error("Parsed.Material aliases the caller's slices")
	}
}

func TestMaterialParseErrors(t *testing.T) {
	ca := newTestCA(t)
	other := newTestCA(t)
	good := ca.material(t, workerID)
	foreign := other.material(t, workerID)
	second := ca.material(t, workerID)
	leafAsRoot := good
	leafAsRoot.RootPEM = good.CertPEM

	tests := []struct {
		name string
		m    identity.Material
		want string
	}{
		{"key of another cert", identity.Material{CertPEM: good.CertPEM, KeyPEM: second.KeyPEM, RootPEM: good.RootPEM}, "node key does not match"},
		{"cert of another CA", identity.Material{CertPEM: foreign.CertPEM, KeyPEM: foreign.KeyPEM, RootPEM: good.RootPEM}, "is not signed by root CA"},
		{"root not a CA", leafAsRoot, "is not a CA"},
		{"empty root", identity.Material{CertPEM: good.CertPEM, KeyPEM: good.KeyPEM}, "root CA certificate: no PEM block"},
		{"empty cert", identity.Material{KeyPEM: good.KeyPEM, RootPEM: good.RootPEM}, "node certificate: no PEM block"},
		{"empty key", identity.Material{CertPEM: good.CertPEM, RootPEM: good.RootPEM}, "node key: empty"},
		{"key where cert belongs", identity.Material{CertPEM: good.KeyPEM, KeyPEM: good.KeyPEM, RootPEM: good.RootPEM}, `type "PRIVATE KEY", want "CERTIFICATE"`},
		{"cert where key belongs", identity.Material{CertPEM: good.CertPEM, KeyPEM: good.CertPEM, RootPEM: good.RootPEM}, `PEM block type "CERTIFICATE"`},
		{"two leaves", identity.Material{CertPEM: append(append([]byte(nil), good.CertPEM...), second.CertPEM...), KeyPEM: good.KeyPEM, RootPEM: good.RootPEM}, "holds 2 certificates"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.m.Parse()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestCreateCSR(t *testing.T) {
	key, keyPEM, err := identity.NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	parsedKey, err := identity.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !key.Equal(parsedKey) {
		t.Fatal("PEM does not encode the returned key")
	}
	der, err := identity.CreateCSR(key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Fatal(err)
	}
	if !key.PublicKey.Equal(csr.PublicKey) {
		t.Fatal("CSR carries another public key")
	}
	if _, err := identity.CreateCSR(nil); err == nil {
		t.Fatal("nil key: want error")
	}
}
