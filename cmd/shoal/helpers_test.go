package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// cli runs a shoal command line in-process and returns what it printed
// and its exit code.
func cli(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

// handler answers one method of the fake daemon.
type handler func(req proto.Message) (proto.Message, error)

// fakeDaemon is an in-process gRPC server on a unix socket standing in
// for the daemon. It records every request and answers the methods it has
// handlers for; the others are unimplemented.
type fakeDaemon struct {
	host string

	mu       sync.Mutex
	handlers map[string]handler
	calls    []recorded
	// logs, when set, serves SubscribeLogs.
	logs func(*shoalpb.SubscribeLogsRequest, grpc.ServerStreamingServer[shoalpb.SubscribeLogsMessage]) error
}

// fakeLogs serves the fake daemon's Logs service through fakeDaemon.logs.
type fakeLogs struct {
	shoalpb.UnimplementedLogsServer
	f *fakeDaemon
}

func (l fakeLogs) SubscribeLogs(req *shoalpb.SubscribeLogsRequest, stream grpc.ServerStreamingServer[shoalpb.SubscribeLogsMessage]) error {
	l.f.mu.Lock()
	l.f.calls = append(l.f.calls, recorded{method: "SubscribeLogs", req: proto.Clone(req)})
	h := l.f.logs
	l.f.mu.Unlock()
	if h == nil {
		return l.UnimplementedLogsServer.SubscribeLogs(req, stream)
	}
	return h(req, stream)
}

type recorded struct {
	method string
	req    proto.Message
}

func startFake(t *testing.T) *fakeDaemon {
	t.Helper()
	// Unix socket paths are short; t.TempDir can be too long for them.
	dir, err := os.MkdirTemp("", "shoal-cli-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeDaemon{host: "unix://" + sock, handlers: map[string]handler{}}
	srv := grpc.NewServer(grpc.UnaryInterceptor(f.intercept))
	shoalpb.RegisterDaemonServer(srv, shoalpb.UnimplementedDaemonServer{})
	shoalpb.RegisterControlServer(srv, shoalpb.UnimplementedControlServer{})
	shoalpb.RegisterLogsServer(srv, fakeLogs{f: f})
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return f
}

func (f *fakeDaemon) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	method := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
	f.mu.Lock()
	f.calls = append(f.calls, recorded{method: method, req: proto.Clone(req.(proto.Message))})
	h := f.handlers[method]
	f.mu.Unlock()
	if h != nil {
		return h(req.(proto.Message))
	}
	return next(ctx, req)
}

func (f *fakeDaemon) on(method string, h handler) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handlers[method] = h
}

// reply answers method with a fixed response.
func (f *fakeDaemon) reply(method string, resp proto.Message) {
	f.on(method, func(proto.Message) (proto.Message, error) { return resp, nil })
}

func (f *fakeDaemon) methods() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		out = append(out, c.method)
	}
	return out
}

// requests returns the requests received for method, in order.
func (f *fakeDaemon) requests(method string) []proto.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []proto.Message
	for _, c := range f.calls {
		if c.method == method {
			out = append(out, c.req)
		}
	}
	return out
}

// cli runs a command line against the fake daemon.
func (f *fakeDaemon) cli(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return cli(t, append([]string{"-H", f.host}, args...)...)
}

// Fixture nodes: two managers (one leading), an unreachable manager and a
// worker that is down.
const (
	idAlpha   = "aaaaaaaaaaaaaaaaaaaaaaaaa"
	idBravo   = "bbbbbbbbbbbbbbbbbbbbbbbbb"
	idCharlie = "ccccccccccccccccccccccccc"
	idDelta   = "ddddddddddddddddddddddddd"
)

func fixtureNodes() []*shoalpb.Node {
	mgr := shoalpb.NodeRole_NODE_ROLE_MANAGER
	return []*shoalpb.Node{
		{
			Id:   idAlpha,
			Meta: &shoalpb.Meta{Version: 12, CreatedAt: 1700000000123456789, UpdatedAt: 1700000100000000000},
			Spec: &shoalpb.NodeSpec{DesiredRole: mgr, Labels: map[string]string{"zone": "a", "ssd": ""}},
			Description: &shoalpb.NodeDescription{
				Hostname:      "alpha",
				Platform:      &shoalpb.Platform{Os: "linux", Architecture: "x86_64"},
				Resources:     &shoalpb.Resources{NanoCpus: 4e9, MemoryBytes: 8272408576},
				EngineVersion: "1.2.3",
			},
			Status:        &shoalpb.NodeStatus{State: shoalpb.NodeState_NODE_STATE_READY, Addr: "10.0.0.1"},
			Role:          mgr,
			ManagerStatus: &shoalpb.ManagerStatus{Addr: "10.0.0.1:2377", Leader: true, Reachability: shoalpb.Reachability_REACHABILITY_REACHABLE},
			AdvertiseAddr: "10.0.0.1:2377",
		},
		{
			Id:            idBravo,
			Meta:          &shoalpb.Meta{Version: 7, CreatedAt: 1700000200000000000, UpdatedAt: 1700000200000000000},
			Spec:          &shoalpb.NodeSpec{DesiredRole: mgr},
			Description:   &shoalpb.NodeDescription{Hostname: "bravo", EngineVersion: "1.2.3"},
			Status:        &shoalpb.NodeStatus{State: shoalpb.NodeState_NODE_STATE_READY, Addr: "10.0.0.2"},
			Role:          mgr,
			ManagerStatus: &shoalpb.ManagerStatus{Addr: "10.0.0.2:2377", Reachability: shoalpb.Reachability_REACHABILITY_REACHABLE},
			AdvertiseAddr: "10.0.0.2:2377",
		},
		{
			Id:          idCharlie,
			Meta:        &shoalpb.Meta{Version: 9, CreatedAt: 1700000300000000000, UpdatedAt: 1700000400000000000},
			Spec:        &shoalpb.NodeSpec{Availability: shoalpb.NodeAvailability_NODE_AVAILABILITY_DRAIN},
			Description: &shoalpb.NodeDescription{Hostname: "charlie", EngineVersion: "1.2.2"},
			Status:      &shoalpb.NodeStatus{State: shoalpb.NodeState_NODE_STATE_DOWN, Message: "heartbeat failure", Addr: "10.0.0.3"},
		},
		{
			Id:            idDelta,
			Meta:          &shoalpb.Meta{Version: 3},
			Spec:          &shoalpb.NodeSpec{DesiredRole: mgr, Availability: shoalpb.NodeAvailability_NODE_AVAILABILITY_PAUSE},
			Description:   &shoalpb.NodeDescription{Hostname: "delta", EngineVersion: "1.2.3"},
			Status:        &shoalpb.NodeStatus{State: shoalpb.NodeState_NODE_STATE_UNKNOWN},
			ManagerStatus: &shoalpb.ManagerStatus{Addr: "10.0.0.4:2377", Reachability: shoalpb.Reachability_REACHABILITY_UNREACHABLE},
		},
	}
}

func fixtureNode(id string) *shoalpb.Node {
	for _, n := range fixtureNodes() {
		if n.Id == id {
			return n
		}
	}
	return nil
}
