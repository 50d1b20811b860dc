package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// ServerConfig returns a TLS 1.3 server configuration that serves the
// current node certificate (looked up per handshake, so renewals apply to
// new connections without a restart). Client certificates are optional, but
// one that is presented must chain to the cluster root, allow client
// authentication and name this cluster as its organization. Use
// PeerIdentity on the resulting connection state to learn who the client
// is; a connection without a client certificate is anonymous and must only
// reach endpoints that allow it (such as joining).
func (c *Credentials) ServerConfig(nextProtos []string) *tls.Config {
	// The root and cluster ID never change for a Credentials value (Update
	// enforces it), so they are captured once.
	p := c.Current()
	clusterID := p.Identity.ClusterID
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: append([]string(nil), nextProtos...),
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return &c.Current().TLSCert, nil
		},
		ClientAuth: tls.VerifyClientCertIfGiven,
		ClientCAs:  p.Roots,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil
			}
			return checkCluster("client", cs.PeerCertificates[0], clusterID)
		},
	}
}

// ClientConfig returns a TLS 1.3 client configuration that presents the
// current node certificate and accepts a server only if its chain verifies
// against the cluster root for server authentication and its certificate
// names this cluster. Host names are not checked: servers are dialled by IP
// address and node certificates carry no subject alternative names, so the
// standard verification is switched off and replaced by VerifyConnection.
func (c *Credentials) ClientConfig(nextProto string) *tls.Config {
	p := c.Current()
	clusterID, roots := p.Identity.ClusterID, p.Roots
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: protos(nextProto),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &c.Current().TLSCert, nil
		},
		// Verification happens in VerifyConnection; see above.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			leaf, err := verifyServerChain(cs.PeerCertificates, roots)
			if err != nil {
				return err
			}
			return checkCluster("server", leaf, clusterID)
		},
	}
}

// PinnedClientConfig returns a TLS 1.3 client configuration for joining a
// cluster before the node has any certificate. It presents no client
// certificate and accepts the server only if its chain contains a CA
// certificate whose CADigest equals caDigest (taken from the join token)
// and the server certificate verifies against that CA for server
// authentication.
func PinnedClientConfig(caDigest, nextProto string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: protos(nextProto),
		// Verification happens in VerifyConnection against the pinned CA.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			var pinned *x509.Certificate
			for _, cert := range cs.PeerCertificates {
				if cert.IsCA && cert.BasicConstraintsValid && CADigest(cert.Raw) == caDigest {
					pinned = cert
					break
				}
			}
			if pinned == nil {
				return fmt.Errorf("remote CA does not match the join token's digest %s", caDigest)
			}
			roots := x509.NewCertPool()
			roots.AddCert(pinned)
			_, err := verifyServerChain(cs.PeerCertificates, roots)
			return err
		},
	}
}

// PeerIdentity returns the identity of the client on a connection accepted
// with ServerConfig, if the client presented a certificate that the
// handshake verified. It reports false for anonymous clients and on the
// client side of a connection (where verification is done by
// VerifyConnection and the state records no verified chains).
func PeerIdentity(state tls.ConnectionState) (Identity, bool) {
	if len(state.VerifiedChains) == 0 || len(state.PeerCertificates) == 0 {
		return Identity{}, false
	}
	id, err := IdentityFromCert(state.PeerCertificates[0])
	if err != nil {
		return Identity{}, false
	}
	return id, true
}

// verifyServerChain verifies the first certificate of chain against roots
// for server authentication, using the rest as intermediates, and returns
// it.
func verifyServerChain(chain []*x509.Certificate, roots *x509.CertPool) (*x509.Certificate, error) {
	if len(chain) == 0 {
		return nil, errors.New("server presented no certificate")
	}
	leaf := chain[0]
	inter := x509.NewCertPool()
	for _, cert := range chain[1:] {
		inter.AddCert(cert)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return nil, fmt.Errorf("verify server certificate %q (serial %s): %w", leaf.Subject, leaf.SerialNumber, err)
	}
	return leaf, nil
}

// checkCluster requires cert to carry a valid identity for clusterID.
func checkCluster(side string, cert *x509.Certificate, clusterID string) error {
	id, err := IdentityFromCert(cert)
	if err != nil {
		return fmt.Errorf("%s certificate: %w", side, err)
	}
	if id.ClusterID != clusterID {
		return fmt.Errorf("%s certificate for node %q belongs to cluster %q, want %q",
			side, id.NodeID, id.ClusterID, clusterID)
	}
	return nil
}

func protos(p string) []string {
	if p == "" {
		return nil
	}
	return []string{p}
}
