package worker_test

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/worker"
)

// dispatcher is a Dispatcher gRPC service that records each heartbeat.
type dispatcher struct {
	shoalpb.UnimplementedDispatcherServer
	addr  string
	resp  func() *shoalpb.HeartbeatResponse
	calls chan<- call
}

func (d *dispatcher) Heartbeat(_ context.Context, req *shoalpb.HeartbeatRequest) (*shoalpb.HeartbeatResponse, error) {
	select {
	case d.calls <- call{addr: d.addr, req: proto.Clone(req).(*shoalpb.HeartbeatRequest), at: time.Now()}:
	default:
	}
	return d.resp(), nil
}

// serveDispatcher starts a Dispatcher on a free loopback port.
func serveDispatcher(t *testing.T, calls chan<- call, resp func() *shoalpb.HeartbeatResponse) (addr string, srv *grpc.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv = grpc.NewServer()
	shoalpb.RegisterDispatcherServer(srv, &dispatcher{addr: ln.Addr().String(), resp: resp, calls: calls})
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return ln.Addr().String(), srv
}

// connCache dials each address once, as the node's connection pool does.
type connCache struct {
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func (c *connCache) dial(_ context.Context, addr string) (grpc.ClientConnInterface, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc, ok := c.conns[addr]; ok {
		return cc, nil
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	c.conns[addr] = cc
	return cc, nil
}

func (c *connCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cc := range c.conns {
		cc.Close()
	}
}

func TestAgentOverGRPC(t *testing.T) {
	calls := make(chan call, 10000)
	var mu sync.Mutex
	var managers []*shoalpb.Peer
	resp := func() *shoalpb.HeartbeatResponse {
		mu.Lock()
		defer mu.Unlock()
		return &shoalpb.HeartbeatResponse{PeriodNs: int64(20 * time.Millisecond), LeaderId: "mgr-b", Managers: managers}
	}
	addrA, _ := serveDispatcher(t, calls, resp)
	addrB, srvB := serveDispatcher(t, calls, resp)
	mu.Lock()
	managers = []*shoalpb.Peer{{NodeId: "mgr-a", Addr: addrA}, {NodeId: "mgr-b", Addr: addrB}}
	mu.Unlock()

	cache := &connCache{conns: map[string]*grpc.ClientConn{}}
	// Stop the agent before closing its connections: cleanups run last
	// registered first.
	t.Cleanup(cache.close)
	desc := &shoalpb.NodeDescription{Hostname: "worker-host", EngineLabels: map[string]string{"disk": "ssd"}}
	runAgent(t, worker.Config{
		Logger:        slog.New(slog.DiscardHandler),
		Dial:          cache.dial,
		Managers:      func() []*shoalpb.Peer { return []*shoalpb.Peer{{NodeId: "mgr-a", Addr: addrA}} },
		Describe:      func() *shoalpb.NodeDescription { return desc },
		AdvertiseAddr: "127.0.0.1:2377",
		GossipAddr:    "127.0.0.1:7946",
		InitialPeriod: time.Hour,
	})

	next := func() call {
		t.Helper()
		select {
		case c := <-calls:
			return c
		case <-time.After(waitFor):
			t.Fatal("no heartbeat reached a manager")
			return call{}
		}
	}

	first := next()
	if first.addr != addrA {
		t.Fatalf("first heartbeat went to %s, want the only known manager %s", first.addr, addrA)
	}
	if !proto.Equal(first.req.GetDescription(), desc) || first.req.GetAdvertiseAddr() != "127.0.0.1:2377" || first.req.GetGossipAddr() != "127.0.0.1:7946" {
		t.Errorf("manager received %v", first.req)
	}
	// mgr-a names mgr-b leader: the following heartbeats go there.
	for i := range 3 {
		if c := next(); c.addr != addrB {
			t.Fatalf("heartbeat %d after learning the leader went to %s, want %s", i+1, c.addr, addrB)
		}
	}

	// The leader goes away; the agent falls back to mgr-a on every beat.
	srvB.Stop()
	deadline := time.After(waitFor)
	for seen := 0; seen < 3; {
		select {
		case c := <-calls:
			if c.addr == addrA {
				seen++
			}
		case <-deadline:
			t.Fatalf("only %d heartbeats reached mgr-a after the leader stopped", seen)
		}
	}
}
