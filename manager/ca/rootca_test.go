package ca_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/identity"
	"github.com/shoal-project/shoal/manager/ca"
)

var testNow = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

func newCA(t *testing.T, now time.Time) *ca.RootCA {
	t.Helper()
	r, err := ca.NewRootCA(now)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestNewRootCA(t *testing.T) {
	r := newCA(t, testNow)
	c := r.Cert
	if c.Subject.CommonName != "shoal-root-ca" {
		t.Errorf("CN = %q", c.Subject.CommonName)
	}
	if !c.IsCA || !c.BasicConstraintsValid || c.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Error("root is not a signing CA")
	}
	if !c.NotBefore.Equal(testNow.Add(-time.Hour)) {
		t.Errorf("NotBefore = %v, want now-1h", c.NotBefore)
	}
	if want := testNow.AddDate(20, 0, 0); !c.NotAfter.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", c.NotAfter, want)
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %s is not a positive 128-bit number", c.SerialNumber)
	}
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T is not P-256 ECDSA", c.PublicKey)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("root is not self-signed: %v", err)
	}
	if r.Digest != identity.CADigest(c.Raw) {
		t.Error("Digest is not CADigest of the certificate")
	}
	if !r.CanSign() {
		t.Error("new root cannot sign")
	}
	if other := newCA(t, testNow); other.Cert.SerialNumber.Cmp(c.SerialNumber) == 0 || other.Digest == r.Digest {
		t.Error("two roots share a serial or digest")
	}

	again, err := ca.ParseRootCA(r.CertPEM, r.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if again.Digest != r.Digest || !again.CanSign() || !bytes.Equal(again.KeyPEM, r.KeyPEM) {
		t.Error("ParseRootCA did not reproduce the CA")
	}
}

func TestParseRootCAErrors(t *testing.T) {
	r := newCA(t, testNow)
	other := newCA(t, testNow)

	key, _, err := identity.NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := identity.CreateCSR(key)
	if err != nil {
		t.Fatal(err)
	}
	leafPEM, _, err := r.Issue(csr, identity.Identity{NodeID: "n", ClusterID: "c"}, time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name         string
		certPEM, key []byte
		want         string
	}{
		{name: "mismatched key", certPEM: r.CertPEM, key: other.KeyPEM, want: "root CA key does not match root CA certificate " + r.Digest},
		{name: "garbage cert", certPEM: []byte("nope"), want: "parse root CA certificate: no PEM block"},
		{name: "garbage key", certPEM: r.CertPEM, key: []byte("nope"), want: "parse root CA key: no PEM block"},
		{name: "two certs", certPEM: append(append([]byte(nil), r.CertPEM...), other.CertPEM...), want: "holds 2 certificates, want 1"},
		{name: "leaf as root", certPEM: leafPEM, want: "is not a CA certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ca.ParseRootCA(tt.certPEM, tt.key)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestParseRootCAWithoutKey(t *testing.T) {
	r := newCA(t, testNow)
	verifier, err := ca.ParseRootCA(r.CertPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	if verifier.CanSign() || verifier.KeyPEM != nil {
		t.Fatal("CA without key claims it can sign")
	}
	if verifier.Digest != r.Digest {
		t.Fatal("digest differs")
	}
	key, _, _ := identity.NewNodeKey()
	csr, _ := identity.CreateCSR(key)
	_, _, err = verifier.Issue(csr, identity.Identity{NodeID: "n", ClusterID: "c"}, time.Hour, testNow)
	if !errors.Is(err, ca.ErrNoCAKey) || !strings.Contains(err.Error(), "CA key is not available") {
		t.Fatalf("err = %v, want ErrNoCAKey", err)
	}

	// Certificates issued by the full CA verify against the key-less one.
	certPEM, _, err := r.Issue(csr, identity.Identity{NodeID: "n", ClusterID: "c"}, time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: verifier.Pool(), CurrentTime: testNow}); err != nil {
		t.Fatal(err)
	}
}

func TestParseRootCAAcceptsECKey(t *testing.T) {
	r := newCA(t, testNow)
	signer, err := identity.ParsePrivateKeyPEM(r.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(signer.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	sec1 := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	again, err := ca.ParseRootCA(r.CertPEM, sec1)
	if err != nil || !again.CanSign() {
		t.Fatalf("SEC 1 key refused: %v", err)
	}
}

// unusedSubject guards against the CA copying a requested subject.
var unusedSubject = pkix.Name{CommonName: "evil", Organization: []string{"other-cluster"}, OrganizationalUnit: []string{"shoal-manager"}}

func csrWithSubject(t *testing.T, subject pkix.Name) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: subject}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}
