package ca_test

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/identity"
	"github.com/shoal-project/shoal/manager/ca"
)

func TestIssue(t *testing.T) {
	r := newCA(t, testNow)
	csr, key := csrWithSubject(t, unusedSubject)
	id := identity.Identity{NodeID: "node-7", ClusterID: "cluster-x", Role: identity.RoleWorker}

	certPEM, cert, err := r.Issue(csr, id, ca.DefaultNodeCertExpiry, testNow)
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatal("certificate PEM is not a single CERTIFICATE block")
	}
	if !bytes.Equal(block.Bytes, cert.Raw) {
		t.Fatal("PEM and parsed certificate differ")
	}
	got, err := identity.IdentityFromCert(cert)
	if err != nil {
		t.Fatal(err)
	}
	if got != id {
		t.Fatalf("identity = %+v, want %+v", got, id)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		t.Error("certificate is not for the CSR's key")
	}
	if !cert.NotBefore.Equal(testNow.Add(-time.Hour)) {
		t.Errorf("NotBefore = %v, want now-1h", cert.NotBefore)
	}
	if want := testNow.Add(90 * 24 * time.Hour); !cert.NotAfter.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", cert.NotAfter, want)
	}
	if cert.IsCA {
		t.Error("node certificate is a CA")
	}
	if cert.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("KeyUsage = %v", cert.KeyUsage)
	}
	if len(cert.ExtKeyUsage) != 2 {
		t.Errorf("ExtKeyUsage = %v", cert.ExtKeyUsage)
	}
	if len(cert.DNSNames)+len(cert.IPAddresses) != 0 {
		t.Error("certificate carries subject alternative names")
	}
	if cert.SerialNumber.Sign() <= 0 || cert.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %s is not a positive 128-bit number", cert.SerialNumber)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: r.Pool(), CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("verify for %v: %v", usage, err)
		}
	}

	_, second, err := r.Issue(csr, id, ca.DefaultNodeCertExpiry, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if second.SerialNumber.Cmp(cert.SerialNumber) == 0 {
		t.Error("two certificates share a serial")
	}
}

func TestIssueManagerRoleAndMinimumValidity(t *testing.T) {
	r := newCA(t, testNow)
	csr, _ := csrWithSubject(t, unusedSubject)
	id := identity.Identity{NodeID: "m1", ClusterID: "c", Role: identity.RoleManager}
	_, cert, err := r.Issue(csr, id, ca.MinNodeCertExpiry, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.OrganizationalUnit[0] != "shoal-manager" {
		t.Errorf("OU = %v", cert.Subject.OrganizationalUnit)
	}
	if !cert.NotAfter.Equal(testNow.Add(time.Hour)) {
		t.Errorf("NotAfter = %v", cert.NotAfter)
	}
}

func TestIssueClampsToRootExpiry(t *testing.T) {
	r := newCA(t, testNow)
	csr, _ := csrWithSubject(t, unusedSubject)
	late := r.Cert.NotAfter.Add(-24 * time.Hour)
	_, cert, err := r.Issue(csr, identity.Identity{NodeID: "n", ClusterID: "c"}, ca.DefaultNodeCertExpiry, late)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.NotAfter.Equal(r.Cert.NotAfter) {
		t.Fatalf("NotAfter = %v, want the root's %v", cert.NotAfter, r.Cert.NotAfter)
	}
}

func TestIssueErrors(t *testing.T) {
	r := newCA(t, testNow)
	csr, _ := csrWithSubject(t, unusedSubject)
	id := identity.Identity{NodeID: "node-1", ClusterID: "c"}

	badSig := append([]byte(nil), csr...)
	badSig[len(badSig)-1] ^= 0xff

	tests := []struct {
		name     string
		csr      []byte
		id       identity.Identity
		validity time.Duration
		want     string
	}{
		{"validity too short", csr, id, 59 * time.Minute, "validity 59m0s is below the minimum of 1h0m0s"},
		{"zero validity", csr, id, 0, "validity 0s is below the minimum"},
		{"negative validity", csr, id, -time.Hour, "validity -1h0m0s is below the minimum"},
		{"bad CSR signature", badSig, id, time.Hour, `node "node-1": CSR signature`},
		{"garbage CSR", []byte("not a csr"), id, time.Hour, "parse CSR"},
		{"empty node ID", csr, identity.Identity{ClusterID: "c"}, time.Hour, "node ID is empty"},
		{"empty cluster ID", csr, identity.Identity{NodeID: "n"}, time.Hour, "cluster ID is empty"},
		{"unknown role", csr, identity.Identity{NodeID: "n", ClusterID: "c", Role: 4}, time.Hour, "unknown role Role(4)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := r.Issue(tt.csr, tt.id, tt.validity, testNow)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}
