package node

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/shoal-project/shoal/identity"
	"github.com/shoal-project/shoal/node/netmux"
)

// connPool caches one mutual-TLS gRPC connection per manager address.
type connPool struct {
	creds *identity.Credentials
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func newConnPool(creds *identity.Credentials) *connPool {
	return &connPool{creds: creds, conns: map[string]*grpc.ClientConn{}}
}

// Dial returns the cached connection to addr, making it if needed.
func (p *connPool) Dial(_ context.Context, addr string) (grpc.ClientConnInterface, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(credentials.NewTLS(p.creds.ClientConfig(netmux.ProtoGRPC))),
		grpc.WithKeepaliveParams(clientKeepalive),
		// Listing calls relayed for the CLI can exceed gRPC's 4 MiB default
		// on big clusters (20,000 tasks take about 4 MiB); until they are
		// paged, allow larger answers.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxAnswerBytes)))
	if err != nil {
		return nil, err
	}
	p.conns[addr] = c
	return c, nil
}

// maxAnswerBytes bounds one answer from a manager.
const maxAnswerBytes = 64 << 20

// Keepalives find connections to a vanished manager within seconds instead
// of leaving calls to hang on them; the server allows pings this often.
var (
	clientKeepalive = keepalive.ClientParameters{Time: 2 * time.Second, Timeout: 2 * time.Second, PermitWithoutStream: true}
	serverKeepalive = keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}
)

// Reset closes every connection, so the next calls present the current
// certificate (after a renewal or a role change).
func (p *connPool) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, c := range p.conns {
		c.Close()
		delete(p.conns, addr)
	}
}
