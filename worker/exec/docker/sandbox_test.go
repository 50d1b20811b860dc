package docker

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/worker/exec"
)

// fakeNetwork records what the executor asks of the data plane.
type fakeNetwork struct {
	t        *testing.T
	resolv   string
	mu       sync.Mutex
	attach   []int // pids
	detach   int
	onAttach func(pid int)
	// published: whether the task's endpoints are published, by Attach
	// or Publish; onPublish runs when either first publishes them.
	published bool
	onPublish func()
}

func (n *fakeNetwork) Attach(_ context.Context, _ *shoalpb.Task, pid int, publish bool) error {
	if n.onAttach != nil {
		n.onAttach(pid)
	}
	n.mu.Lock()
	n.attach = append(n.attach, pid)
	was := n.published
	n.published = n.published || publish
	n.mu.Unlock()
	if publish && !was && n.onPublish != nil {
		n.onPublish()
	}
	return nil
}

func (n *fakeNetwork) Publish(context.Context, *shoalpb.Task) error {
	n.mu.Lock()
	was := n.published
	n.published = true
	n.mu.Unlock()
	if !was && n.onPublish != nil {
		n.onPublish()
	}
	return nil
}

func (n *fakeNetwork) isPublished() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.published
}

func (n *fakeNetwork) Detach(context.Context, *shoalpb.Task) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.detach++
	return nil
}

func (n *fakeNetwork) ResolvConf(*shoalpb.Task) (string, error) { return n.resolv, nil }

func netnsOf(t *testing.T, pid int) string {
	t.Helper()
	l, err := os.Readlink(filepath.Join("/proc", itoa(pid), "ns", "net"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestOverlayTaskRunsInItsSandbox(t *testing.T) {
	e := newExecutor(t)
	ctx := testCtx(t)
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.11\noptions ndots:0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	net := &fakeNetwork{t: t, resolv: resolv}
	e.Network = net

	tk := newTask("hostname", "cat:/etc/resolv.conf", "wait:TERM")
	tk.Spec.Container.Hostname = "web-1"
	tk.Networks = []*shoalpb.NetworkAttachment{{NetworkId: "n1", Vni: 4097, Addresses: []string{"198.19.0.5/24"}}}
	c := controller(t, e, tk)
	// When the networks are attached the sandbox runs and the task's
	// container does not yet.
	net.onAttach = func(pid int) {
		if info, err := c.inspect(ctx); err != nil || info.State.Running {
			t.Errorf("attach with the task's container running (%v)", err)
		}
		if info, err := c.inspectSandbox(ctx); err != nil || info.State.Pid != pid {
			t.Errorf("attach to pid %d, not the sandbox's (%v)", pid, err)
		}
	}
	doUntil(t, ctx, tk, c, shoalpb.TaskState_TASK_STATE_RUNNING)
	waitForLine(t, ctx, c, "hostname=web-1")
	waitForLine(t, ctx, c, "nameserver 127.0.0.11")

	info := inspect(t, ctx, c)
	sbInfo, err := c.inspectSandbox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sb := sbInfo.State.Pid
	// The engine records the sandbox by ID.
	if got, want := string(info.HostConfig.NetworkMode), "container:"+sbInfo.ID; got != want {
		t.Fatalf("task container network mode %q, want %q", got, want)
	}
	if a, b := netnsOf(t, info.State.Pid), netnsOf(t, sb); a != b {
		t.Fatalf("task in network namespace %s, its sandbox in %s", a, b)
	}
	if len(net.attach) != 1 {
		t.Fatalf("%d attaches, want 1", len(net.attach))
	}
	if !net.isPublished() {
		t.Fatal("a task without a health check runs with its endpoints unpublished")
	}

	// A restarted daemon's controller attaches the running task again.
	net.onAttach = nil
	c2 := controller(t, e, tk)
	if err := c2.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if len(net.attach) != 2 || net.attach[1] != sb {
		t.Fatalf("attaches after adoption: %v, want a second one to pid %d", net.attach, sb)
	}

	if err := c2.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.inspect(ctx); !errors.Is(err, exec.ErrTaskNotFound) {
		t.Fatalf("task container after Remove: %v", err)
	}
	if _, err := c2.inspectSandbox(ctx); !cerrdefs.IsNotFound(err) {
		t.Fatalf("sandbox after Remove: %v", err)
	}
	if net.detach != 1 {
		t.Fatalf("%d detaches, want 1", net.detach)
	}
}

// A task with a health check joins its services' VIPs and names only once
// the check passes: attached without its endpoints, published when
// healthy, before it is reported RUNNING.
func TestOverlayTaskPublishedOnceHealthy(t *testing.T) {
	e := newExecutor(t)
	ctx := testCtx(t)
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.11\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	net := &fakeNetwork{t: t, resolv: resolv}
	e.Network = net
	const pause = 700 * time.Millisecond
	tk := healthTask("pause:"+pause.String(), "touch:/ready", "wait:TERM")
	tk.Spec.Container.Healthcheck.StartPeriodNs = int64(20 * time.Second)
	tk.Networks = []*shoalpb.NetworkAttachment{{NetworkId: "n1", Vni: 4097, Addresses: []string{"198.19.0.6/24"}}}
	c := controller(t, e, tk)
	net.onPublish = func() {
		if h, err := c.Health(ctx); err != nil || h != exec.HealthHealthy {
			t.Errorf("endpoints published with the container's health %q (%v)", h, err)
		}
	}
	doUntil(t, ctx, tk, c, shoalpb.TaskState_TASK_STATE_STARTING)
	if net.isPublished() {
		t.Fatal("endpoints published before the task started")
	}
	st := doUntil(t, ctx, tk, c, shoalpb.TaskState_TASK_STATE_RUNNING)
	if st.State != shoalpb.TaskState_TASK_STATE_RUNNING {
		t.Fatalf("status %v, want RUNNING", st)
	}
	if len(net.attach) != 1 || !net.isPublished() {
		t.Fatalf("RUNNING after %d attaches, published %v; want 1 attach and the endpoints published", len(net.attach), net.isPublished())
	}
	if err := c.Remove(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestOverlayTaskWithoutDataPlaneIsRejected(t *testing.T) {
	needEngine(t)
	e := New(cli, "node-x", "w9")
	tk := newTask("exit:0")
	tk.Networks = []*shoalpb.NetworkAttachment{{NetworkId: "n1"}}
	_, err := e.Controller(tk)
	if err == nil || !strings.Contains(err.Error(), "overlay") || !strings.Contains(err.Error(), "w9") {
		t.Fatalf("Controller = %v, want an error naming the missing overlay data plane and the node", err)
	}
}

// TestPrepareWaitsForAContainerBeingMade covers a step interrupted during
// its create: the name is taken while the engine still makes the
// container, and the next Prepare must adopt it once it is visible.
func TestPrepareWaitsForAContainerBeingMade(t *testing.T) {
	e := newExecutor(t)
	ctx := testCtx(t)
	tk := newTask("wait:TERM")
	c := controller(t, e, tk)
	made := make(chan error, 1)
	go func() {
		// Let awaitCreated look (and miss) a few times first.
		time.Sleep(300 * time.Millisecond)
		made <- controller(t, e, tk).Prepare(ctx)
	}()
	info, err := c.awaitCreated(ctx)
	if err != nil {
		t.Fatalf("awaitCreated: %v", err)
	}
	if err := <-made; err != nil {
		t.Fatal(err)
	}
	if err := c.adopt(info); err != nil {
		t.Fatal(err)
	}
}
