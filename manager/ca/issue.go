package ca

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"time"

	"github.com/shoal-project/shoal/identity"
)

const (
	// DefaultNodeCertExpiry is the validity of node certificates unless the
	// cluster spec says otherwise.
	DefaultNodeCertExpiry = 90 * 24 * time.Hour
	// MinNodeCertExpiry is the shortest validity Issue accepts.
	MinNodeCertExpiry = time.Hour
)

// Issue signs a node certificate for the public key in csrDER. The
// subject comes from id alone (CN = node ID, OU = role, O = cluster ID);
// anything the request asks for is ignored. The certificate is valid from
// an hour before now until now+validity, clamped to the root's own expiry,
// and may be used for both client and server authentication.
func (r *RootCA) Issue(csrDER []byte, id identity.Identity, validity time.Duration, now time.Time) (certPEM []byte, cert *x509.Certificate, err error) {
	if r.signer == nil {
		return nil, nil, fmt.Errorf("issue certificate for node %q: %w", id.NodeID, ErrNoCAKey)
	}
	if validity < MinNodeCertExpiry {
		return nil, nil, fmt.Errorf("issue certificate for node %q: validity %s is below the minimum of %s",
			id.NodeID, validity, MinNodeCertExpiry)
	}
	if err := id.Validate(); err != nil {
		return nil, nil, fmt.Errorf("issue certificate: %w", err)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, nil, fmt.Errorf("issue certificate for node %q: parse CSR: %w", id.NodeID, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, nil, fmt.Errorf("issue certificate for node %q: CSR signature: %w", id.NodeID, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	notAfter := now.Add(validity)
	if notAfter.After(r.Cert.NotAfter) {
		notAfter = r.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:         id.NodeID,
			OrganizationalUnit: []string{id.Role.OU()},
			Organization:       []string{id.ClusterID},
		},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, r.Cert, csr.PublicKey, r.signer)
	if err != nil {
		return nil, nil, fmt.Errorf("issue certificate for node %q: %w", id.NodeID, err)
	}
	cert, err = x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse certificate issued for node %q: %w", id.NodeID, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), cert, nil
}
