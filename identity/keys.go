package identity

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// PEM block types used for node material.
const (
	pemCertificate  = "CERTIFICATE"
	pemPKCS8Key     = "PRIVATE KEY"
	pemECPrivateKey = "EC PRIVATE KEY"
)

// NewNodeKey generates a P-256 ECDSA key and returns it together with its
// PKCS #8 PEM encoding.
func NewNodeKey() (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate node key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode node key: %w", err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: pemPKCS8Key, Bytes: der}), nil
}

// CreateCSR returns a DER certificate signing request for key. The request
// carries no subject: the CA decides the node's identity and ignores
// whatever a request asks for.
func CreateCSR(key crypto.Signer) ([]byte, error) {
	if key == nil {
		return nil, errors.New("create CSR: key is nil")
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, fmt.Errorf("create CSR for %T key: %w", key, err)
	}
	return der, nil
}

// ParsePrivateKeyPEM decodes the first PEM block of keyPEM as a PKCS #8
// ("PRIVATE KEY") or SEC 1 ("EC PRIVATE KEY") private key.
func ParsePrivateKeyPEM(keyPEM []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case pemPKCS8Key:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case pemECPrivateKey:
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block type %q, want %q or %q", block.Type, pemPKCS8Key, pemECPrivateKey)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", block.Type, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", key)
	}
	return signer, nil
}

// ParseCertificatePEM decodes the first PEM block of certPEM, which must be
// a CERTIFICATE.
func ParseCertificatePEM(certPEM []byte) (*x509.Certificate, error) {
	certs, err := ParseCertificatesPEM(certPEM)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// ParseCertificatesPEM decodes every PEM block of data, all of which must
// be CERTIFICATE blocks; at least one is required. Text between blocks is
// ignored, as pem.Decode does.
func ParseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != pemCertificate {
			return nil, fmt.Errorf("PEM block %d has type %q, want %q", len(certs)+1, block.Type, pemCertificate)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM block found")
	}
	if len(bytes.TrimSpace(rest)) != 0 && bytes.Contains(rest, []byte("-----BEGIN")) {
		return nil, fmt.Errorf("malformed PEM block after certificate %d", len(certs))
	}
	return certs, nil
}
