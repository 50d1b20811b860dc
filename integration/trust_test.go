package integration

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/identity"
	"github.com/shoal-project/shoal/proto/shoalpb"
	"golang.org/x/sys/unix"
)

// TestJoinTrust checks what a join refuses: malformed, forged, rotated-away
// and foreign-CA tokens, unreachable managers, and nodes already joined.
func TestJoinTrust(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1, 1)
	m := c.managers[0]
	addr := m.IP + ":2377"
	joiner := c.lab.AddHost(t)
	joiner.Start(t)

	expectCLIError(t, joiner, "invalid join token", "swarm", "join", "--token", "not-a-token", addr)

	good := strings.TrimSpace(m.MustCLI(t, "swarm", "join-token", "-q", "worker"))
	tok, err := identity.ParseJoinToken(good)
	if err != nil {
		t.Fatal(err)
	}
	// Same CA digest, secret guessed: the manager refuses it.
	forged, err := identity.GenerateJoinToken(tok.Digest, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	expectCLIError(t, joiner, "invalid join token", "swarm", "join", "--token", forged, addr)

	// A token pinned to another CA fails the TLS pin before any secret is sent.
	foreign, err := identity.GenerateJoinToken(strings.Repeat("1", identity.DigestLen), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	expectCLIError(t, joiner, "digest", "swarm", "join", "--token", foreign, addr)

	// Rotation invalidates the old token for new joins, not for joined nodes.
	out := m.MustCLI(t, "swarm", "join-token", "--rotate", "worker")
	rotated := tokenRE.FindString(out)
	if rotated == "" || rotated == good {
		t.Fatalf("rotate printed %q", out)
	}
	expectCLIError(t, joiner, "invalid join token", "swarm", "join", "--token", good, addr)
	if _, err := listNodes(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	c.waitNodes(t, m, 20*time.Second, func(rows []nodeRow) error {
		if r := rowOf(rows, c.workers[0].Name); r.Status != "Ready" {
			return fmt.Errorf("joined worker is %s after rotation", r.Status)
		}
		return nil
	})

	// An address where no manager listens fails within the stated bound
	// and names the address.
	t0 := time.Now()
	expectCLIError(t, joiner, "198.18.0.250:2377", "swarm", "join", "--token", rotated, "198.18.0.250:2377")
	if d := time.Since(t0); d > 30*time.Second {
		t.Fatalf("join of an unreachable address took %s", d)
	}
	// Nothing was written by the failed joins.
	expectCLIError(t, joiner, "not a swarm manager", "node", "ls")
	if got := strings.TrimSpace(joiner.MustCLI(t, "info", "--format", "{{.Swarm.LocalNodeState}}")); got != "inactive" {
		t.Fatalf("after failed joins the node is %q, want inactive", got)
	}

	out = joiner.MustCLI(t, "swarm", "join", "--token", rotated, addr)
	if !strings.Contains(out, "joined a swarm as a worker") {
		t.Fatalf("join output %q", out)
	}
	expectCLIError(t, joiner, "already part of a swarm", "swarm", "join", "--token", rotated, addr)
	expectCLIError(t, joiner, "already part of a swarm", "swarm", "init")
	expectCLIError(t, m, "already part of a swarm", "swarm", "init")
}

// TestRolesInCertificates dials a manager's cluster port directly from a
// worker's network namespace: with the worker's certificate the cluster API
// is refused, while the worker's own heartbeat call is allowed; with no
// certificate everything but joining is refused.
func TestRolesInCertificates(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1, 1)
	m, w := c.managers[0], c.workers[0]
	mat, err := identity.Load(filepath.Join(w.DataDir, "swarm", "certificates"))
	if err != nil {
		t.Fatal(err)
	}
	creds, err := identity.NewCredentials(mat)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(conf credentials.TransportCredentials) *grpc.ClientConn {
		conn, err := grpc.NewClient("passthrough:///"+m.IP+":2377", grpc.WithTransportCredentials(conf),
			grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return dialInNetns(ctx, w.NetNS, addr) }))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	workerConn := dial(credentials.NewTLS(creds.ClientConfig("h2")))
	_, err = shoalpb.NewControlClient(workerConn).ListNodes(ctx, &shoalpb.ListNodesRequest{})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("worker calling ListNodes: %v, want PermissionDenied", err)
	}
	_, err = shoalpb.NewControlClient(workerConn).UpdateNode(ctx, &shoalpb.UpdateNodeRequest{NodeRef: w.Name, SetRole: true, Role: shoalpb.NodeRole_NODE_ROLE_MANAGER})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("worker promoting itself: %v, want PermissionDenied", err)
	}
	_, err = shoalpb.NewRaftMembershipClient(workerConn).Join(ctx, &shoalpb.RaftJoinRequest{Addr: w.IP + ":2377"})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("worker joining raft: %v, want PermissionDenied", err)
	}
	if _, err := shoalpb.NewDispatcherClient(workerConn).Heartbeat(ctx, &shoalpb.HeartbeatRequest{}); err != nil {
		t.Fatalf("worker heartbeat refused: %v", err)
	}

	tok, err := identity.ParseJoinToken(strings.TrimSpace(m.MustCLI(t, "swarm", "join-token", "-q", "worker")))
	if err != nil {
		t.Fatal(err)
	}
	anon := dial(credentials.NewTLS(identity.PinnedClientConfig(tok.Digest, "h2")))
	_, err = shoalpb.NewControlClient(anon).ListNodes(ctx, &shoalpb.ListNodesRequest{})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("anonymous ListNodes: %v, want PermissionDenied", err)
	}
	_, err = shoalpb.NewDispatcherClient(anon).Heartbeat(ctx, &shoalpb.HeartbeatRequest{})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("anonymous heartbeat: %v, want PermissionDenied", err)
	}
}

// dialInNetns opens a TCP connection from inside a network namespace: the
// socket is created on a thread switched into the namespace and keeps
// belonging to it afterwards.
func dialInNetns(ctx context.Context, netns, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer orig.Close()
		f, err := os.Open("/run/netns/" + netns)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("setns %s: %w", netns, err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		ch <- result{c, err}
		// Back to the original namespace before the thread is reused. If
		// that fails the thread stays locked and ends with the goroutine.
		// (A thread that ends also kills children forked from it with a
		// parent-death signal, so the normal path must unlock.)
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	r := <-ch
	return r.c, r.err
}
