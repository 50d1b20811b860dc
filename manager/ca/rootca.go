package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/shoal-project/shoal/identity"
)

const (
	// RootCommonName is the subject common name of every root CA.
	RootCommonName = "shoal-root-ca"
	// RootValidityYears is how long a new root CA is valid.
	RootValidityYears = 20
	// backdate is subtracted from "now" for NotBefore, so that peers whose
	// clocks run a little behind accept fresh certificates.
	backdate = time.Hour
)

// ErrNoCAKey is returned by Issue on a RootCA loaded without its key.
var ErrNoCAKey = errors.New("CA key is not available on this node")

// RootCA is the cluster root certificate authority.
type RootCA struct {
	// Cert is the parsed root certificate.
	Cert *x509.Certificate
	// CertPEM is the PEM encoding of Cert.
	CertPEM []byte
	// KeyPEM is the PKCS #8 PEM private key, nil when the key is not
	// available. It must never leave the managers.
	KeyPEM []byte
	// Digest is identity.CADigest of Cert, as pinned by join tokens.
	Digest string

	signer crypto.Signer
}

// NewRootCA creates a self-signed ECDSA P-256 root CA valid for 20 years
// from now, backdated by one hour, with a random 128-bit serial number.
func NewRootCA(now time.Time) (*RootCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate root CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: RootCommonName},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.AddDate(RootValidityYears, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// Node certificates are issued directly by the root.
		MaxPathLen:     0,
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create root CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse new root CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode root CA key: %w", err)
	}
	return &RootCA{
		Cert:    cert,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		Digest:  identity.CADigest(der),
		signer:  key,
	}, nil
}

// ParseRootCA loads a root CA from PEM. certPEM must hold exactly one CA
// certificate. keyPEM may be nil, giving a RootCA that can be used to
// verify but not to issue; when given, it must be the certificate's key.
func ParseRootCA(certPEM, keyPEM []byte) (*RootCA, error) {
	certs, err := identity.ParseCertificatesPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("parse root CA certificate: %w", err)
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("parse root CA certificate: PEM holds %d certificates, want 1", len(certs))
	}
	cert := certs[0]
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return nil, fmt.Errorf("root CA certificate %q (serial %s) is not a CA certificate", cert.Subject, cert.SerialNumber)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("root CA certificate %q (serial %s) may not sign certificates", cert.Subject, cert.SerialNumber)
	}
	r := &RootCA{
		Cert:    cert,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		Digest:  identity.CADigest(cert.Raw),
	}
	if keyPEM == nil {
		return r, nil
	}
	signer, err := identity.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("parse root CA key: %w", err)
	}
	pub, ok := signer.Public().(interface{ Equal(x crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("root CA key does not match root CA certificate %s", r.Digest)
	}
	r.KeyPEM = append([]byte(nil), keyPEM...)
	r.signer = signer
	return r, nil
}

// CanSign reports whether the CA key is available, so Issue can work.
func (r *RootCA) CanSign() bool {
	return r.signer != nil
}

// Pool returns a new certificate pool holding only the root certificate.
func (r *RootCA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(r.Cert)
	return p
}

// randomSerial returns a uniformly random, non-zero 128-bit serial number.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("generate certificate serial: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}
