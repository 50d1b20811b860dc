package netmux

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	"google.golang.org/grpc/credentials"
)

// HandshakenCreds are gRPC server credentials for connections the Mux has
// already taken through TLS: the server side only exposes the TLS state to
// gRPC's peer information.
type HandshakenCreds struct{}

var _ credentials.TransportCredentials = HandshakenCreds{}

// ClientHandshake is not used: these credentials are server-side only.
func (HandshakenCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, fmt.Errorf("netmux: handshaken credentials are for servers only")
}

// ServerHandshake returns the TLS connection as is, with its state.
func (HandshakenCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil, nil, fmt.Errorf("netmux: connection from %s is not TLS", c.RemoteAddr())
	}
	info := credentials.TLSInfo{
		State:          tc.ConnectionState(),
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
	}
	return tc, info, nil
}

// Info describes the protocol.
func (HandshakenCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls", SecurityVersion: "1.3"}
}

// Clone returns the credentials.
func (c HandshakenCreds) Clone() credentials.TransportCredentials { return c }

// OverrideServerName is a no-op.
func (HandshakenCreds) OverrideServerName(string) error { return nil }
