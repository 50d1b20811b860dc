package identity_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-project/shoal/identity"
)

// testCA is a minimal root CA for tests. The identity package must not
// depend on the manager's CA, so tests sign certificates themselves.
type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

var serialCounter atomic.Int64

func nextSerial() *big.Int { return big.NewInt(serialCounter.Add(1)) }

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: "test-root"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, certPEM: pemCert(der)}
}

func (ca *testCA) digest() string { return identity.CADigest(ca.cert.Raw) }

// sign issues a certificate for pub with the given subject.
func (ca *testCA) sign(t *testing.T, subject pkix.Name, pub crypto.PublicKey) *x509.Certificate {
	t.Helper()
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               subject,
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func subjectFor(id identity.Identity) pkix.Name {
	return pkix.Name{
		CommonName:         id.NodeID,
		OrganizationalUnit: []string{id.Role.OU()},
		Organization:       []string{id.ClusterID},
	}
}

// material creates a node key, a CSR from it, and a certificate for the
// CSR's key naming id, the way a joining node would obtain them.
func (ca *testCA) material(t *testing.T, id identity.Identity) identity.Material {
	t.Helper()
	key, keyPEM, err := identity.NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	csrDER, err := identity.CreateCSR(key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Fatal(err)
	}
	cert := ca.sign(t, subjectFor(id), csr.PublicKey)
	return identity.Material{CertPEM: pemCert(cert.Raw), KeyPEM: keyPEM, RootPEM: ca.certPEM}
}

// renew returns new material for the same identity and a fresh key.
func (ca *testCA) renew(t *testing.T, m identity.Material) identity.Material {
	t.Helper()
	p, err := m.Parse()
	if err != nil {
		t.Fatal(err)
	}
	return ca.material(t, p.Identity)
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func mustCredentials(t *testing.T, m identity.Material) *identity.Credentials {
	t.Helper()
	c, err := identity.NewCredentials(m)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
