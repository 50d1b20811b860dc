package identity

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// Material is a node's trust material in PEM form, as stored on disk and
// as handed out by the managers.
type Material struct {
	// CertPEM is the node certificate. It may be followed by a copy of the
	// root certificate; no other certificates are accepted.
	CertPEM []byte
	// KeyPEM is the node private key (PKCS #8 or SEC 1).
	KeyPEM []byte
	// RootPEM is the cluster root CA certificate.
	RootPEM []byte
}

// Parsed is Material decoded and checked. Values are shared between
// goroutines once published by Credentials and must not be modified.
type Parsed struct {
	// Material is the PEM input this value was parsed from.
	Material Material
	// TLSCert holds the node certificate followed by the root certificate,
	// so that a peer pinning the root by digest finds it in the chain.
	TLSCert tls.Certificate
	// Leaf is the node certificate.
	Leaf *x509.Certificate
	// Root is the cluster root CA certificate.
	Root *x509.Certificate
	// Roots is a pool holding only Root.
	Roots *x509.CertPool
	// Identity is read from Leaf.
	Identity Identity
}

// Parse decodes m and checks that it is usable: the key matches the node
// certificate, the node certificate is signed by the root, the root is a CA
// and the node certificate carries a valid identity. Validity dates are not
// checked, so an expired certificate still parses.
func (m Material) Parse() (*Parsed, error) {
	root, err := ParseCertificatePEM(m.RootPEM)
	if err != nil {
		return nil, fmt.Errorf("root CA certificate: %w", err)
	}
	if !root.IsCA || !root.BasicConstraintsValid {
		return nil, fmt.Errorf("root CA certificate %q (serial %s) is not a CA", root.Subject, root.SerialNumber)
	}
	chain, err := ParseCertificatesPEM(m.CertPEM)
	if err != nil {
		return nil, fmt.Errorf("node certificate: %w", err)
	}
	leaf := chain[0]
	switch {
	case len(chain) == 1:
	case len(chain) == 2 && bytes.Equal(chain[1].Raw, root.Raw):
	default:
		return nil, fmt.Errorf("node certificate %q: PEM holds %d certificates, want the node certificate optionally followed by the root",
			leaf.Subject, len(chain))
	}
	if len(m.KeyPEM) == 0 {
		return nil, errors.New("node key: empty")
	}
	key, err := ParsePrivateKeyPEM(m.KeyPEM)
	if err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	pub, ok := key.Public().(interface{ Equal(x crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return nil, fmt.Errorf("node key does not match node certificate %q (serial %s)", leaf.Subject, leaf.SerialNumber)
	}
	if err := leaf.CheckSignatureFrom(root); err != nil {
		return nil, fmt.Errorf("node certificate %q (serial %s) is not signed by root CA %q: %w",
			leaf.Subject, leaf.SerialNumber, root.Subject, err)
	}
	id, err := IdentityFromCert(leaf)
	if err != nil {
		return nil, fmt.Errorf("node certificate: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	return &Parsed{
		Material: Material{
			CertPEM: bytes.Clone(m.CertPEM),
			KeyPEM:  bytes.Clone(m.KeyPEM),
			RootPEM: bytes.Clone(m.RootPEM),
		},
		TLSCert: tls.Certificate{
			Certificate: [][]byte{leaf.Raw, root.Raw},
			PrivateKey:  key,
			Leaf:        leaf,
		},
		Leaf:     leaf,
		Root:     root,
		Roots:    roots,
		Identity: id,
	}, nil
}
