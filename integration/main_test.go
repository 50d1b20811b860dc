package integration

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/shoal-project/shoal/integration/harness"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

func TestMain(m *testing.M) { harness.Main(m, removeSandboxImage) }

// removeSandboxImage removes the image the daemons make for the sandbox
// containers of tasks on overlay networks, and the earlier copies that
// daemons importing it at the same time left untagged, unless containers
// (of another test process) still use them.
func removeSandboxImage() {
	_ = exec.Command("docker", "rmi", "shoal/sandbox:1").Run()
	out, err := exec.Command("docker", "images", "-q", "--no-trunc", "--filter", "dangling=true").Output()
	if err != nil {
		return
	}
	for _, id := range strings.Fields(string(out)) {
		ep, err := exec.Command("docker", "image", "inspect", "--format", "{{json .Config.Entrypoint}}", id).Output()
		if err == nil && strings.TrimSpace(string(ep)) == `["/pause"]` {
			_ = exec.Command("docker", "rmi", id).Run()
		}
	}
}

// testCluster is a lab with a swarm on its hosts.
type testCluster struct {
	lab      *harness.Lab
	managers []*harness.Host
	workers  []*harness.Host
	ids      map[*harness.Host]string
}

// testAddrPool is the default address pool every test swarm is made with.
const testAddrPool = "198.19.0.0/16"

// newCluster starts nManagers managers (the first inits the swarm) and
// nWorkers workers, and waits until every node is Ready.
func newCluster(t *testing.T, nManagers, nWorkers int) *testCluster {
	t.Helper()
	return newClusterArgs(t, nManagers, nWorkers)
}

// newClusterArgs is newCluster with extra daemon flags on every host.
func newClusterArgs(t *testing.T, nManagers, nWorkers int, daemonArgs ...string) *testCluster {
	t.Helper()
	harness.RequireRoot(t)
	bin := harness.BuildShoal(t, harness.RaceEnabled)
	c := &testCluster{lab: harness.NewLab(t, harness.LabOptions{Binary: bin}), ids: map[*harness.Host]string{}}
	for i := 0; i < nManagers+nWorkers; i++ {
		h := c.lab.AddHost(t)
		h.Start(t, daemonArgs...)
		if i < nManagers {
			c.managers = append(c.managers, h)
		} else {
			c.workers = append(c.workers, h)
		}
	}
	// Tasks' containers outlive their daemons (as docker's do); at the end
	// stop the daemons (or they would replace what is removed), then
	// remove the containers of this cluster's nodes, and only those.
	t.Cleanup(func() {
		for _, h := range c.lab.Hosts() {
			if h.Running() {
				h.Kill(t)
			}
		}
		removeNodeContainers(t, c.ids)
	})
	first := c.managers[0]
	// Overlay addresses, like the hosts', stay in the test range.
	first.MustCLI(t, "swarm", "init", "--advertise-addr", first.IP, "--default-addr-pool", testAddrPool)
	c.ids[first] = nodeID(t, first)
	mtok := strings.TrimSpace(first.MustCLI(t, "swarm", "join-token", "-q", "manager"))
	wtok := strings.TrimSpace(first.MustCLI(t, "swarm", "join-token", "-q", "worker"))
	for _, h := range c.managers[1:] {
		out := h.MustCLI(t, "swarm", "join", "--token", mtok, first.IP+":2377")
		if !strings.Contains(out, "as a manager") {
			t.Fatalf("%s join output = %q", h.Name, out)
		}
		c.ids[h] = nodeID(t, h)
	}
	for _, h := range c.workers {
		out := h.MustCLI(t, "swarm", "join", "--token", wtok, first.IP+":2377")
		if !strings.Contains(out, "as a worker") {
			t.Fatalf("%s join output = %q", h.Name, out)
		}
		c.ids[h] = nodeID(t, h)
	}
	c.waitNodes(t, first, 30*time.Second, func(rows []nodeRow) error {
		if len(rows) != nManagers+nWorkers {
			return fmt.Errorf("%d nodes listed, want %d", len(rows), nManagers+nWorkers)
		}
		for _, r := range rows {
			if r.Status != "Ready" {
				return fmt.Errorf("node %s is %s", r.Hostname, r.Status)
			}
		}
		return nil
	})
	return c
}

