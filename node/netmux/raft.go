package netmux

import (
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// StreamLayer carries Raft over the Mux: it accepts the Mux's Raft
// connections and dials peers with client TLS negotiating ProtoRaft.
type StreamLayer struct {
	mux       *Mux
	advertise net.Addr
	client    func() *tls.Config
	// authPeer checks the dialled peer (e.g. that it is a manager).
	authPeer RaftAuthorizer
}

// NewStreamLayer returns a Raft stream layer. advertise is the address the
// other managers reach this one at; client makes the TLS client config
// (it must offer ProtoRaft).
func NewStreamLayer(m *Mux, advertise string, client func() *tls.Config, authPeer RaftAuthorizer) (*StreamLayer, error) {
	a, err := net.ResolveTCPAddr("tcp", advertise)
	if err != nil {
		return nil, fmt.Errorf("raft advertise address %q: %w", advertise, err)
	}
	return &StreamLayer{mux: m, advertise: a, client: client, authPeer: authPeer}, nil
}

var _ raft.StreamLayer = (*StreamLayer)(nil)

// Accept returns the next inbound Raft connection.
func (s *StreamLayer) Accept() (net.Conn, error) { return s.mux.Raft().Accept() }

// Close stops accepting Raft connections; the Mux itself stays open.
func (s *StreamLayer) Close() error { return s.mux.Raft().Close() }

// Addr is the advertised address.
func (s *StreamLayer) Addr() net.Addr { return s.advertise }

// Dial opens a Raft connection to a peer manager.
func (s *StreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	c, err := tls.DialWithDialer(d, "tcp", string(address), s.client())
	if err != nil {
		return nil, fmt.Errorf("dial raft peer %s: %w", address, err)
	}
	if c.ConnectionState().NegotiatedProtocol != ProtoRaft {
		c.Close()
		return nil, fmt.Errorf("raft peer %s did not accept the raft protocol", address)
	}
	if s.authPeer != nil {
		if err := s.authPeer(c.ConnectionState()); err != nil {
			c.Close()
			return nil, fmt.Errorf("raft peer %s: %w", address, err)
		}
	}
	return c, nil
}
