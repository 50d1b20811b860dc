package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/node"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Deadlines of the calls to the daemon. A join waits for the remote
// manager (node.JoinTimeout) and then for this node to settle in.
const (
	callTimeout = 60 * time.Second
	joinTimeout = node.JoinTimeout + 35*time.Second
)

func defaultHost(getenv func(string) string) string {
	if h := getenv("SHOAL_HOST"); h != "" {
		return h
	}
	return node.DefaultHost
}

// socketPath checks that host is a unix:// address and returns its path.
func socketPath(host string) (string, error) {
	p, ok := strings.CutPrefix(host, "unix://")
	if !ok || p == "" {
		return "", fmt.Errorf("invalid host %q: only unix:///path sockets are supported", host)
	}
	return p, nil
}

// client is a connection to the local daemon's control socket.
type client struct {
	host    string
	conn    *grpc.ClientConn
	daemon  shoalpb.DaemonClient
	control shoalpb.ControlClient

	mu        sync.Mutex
	dialErr   error // the last failed attempt to reach the socket
	connected bool  // whether the socket ever accepted a connection
}

// dial prepares a client for the --host socket. Nothing is sent until the
// first call.
func (g *globalOptions) dial() (*client, error) {
	path, err := socketPath(g.host)
	if err != nil {
		return nil, err
	}
	c := &client{host: g.host}
	dialer := func(ctx context.Context, _ string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, "unix", path)
		c.mu.Lock()
		if err != nil {
			c.dialErr = err
		} else {
			c.connected = true
		}
		c.mu.Unlock()
		return conn, err
	}
	// The dialer reaches the socket itself (relative paths included), so
	// the target only names the authority.
	conn, err := grpc.NewClient("passthrough:///localhost",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(dialer),
		// Listings of big clusters exceed gRPC's 4 MiB default.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", g.host, err)
	}
	c.conn = conn
	c.daemon = shoalpb.NewDaemonClient(conn)
	c.control = shoalpb.NewControlClient(conn)
	return c, nil
}

func (c *client) Close() error { return c.conn.Close() }

// reached reports whether the socket ever accepted a connection.
func (c *client) reached() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connected
}

// daemonError is an error the daemon answered with.
type daemonError struct {
	code codes.Code
	msg  string
}

func (e *daemonError) Error() string { return "Error response from daemon: " + e.msg }

// convert turns the error of a call into what the user is shown: the
// daemon's own message, or why the daemon could not be reached.
func (c *client) convert(err error) error {
	if err == nil {
		return nil
	}
	st := status.Convert(err)
	c.mu.Lock()
	dialErr, connected := c.dialErr, c.connected
	c.mu.Unlock()
	if !connected && dialErr != nil && (st.Code() == codes.Unavailable || st.Code() == codes.DeadlineExceeded) {
		if errors.Is(dialErr, syscall.EACCES) || errors.Is(dialErr, syscall.EPERM) {
			return fmt.Errorf("permission denied while trying to connect to the Shoal daemon socket at %s: %v", c.host, dialErr)
		}
		return fmt.Errorf("Cannot connect to the Shoal daemon at %s. Is the shoal daemon running?", c.host)
	}
	return &daemonError{code: st.Code(), msg: st.Message()}
}

// isNotFound reports whether the daemon said the object does not exist.
func isNotFound(err error) bool {
	var de *daemonError
	return errors.As(err, &de) && de.code == codes.NotFound
}

// rpc is the shape of every generated client method.
type rpc[Req, Resp any] func(context.Context, Req, ...grpc.CallOption) (Resp, error)

// call makes one call with the default deadline.
func call[Req, Resp any](ctx context.Context, c *client, fn rpc[Req, Resp], req Req) (Resp, error) {
	return callTimeoutAfter(ctx, c, callTimeout, fn, req)
}

func callTimeoutAfter[Req, Resp any](ctx context.Context, c *client, d time.Duration, fn rpc[Req, Resp], req Req) (Resp, error) {
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	resp, err := fn(cctx, req)
	if err != nil && ctx.Err() == nil && c.reached() {
		// The daemon sees the deadline too and may reset the call just
		// before it expires here, so the code is either of these two.
		code := status.Code(err)
		if (code == codes.DeadlineExceeded || code == codes.Canceled) && time.Since(start) >= d*9/10 {
			return resp, fmt.Errorf("the Shoal daemon at %s did not answer within %s", c.host, d)
		}
	}
	return resp, c.convert(err)
}

// withClient dials the daemon, runs f and closes the connection.
func (g *globalOptions) withClient(f func(c *client) error) error {
	c, err := g.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	return f(c)
}

// selfID returns the ID of the node the daemon runs, or "" outside a swarm.
func (c *client) selfID(ctx context.Context) (string, error) {
	info, err := call(ctx, c, c.daemon.Info, &shoalpb.InfoRequest{})
	if err != nil {
		return "", err
	}
	return info.GetNodeId(), nil
}