// removeNodeContainers removes the containers labelled with the given
// nodes' IDs.
func removeNodeContainers(t *testing.T, ids map[*harness.Host]string) {
	for _, id := range ids {
		out, err := exec.Command("docker", "ps", "-aq", "--filter", "label=shoal.node.id="+id).Output()
		if err != nil {
			continue
		}
		if cs := strings.Fields(string(out)); len(cs) > 0 {
			if out, err := exec.Command("docker", append([]string{"rm", "-f"}, cs...)...).CombinedOutput(); err != nil {
				t.Logf("remove containers of node %s: %v: %s", id, err, out)
			}
		}
	}
}

func nodeID(t *testing.T, h *harness.Host) string {
	t.Helper()
	id := strings.TrimSpace(h.MustCLI(t, "info", "--format", "{{.Swarm.NodeID}}"))
	if id == "" {
		t.Fatalf("%s has no node ID", h.Name)
	}
	return id
}

type nodeRow struct {
	ID, Hostname, Status, Availability, ManagerStatus string
}

const rowFormat = "{{.ID}}|{{.Hostname}}|{{.Status}}|{{.Availability}}|{{.ManagerStatus}}"

func listNodes(ctx context.Context, h *harness.Host) ([]nodeRow, error) {
	out, stderr, err := h.CLI(ctx, "node", "ls", "--format", rowFormat)
	if err != nil {
		return nil, fmt.Errorf("node ls on %s: %v: %s", h.Name, err, stderr)
	}
	var rows []nodeRow
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 5 {
			continue
		}
		rows = append(rows, nodeRow{f[0], f[1], f[2], f[3], f[4]})
	}
	return rows, nil
}

// waitNodes polls node ls on h until check accepts the rows.
func (c *testCluster) waitNodes(t *testing.T, h *harness.Host, timeout time.Duration, check func([]nodeRow) error) []nodeRow {
	t.Helper()
	var rows []nodeRow
	harness.Eventually(t, timeout, "node ls on "+h.Name, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		if rows, err = listNodes(ctx, h); err != nil {
			return err
		}
		return check(rows)
	})
	return rows
}

func rowOf(rows []nodeRow, hostname string) nodeRow {
	for _, r := range rows {
		if r.Hostname == hostname {
			return r
		}
	}
	return nodeRow{}
}

// leader returns the manager host that node ls on h calls Leader.
func (c *testCluster) leader(t *testing.T, via *harness.Host) *harness.Host {
	t.Helper()
	var leader *harness.Host
	c.waitNodes(t, via, 30*time.Second, func(rows []nodeRow) error {
		for _, r := range rows {
			if r.ManagerStatus == "Leader" {
				for _, m := range c.managers {
					if m.Name == r.Hostname {
						leader = m
						return nil
					}
				}
			}
		}
		return fmt.Errorf("no leader listed")
	})
	return leader
}

// control dials a host's local socket for direct API calls.
func control(t *testing.T, h *harness.Host) shoalpb.ControlClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+h.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return shoalpb.NewControlClient(conn)
}

func expectCLIError(t *testing.T, h *harness.Host, want string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, stderr, err := h.CLI(ctx, args...)
	if err == nil {
		t.Fatalf("shoal %s on %s succeeded (%q); want an error containing %q", strings.Join(args, " "), h.Name, out, want)
	}
	if !strings.Contains(stderr, want) {
		t.Fatalf("shoal %s on %s: stderr = %q, want it to contain %q", strings.Join(args, " "), h.Name, stderr, want)
	}
	return stderr
}

var tokenRE = regexp.MustCompile(`SHLTKN-1-[0-9a-z]{50}-[0-9a-z]{25}`)
