// Package netmux serves the cluster port: one TLS listener whose
// connections are routed by their negotiated ALPN protocol, "h2" to the gRPC
// server and "shoal-raft" to the Raft transport. It also provides the gRPC
// transport credentials for connections it has already handshaken, and the
// Raft stream layer that dials peers over mutual TLS.
//
// netmux knows nothing of cluster state; it must not import manager/,
// worker/ or raftstore/.
package netmux

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// ALPN protocol names carried on the cluster port.
const (
	ProtoGRPC = "h2"
	ProtoRaft = "shoal-raft"
)

const handshakeTimeout = 10 * time.Second

// RaftAuthorizer decides whether a handshaken connection may speak Raft.
type RaftAuthorizer func(tls.ConnectionState) error

// Mux accepts TLS connections and hands them to the listener matching
// their ALPN protocol.
type Mux struct {
	ln        net.Listener
	conf      *tls.Config
	authRaft  RaftAuthorizer
	log       *slog.Logger
	grpc      *chanListener
	raft      *chanListener
	closeOnce sync.Once
	done      chan struct{}
}

// Listen opens addr. conf must list ProtoGRPC and ProtoRaft in NextProtos.
func Listen(addr string, conf *tls.Config, authRaft RaftAuthorizer, log *slog.Logger) (*Mux, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	m := &Mux{ln: ln, conf: conf, authRaft: authRaft, log: log, done: make(chan struct{})}
	m.grpc = newChanListener(ln.Addr(), m.done)
	m.raft = newChanListener(ln.Addr(), m.done)
	go m.serve()
	return m, nil
}

// Addr is the bound address.
func (m *Mux) Addr() net.Addr { return m.ln.Addr() }

// GRPC returns the listener of gRPC connections (TLS already handshaken).
func (m *Mux) GRPC() net.Listener { return m.grpc }

// Raft returns the listener of Raft connections from authorised managers.
func (m *Mux) Raft() net.Listener { return m.raft }

// Close stops accepting and closes both listeners.
func (m *Mux) Close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.done)
		err = m.ln.Close()
	})
	return err
}

func (m *Mux) serve() {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			m.log.Warn("cluster listener stopped", "err", err)
			m.Close()
			return
		}
		go m.route(c)
	}
}

func (m *Mux) route(c net.Conn) {
	tc := tls.Server(c, m.conf)
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		m.log.Debug("TLS handshake failed", "remote", c.RemoteAddr(), "err", err)
		c.Close()
		return
	}
	st := tc.ConnectionState()
	var target *chanListener
	switch st.NegotiatedProtocol {
	case ProtoRaft:
		if m.authRaft != nil {
			if err := m.authRaft(st); err != nil {
				m.log.Warn("refused Raft connection", "remote", c.RemoteAddr(), "err", err)
				tc.Close()
				return
			}
		}
		target = m.raft
	case ProtoGRPC, "":
		target = m.grpc
	default:
		tc.Close()
		return
	}
	select {
	case target.ch <- tc:
	case <-m.done:
		tc.Close()
	case <-target.closed:
		tc.Close()
	}
}

// chanListener hands out the connections routed to one protocol. Closing
// it ends its Accept (so a server's Serve returns) without closing the Mux.
type chanListener struct {
	addr      net.Addr
	ch        chan net.Conn
	done      <-chan struct{} // the Mux closed
	closed    chan struct{}   // this listener closed
	closeOnce sync.Once
}

func newChanListener(addr net.Addr, done <-chan struct{}) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: done, closed: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
