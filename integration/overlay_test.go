package integration

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/integration/harness"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// webScript is the command of the web services' tasks: busybox httpd
// serving its hostname at /, a 2 MB file that is the same on every task
// at /big, and a CGI script printing the client's address at
// /cgi-bin/ip.
const webScript = `busybox mkdir -p /www/cgi-bin && hostname > /www/index.html && busybox seq 1 ` + bigLines + ` > /www/big && ` +
	`{ echo '#!/bin/sh'; echo 'echo Content-Type: text/plain'; echo echo; echo 'echo $REMOTE_ADDR'; } > /www/cgi-bin/ip && ` +
	`busybox chmod +x /www/cgi-bin/ip && exec httpd -f -p 80 -h /www`

const bigLines = "320000"

// bigSum is the MD5 of /big: the numbers 1 to bigLines, one per line.
func bigSum(t *testing.T) (sum string, size int) {
	t.Helper()
	n, _ := strconv.Atoi(bigLines)
	var b strings.Builder
	for i := 1; i <= n; i++ {
		b.WriteString(strconv.Itoa(i))
		b.WriteByte('\n')
	}
	s := md5.Sum([]byte(b.String()))
	return hex.EncodeToString(s[:]), b.Len()
}

// ovTask is a running task of a service as the tests see it.
type ovTask struct {
	id, node  string
	container string // the task's container (not its sandbox)
	addrs     map[string]netip.Addr
}

// overlayTasks returns the service's tasks that run and should, with
// their containers and their addresses per network ID.
func overlayTasks(t *testing.T, m *harness.Host, service string) []ovTask {
	t.Helper()
	var out []ovTask
	for _, tk := range runnableTasks(t, m, service) {
		if tk.GetStatus().GetState() != shoalpb.TaskState_TASK_STATE_RUNNING {
			continue
		}
		ot := ovTask{id: tk.Id, node: tk.NodeId, addrs: map[string]netip.Addr{}}
		for _, a := range tk.Networks {
			if len(a.Addresses) > 0 {
				ot.addrs[a.NetworkId] = netip.MustParsePrefix(a.Addresses[0]).Addr()
			}
		}
		raw, err := exec.Command("docker", "ps", "--no-trunc", "--filter", "label=shoal.task.id="+tk.Id,
			"--format", `{{.ID}} {{.Label "shoal.sandbox"}}`).Output()
		if err != nil {
			t.Fatalf("docker ps for task %s: %v", tk.Id, err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
			if f := strings.Fields(line); len(f) == 1 {
				ot.container = f[0]
			}
		}
		if ot.container == "" {
			continue // not started yet
		}
		out = append(out, ot)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// dexec runs a command in a task's container.
func dexec(ctx context.Context, container string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", append([]string{"exec", container}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), fmt.Errorf("docker exec %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(ee.Stderr)))
		}
		return string(out), fmt.Errorf("docker exec %s: %v", strings.Join(args, " "), err)
	}
	return string(out), nil
}

func mustExec(t *testing.T, container string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := dexec(ctx, container, args...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// get fetches a URL from inside a container (wget, 3 s timeout: busybox
// wget's own -T crashes in this busybox build).
func get(container, url string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := dexec(ctx, container, "busybox", "timeout", "3", "wget", "-q", "-O", "-", url)
	return strings.TrimSpace(out), err
}

var addrRE = regexp.MustCompile(`Address:\s+(198\.19\.[0-9]+\.[0-9]+)`)

// lookup resolves a name with the task's resolver (A records only).
func lookup(container, name string) ([]netip.Addr, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := dexec(ctx, container, "busybox", "nslookup", "-type=a", name)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	for _, m := range addrRE.FindAllStringSubmatch(out, -1) {
		addrs = append(addrs, netip.MustParseAddr(m[1]))
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	return addrs, nil
}

func sortedAddrs(as ...netip.Addr) []netip.Addr {
	out := slices.Clone(as)
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// hostGet fetches a URL from a host's namespace (the LAN), with the
// machine's busybox.
func hostGet(h *harness.Host, url string, pipe string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	script := "busybox timeout 3 busybox wget -q -O - " + url
	if pipe != "" {
		script += " | " + pipe
	}
	out, err := h.Exec(ctx, "busybox", "sh", "-c", "set -o pipefail; "+script)
	return strings.TrimSpace(out), err
}

func serviceVIP(t *testing.T, m *harness.Host, service, networkID string) netip.Addr {
	t.Helper()
	out := m.MustCLI(t, "service", "inspect", "--format", "{{range .Endpoint.VirtualIPs}}{{.NetworkID}}={{.Addr}} {{end}}", service)
	for _, f := range strings.Fields(out) {
		if id, addr, ok := strings.Cut(f, "="); ok && id == networkID {
			return netip.MustParsePrefix(addr).Addr()
		}
	}
	t.Fatalf("service %s has no VIP on network %s: %q", service, networkID, out)
	return netip.Addr{}
}

// waitRunning waits until the service has n running tasks.
func (c *testCluster) waitRunning(t *testing.T, service string, n int) []ovTask {
	t.Helper()
	m := c.managers[0]
	c.waitTasks(t, m, service, 90*time.Second, func(rows []taskRow) error {
		if got := total(runningPerNode(rows)); got != n {
			return fmt.Errorf("%d running, want %d: %+v", got, n, rows)
		}
		return nil
	})
	var tasks []ovTask
	harness.Eventually(t, 30*time.Second, "containers of "+service, func() error {
		tasks = overlayTasks(t, m, service)
		if len(tasks) != n {
			return fmt.Errorf("%d running tasks with containers, want %d", len(tasks), n)
		}
		return nil
	})
	return tasks
}

// waitServing waits until every task answers HTTP at its address on the
// network, from the client: a task runs before its server listens.
func waitServing(t *testing.T, client string, tasks []ovTask, network string) {
	t.Helper()
	for _, w := range tasks {
		harness.Eventually(t, 30*time.Second, "task "+w.id+" serving", func() error {
			_, err := get(client, "http://"+w.addrs[network].String()+"/")
			return err
		})
	}
}

func (c *testCluster) hostOf(nodeID string) *harness.Host {
	for h, id := range c.ids {
		if id == nodeID {
			return h
		}
	}
	return nil
}

// TestOverlay runs services on overlay networks across three hosts with
// the Docker executor: task-to-task traffic across hosts, service names,
// aliases and tasks.<service> in DNS (VIP and dnsrr services), names
// outside the swarm failing fast, VIP load balancing (scaling, hairpin), 2 MB
// transfers through a VIP and the routing mesh, host-mode ports, network
// isolation, a daemon restart, a node's death, and no leftovers once
// everything is removed and the nodes leave.
func TestOverlay(t *testing.T) {
	c := newCluster(t, 1, 2)
	img := harness.BusyboxImage(t)
	m := c.managers[0]
	h1, h2, h3 := m, c.workers[0], c.workers[1]
	t.Cleanup(func() { removeNodeContainers(t, c.ids) })

	front := strings.TrimSpace(m.MustCLI(t, "network", "create", "-d", "overlay", "front"))
	back := strings.TrimSpace(m.MustCLI(t, "network", "create", "-d", "overlay", "back"))
	ingressID := inspectNetwork(t, m, "ingress").ID

	// web: two tasks on h1 and h2, published on the routing mesh; client:
	// one task on h3, which runs no web task.
	m.MustCLI(t, "service", "create", "-d", "--name", "web", "--replicas", "2", "--stop-grace-period", "1s",
		"--constraint", "node.hostname!=h3",
		"--network", "name=front,alias=www", "-p", "8080:80", img, "sh", "-c", webScript)
	m.MustCLI(t, "service", "create", "-d", "--name", "client", "--stop-grace-period", "1s",
		"--constraint", "node.hostname==h3", "--network", "front", img, "sleep", "86400")
	web := c.waitRunning(t, "web", 2)
	client := c.waitRunning(t, "client", 1)[0]
	if web[0].node == web[1].node || client.node != c.ids[h3] {
		t.Fatalf("placement: web on %s and %s, client on %s", web[0].node, web[1].node, client.node)
	}
	waitServing(t, client.container, web, front)
	webVIP := serviceVIP(t, m, "web", front)
	hostnames := map[string]string{} // task ID -> what it serves at /
	for _, w := range web {
		hostnames[w.id] = mustExec(t, w.container, "hostname")
	}

	t.Run("TaskToTaskAcrossHosts", func(t *testing.T) {
		dumpOnFailure(t, c)
		for _, w := range web {
			harness.Eventually(t, 20*time.Second, "client reaches task "+w.id, func() error {
				got, err := get(client.container, "http://"+w.addrs[front].String()+"/")
				if err != nil {
					return err
				}
				if got != hostnames[w.id] {
					return fmt.Errorf("task %s at %s answered %q, want %q", w.id, w.addrs[front], got, hostnames[w.id])
				}
				return nil
			})
		}
	})

	t.Run("DNS", func(t *testing.T) {
		dumpOnFailure(t, c)
		taskIPs := sortedAddrs(web[0].addrs[front], web[1].addrs[front])
		for name, want := range map[string][]netip.Addr{
			"web":       {webVIP},
			"www":       {webVIP}, // the network alias
			"tasks.web": taskIPs,
			"tasks.www": taskIPs,
			"client":    {serviceVIP(t, m, "client", front)},
		} {
			harness.Eventually(t, 20*time.Second, "lookup "+name, func() error {
				got, err := lookup(client.container, name)
				if err != nil {
					return err
				}
				if !slices.Equal(got, want) {
					return fmt.Errorf("%s resolves to %v, want %v", name, got, want)
				}
				return nil
			})
		}
		// Names outside the swarm go to the host's name servers, which in
		// the lab refuse at once: a prompt failure, nothing leaves.
		start := time.Now()
		if addrs, err := lookup(client.container, "example.com"); err == nil {
			t.Errorf("example.com resolved to %v inside the lab", addrs)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("a name outside the swarm took %v to fail", d)
		}
	})

	t.Run("DNSRoundRobin", func(t *testing.T) {
		dumpOnFailure(t, c)
		// A dnsrr service has no VIP: its name gives its tasks.
		m.MustCLI(t, "service", "create", "-d", "--name", "rr", "--replicas", "2", "--stop-grace-period", "1s",
			"--endpoint-mode", "dnsrr", "--constraint", "node.hostname!=h3", "--network", "front", img, "sleep", "86400")
		t.Cleanup(func() { removeService(m, "rr") })
		rr := c.waitRunning(t, "rr", 2)
		want := sortedAddrs(rr[0].addrs[front], rr[1].addrs[front])
		for _, name := range []string{"rr", "tasks.rr"} {
			harness.Eventually(t, 20*time.Second, "lookup "+name, func() error {
				got, err := lookup(client.container, name)
				if err != nil || !slices.Equal(got, want) {
					return fmt.Errorf("%s resolves to %v (%v), want the tasks %v", name, got, err, want)
				}
				return nil
			})
		}
	})

	t.Run("HealthCheckedTaskJoinsWhenHealthy", func(t *testing.T) {
		dumpOnFailure(t, c)
		// As docker: a task with a health check is behind its service's
		// name and VIP only once the check passes.
		m.MustCLI(t, "service", "create", "-d", "--name", "hc", "--stop-grace-period", "1s", "--constraint", "node.hostname==h1",
			"--network", "front", "--health-cmd", "busybox test -f /ok", "--health-interval", "200ms", "--health-retries", "1000",
			img, "sh", "-c", webScript)
		t.Cleanup(func() { removeService(m, "hc") })
		var cid string
		harness.Eventually(t, 30*time.Second, "hc's container runs", func() error {
			out, err := exec.Command("docker", "ps", "--no-trunc", "--filter", "label=shoal.service.name=hc",
				"--filter", "status=running", "--format", `{{.ID}} {{.Label "shoal.sandbox"}}`).Output()
			if err != nil {
				return err
			}
			cid = ""
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if f := strings.Fields(line); len(f) == 1 {
					cid = f[0] // the task's container, not its sandbox
				}
			}
			if cid == "" {
				return fmt.Errorf("running containers of hc: %q", out)
			}
			return nil
		})
		// Unhealthy for as long as endpoints take to reach every node when
		// they are published (well under a second); the name must give
		// nothing all along.
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			if addrs, err := lookup(client.container, "tasks.hc"); len(addrs) > 0 {
				t.Fatalf("tasks.hc resolves to %v (%v) before hc's health check passed", addrs, err)
			}
		}
		if st := runnableTasks(t, m, "hc")[0].GetStatus().GetState(); st == shoalpb.TaskState_TASK_STATE_RUNNING {
			t.Fatalf("hc is %v before its health check can pass", st)
		}
		mustExec(t, cid, "busybox", "touch", "/ok")
		hc := c.waitRunning(t, "hc", 1)[0]
		want := []netip.Addr{hc.addrs[front]}
		harness.Eventually(t, 20*time.Second, "tasks.hc gives the healthy task", func() error {
			got, err := lookup(client.container, "tasks.hc")
			if err != nil || !slices.Equal(got, want) {
				return fmt.Errorf("tasks.hc resolves to %v (%v), want %v", got, err, want)
			}
			return nil
		})
		name := mustExec(t, hc.container, "hostname")
		harness.Eventually(t, 20*time.Second, "hc answers through its VIP", func() error {
			got, err := get(client.container, "http://hc/")
			if err != nil || got != name {
				return fmt.Errorf("http://hc/ answered %q (%v), want %q", got, err, name)
			}
			return nil
		})
	})

	// vipSpread fetches / through the VIP n times from container and
	// returns what answered, counted.
	vipSpread := func(t *testing.T, container string, n int) map[string]int {
		t.Helper()
		seen := map[string]int{}
		for i := 0; i < n; i++ {
			got, err := get(container, "http://web/")
			if err != nil {
				t.Fatalf("request %d through the VIP: %v", i, err)
			}
			seen[got]++
		}
		return seen
	}

	t.Run("VIPSpreadsOverBackends", func(t *testing.T) {
		dumpOnFailure(t, c)
		seen := vipSpread(t, client.container, 24)
		for _, w := range web {
			if seen[hostnames[w.id]] == 0 {
				t.Errorf("backend %s (%s) never answered through the VIP: %v", w.id, hostnames[w.id], seen)
			}
		}
	})

	t.Run("TaskReachesItsOwnVIP", func(t *testing.T) {
		dumpOnFailure(t, c)
		self := web[0]
		seen := vipSpread(t, self.container, 24)
		if seen[hostnames[self.id]] == 0 {
			t.Errorf("task %s never reached itself through its service's VIP: %v", self.id, seen)
		}
	})

	t.Run("TransfersThroughVIPAndMesh", func(t *testing.T) {
		dumpOnFailure(t, c)
		sum, size := bigSum(t)
		if size < 2<<20 {
			t.Fatalf("the test file is %d bytes, want at least 2 MB", size)
		}
		for i := 0; i < 3; i++ {
			out := mustExec(t, client.container, "sh", "-c", "busybox timeout 10 wget -q -O - http://web/big | busybox md5sum")
			if got := strings.Fields(out); len(got) == 0 || got[0] != sum {
				t.Fatalf("through the VIP: md5 %q, want %s", out, sum)
			}
		}
		// The mesh, from the LAN, on the node without a web task and on
		// one with one.
		for _, h := range []*harness.Host{h3, h1} {
			out, err := hostGet(h2, "http://"+h.IP+":8080/big", "busybox md5sum")
			if err != nil {
				t.Fatalf("mesh via %s: %v", h.Name, err)
			}
			if got := strings.Fields(out); len(got) == 0 || got[0] != sum {
				t.Fatalf("mesh via %s: md5 %q, want %s", h.Name, out, sum)
			}
		}
	})

	t.Run("MeshAnswersOnEveryNode", func(t *testing.T) {
		dumpOnFailure(t, c)
		for _, h := range []*harness.Host{h1, h2, h3} {
			seen := map[string]bool{}
			tries, fails := 0, 0
			harness.Eventually(t, 30*time.Second, "mesh on "+h.Name+" reaches every backend", func() error {
				tries++
				got, err := hostGet(h1, "http://"+h.IP+":8080/", "")
				if err != nil {
					fails++
					return err
				}
				seen[got] = true
				for _, w := range web {
					if !seen[hostnames[w.id]] {
						return fmt.Errorf("backends seen through %s: %v", h.Name, seen)
					}
				}
				return nil
			})
			if fails > 0 || tries > 10 {
				t.Logf("mesh on %s: %d requests, %d failed, before every backend answered", h.Name, tries, fails)
			}
			// Tasks see the node that forwarded as the client: its
			// address on the ingress network.
			got, err := hostGet(h1, "http://"+h.IP+":8080/cgi-bin/ip", "")
			if err != nil {
				t.Fatal(err)
			}
			ip, err := clientAddr(got)
			if err != nil || !netip.MustParsePrefix("198.19.0.0/24").Contains(ip) {
				t.Errorf("through the mesh on %s the task saw client %q, want an ingress address", h.Name, got)
			}
		}
	})

	t.Run("HostModePublishing", func(t *testing.T) {
		dumpOnFailure(t, c)
		m.MustCLI(t, "service", "create", "-d", "--name", "hm", "--stop-grace-period", "1s", "--constraint", "node.hostname==h2",
			"--network", "front", "--publish", "mode=host,published=9090,target=80", img, "sh", "-c", webScript)
		t.Cleanup(func() { removeService(m, "hm") })
		hm := c.waitRunning(t, "hm", 1)[0]
		waitServing(t, client.container, []ovTask{hm}, front)
		want := mustExec(t, hm.container, "hostname")
		harness.Eventually(t, 20*time.Second, "host-mode port on h2", func() error {
			got, err := hostGet(h1, "http://"+h2.IP+":9090/", "")
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("h2:9090 answered %q, want %q", got, want)
			}
			return nil
		})
		// The task sees the client's own address.
		got, err := hostGet(h1, "http://"+h2.IP+":9090/cgi-bin/ip", "")
		if ip, perr := clientAddr(got); err != nil || perr != nil || ip.String() != h1.IP {
			t.Errorf("host-mode task saw client %q (%v), want %s", got, err, h1.IP)
		}
		// Nodes without the task do not publish the port.
		for _, h := range []*harness.Host{h1, h3} {
			if got, err := hostGet(h2, "http://"+h.IP+":9090/", ""); err == nil {
				t.Errorf("%s answers host-mode port 9090 without a task: %q", h.Name, got)
			}
		}
		removeService(m, "hm")
		harness.Eventually(t, 30*time.Second, "host-mode port closed once its task went", func() error {
			if got, err := hostGet(h1, "http://"+h2.IP+":9090/", ""); err == nil {
				return fmt.Errorf("h2:9090 still answers %q", got)
			}
			return nil
		})
	})

	t.Run("NetworksIsolated", func(t *testing.T) {
		dumpOnFailure(t, c)
		m.MustCLI(t, "service", "create", "-d", "--name", "secret", "--stop-grace-period", "1s", "--constraint", "node.hostname==h3",
			"--network", "back", img, "sh", "-c", webScript)
		t.Cleanup(func() { removeService(m, "secret") })
		secret := c.waitRunning(t, "secret", 1)[0]
		// On its own network it is reachable by name (from itself).
		harness.Eventually(t, 20*time.Second, "secret by name on back", func() error {
			_, err := get(secret.container, "http://secret/")
			return err
		})
		// From front (same host, even), neither its address nor its name.
		if got, err := get(client.container, "http://"+secret.addrs[back].String()+"/"); err == nil {
			t.Errorf("a task on front reached a task on back: %q", got)
		}
		if addrs, err := lookup(client.container, "secret"); err == nil {
			t.Errorf("a task on front resolved secret (on back) to %v", addrs)
		}
		// And from back, nothing on front.
		if got, err := get(secret.container, "http://"+web[0].addrs[front].String()+"/"); err == nil {
			t.Errorf("a task on back reached a task on front: %q", got)
		}
	})

	t.Run("ScaledBackends", func(t *testing.T) {
		dumpOnFailure(t, c)
		// Backends added by a scale-up get VIP traffic...
		m.MustCLI(t, "service", "scale", "-d", "web=4")
		scaled := c.waitRunning(t, "web", 4)
		waitServing(t, client.container, scaled, front)
		for _, w := range scaled {
			if _, ok := hostnames[w.id]; !ok {
				hostnames[w.id] = mustExec(t, w.container, "hostname")
			}
		}
		seen := map[string]bool{}
		harness.Eventually(t, 30*time.Second, "every scaled-up backend answers through the VIP", func() error {
			got, err := get(client.container, "http://web/")
			if err != nil {
				return err
			}
			seen[got] = true
			for _, w := range scaled {
				if !seen[hostnames[w.id]] {
					return fmt.Errorf("answered so far: %v", seen)
				}
			}
			return nil
		})
		// ...and those removed by a scale-down get none.
		m.MustCLI(t, "service", "scale", "-d", "web=1")
		left := c.waitRunning(t, "web", 1)[0]
		harness.Eventually(t, 30*time.Second, "the VIP leads to the one task left", func() error {
			s := vipSpread(t, client.container, 12)
			if len(s) != 1 || s[hostnames[left.id]] != 12 {
				return fmt.Errorf("answers after scale-down: %v, want only %s", s, hostnames[left.id])
			}
			return nil
		})
		if addrs, err := lookup(client.container, "tasks.web"); err != nil || !slices.Equal(addrs, []netip.Addr{left.addrs[front]}) {
			t.Errorf("tasks.web after scale-down: %v (%v), want %v", addrs, err, left.addrs[front])
		}
		m.MustCLI(t, "service", "scale", "-d", "web=2")
		web = c.waitRunning(t, "web", 2)
		waitServing(t, client.container, web, front)
		for _, w := range web {
			if _, ok := hostnames[w.id]; !ok {
				hostnames[w.id] = mustExec(t, w.container, "hostname")
			}
		}
	})

	t.Run("DaemonRestartKeepsTraffic", func(t *testing.T) {
		dumpOnFailure(t, c)
		// Requests through the VIP in a loop, in the client, while the
		// client's daemon and a backend's restart. (Not the manager's: a
		// restarted manager serves assignments from its store before it
		// has replayed its Raft log, and its workers then stop tasks they
		// still have — a control-plane matter outside the overlay.)
		log := "/tmp/shoal-vip.log"
		// Each request logs "ok" or "fail", then the time it ended and
		// who answered.
		mustExec(t, client.container, "sh", "-c", "rm -f "+log+"; (while true; do if busybox timeout 2 wget -q -O /tmp/answer http://"+
			webVIP.String()+"/; then echo ok; else echo fail; fi; echo \"$(busybox date +%T) $(cat /tmp/answer 2>/dev/null)\"; rm -f /tmp/answer; sleep 0.1; done > "+log+" 2>&1 &)")
		t.Cleanup(func() { _, _ = dexec(context.Background(), client.container, "busybox", "pkill", "-f", "while true") })
		count := func() int {
			n, _ := strconv.Atoi(mustExec(t, client.container, "sh", "-c", "busybox grep -c -E '^(ok|fail)$' "+log))
			return n
		}
		harness.Eventually(t, 20*time.Second, "requests running before the restart", func() error {
			if n := count(); n < 3 {
				return fmt.Errorf("%d requests so far", n)
			}
			return nil
		})
		if !slices.ContainsFunc(web, func(w ovTask) bool { return w.node == c.ids[h2] }) {
			t.Fatalf("no web task on h2: %+v", web)
		}
		for _, h := range []*harness.Host{h3, h2} {
			h.Restart(t)
		}
		// The restarted daemons serve DNS again, and new tasks.
		harness.Eventually(t, 30*time.Second, "DNS after the restart", func() error {
			got, err := lookup(client.container, "web")
			if err != nil || !slices.Equal(got, []netip.Addr{webVIP}) {
				return fmt.Errorf("web resolves to %v (%v)", got, err)
			}
			return nil
		})
		// Requests keep going past the restarts and the resync after them.
		after := count()
		harness.Eventually(t, 30*time.Second, "requests after the restart", func() error {
			if n := count(); n < after+10 {
				return fmt.Errorf("%d requests since DNS came back", n-after)
			}
			return nil
		})
		out := mustExec(t, client.container, "sh", "-c", "busybox pkill -f 'while true' ; cat "+log)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		fails, total := 0, 0
		for i, l := range lines {
			switch l {
			case "ok":
				total++
			case "fail":
				total++
				fails++
				at := "?"
				if i+1 < len(lines) {
					at = lines[i+1]
				}
				t.Logf("a request through the VIP failed; it ended at %s", at)
			}
		}
		if fails > 0 {
			// Which backend a failed connection went to, and how far it
			// got (SYN_SENT: no answer; CLOSE: reset).
			t.Logf("the client's connections:\n%s", mustExec(t, client.container, "cat", "/proc/net/nf_conntrack"))
			for _, w := range web {
				t.Logf("web task %s (%s)'s connections:\n%s", w.id, hostnames[w.id], mustExec(t, w.container, "cat", "/proc/net/nf_conntrack"))
			}
			t.Errorf("%d of %d requests through the VIP failed across the restarts:\n%s", fails, total, out)
		}
		m.MustCLI(t, "service", "scale", "-d", "web=3")
		web3 := c.waitRunning(t, "web", 3)
		waitServing(t, client.container, web3, front)
		seen := map[string]bool{}
		for _, w := range web3 {
			if _, ok := hostnames[w.id]; !ok {
				hostnames[w.id] = mustExec(t, w.container, "hostname")
			}
		}
		harness.Eventually(t, 30*time.Second, "a task started after the restart answers", func() error {
			got, err := get(client.container, "http://web/")
			if err != nil {
				return err
			}
			seen[got] = true
			for _, w := range web3 {
				if !seen[hostnames[w.id]] {
					return fmt.Errorf("answered so far: %v", seen)
				}
			}
			return nil
		})
		web = web3
	})

	t.Run("DeadNodeLeavesDNS", func(t *testing.T) {
		dumpOnFailure(t, c)
		// h2 runs a web task; kill its daemon (its containers stay, as a
		// crashed machine's would be unreachable anyway).
		var dead ovTask
		for _, w := range web {
			if w.node == c.ids[h2] {
				dead = w
			}
		}
		if dead.id == "" {
			t.Fatalf("no web task on h2: %+v", web)
		}
		observers := []string{client.container}
		for _, w := range web {
			if w.node == c.ids[h1] {
				observers = append(observers, w.container)
				break
			}
		}
		h2.Kill(t)
		for _, obs := range observers {
			harness.Eventually(t, 30*time.Second, "the dead node's task leaves tasks.web", func() error {
				got, err := lookup(obs, "tasks.web")
				if err != nil {
					return err
				}
				if slices.Contains(got, dead.addrs[front]) {
					return fmt.Errorf("tasks.web still lists %s of the dead node: %v", dead.addrs[front], got)
				}
				return nil
			})
		}
		h2.Start(t)
	})

	t.Run("NoLeftovers", func(t *testing.T) {
		dumpOnFailure(t, c)
		m.MustCLI(t, "service", "rm", "web", "client")
		for _, n := range []string{"front", "back"} {
			harness.Eventually(t, 60*time.Second, "network "+n+" removable once its tasks are gone", func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if _, stderr, err := m.CLI(ctx, "network", "rm", n); err != nil {
					return fmt.Errorf("network rm %s: %v: %s", n, err, stderr)
				}
				return nil
			})
		}
		hosts := []*harness.Host{h1, h2, h3}
		for _, h := range hosts {
			id := c.ids[h]
			harness.Eventually(t, 60*time.Second, "nothing of the tasks left on "+h.Name, func() error {
				out, err := exec.Command("docker", "ps", "-aq", "--filter", "label=shoal.node.id="+id).Output()
				if err != nil {
					return err
				}
				if cs := strings.Fields(string(out)); len(cs) > 0 {
					return fmt.Errorf("containers left: %v", cs)
				}
				links, err := hostLinks(h)
				if err != nil {
					return err
				}
				for _, l := range links {
					if strings.HasPrefix(l, "shg") {
						return fmt.Errorf("task interface %s left on the egress bridge", l)
					}
				}
				sandboxes, err := os.ReadDir(filepath.Join(h.DataDir, "swarm", "overlay", "netns"))
				if err != nil {
					return err
				}
				if len(sandboxes) != 1 || sandboxes[0].Name() != "ov-4096" {
					return fmt.Errorf("sandboxes left besides the ingress network's: %v", names(sandboxes))
				}
				return nil
			})
		}
		_ = ingressID
		// Leaving removes the rest: the ingress endpoint, the egress
		// bridge, the node's tables and the sandbox.
		for _, h := range []*harness.Host{h3, h2} {
			h.MustCLI(t, "swarm", "leave")
			links, err := hostLinks(h)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range links {
				if strings.HasPrefix(l, "shoal_") || strings.HasPrefix(l, "shg") {
					t.Errorf("%s: link %s left after leaving", h.Name, l)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			tables, err := h.Exec(ctx, "nft", "list", "tables")
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(tables, "shoal-") {
				t.Errorf("%s: tables left after leaving:\n%s", h.Name, tables)
			}
			if _, err := os.Stat(filepath.Join(h.DataDir, "swarm", "overlay")); !os.IsNotExist(err) {
				t.Errorf("%s: overlay state left after leaving: %v", h.Name, err)
			}
			if mounts := mountsUnder(t, h.DataDir); len(mounts) > 0 {
				t.Errorf("%s: mounts left after leaving: %v", h.Name, mounts)
			}
		}
	})
}

// dumpOnFailure logs the hosts' overlay state when the (sub)test fails,
// before later subtests change it.
func dumpOnFailure(t *testing.T, c *testCluster) {
	t.Cleanup(func() {
		if t.Failed() {
			dumpOverlay(t, c.lab.Hosts())
		}
	})
}

// dumpOverlay logs, for a failed test, the kernel state of every host's
// overlay: its links, nftables tables and, per sandbox, the peers
// programmed on vxlan0.
func dumpOverlay(t *testing.T, hosts []*harness.Host) {
	for _, h := range hosts {
		var b strings.Builder
		run := func(name string, args ...string) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
			fmt.Fprintf(&b, "$ %s %s\n%s", name, strings.Join(args, " "), out)
			if err != nil {
				fmt.Fprintf(&b, "(%v)\n", err)
			}
		}
		run("nsenter", "--net=/run/netns/"+h.NetNS, "ip", "-br", "addr")
		run("nsenter", "--net=/run/netns/"+h.NetNS, "nft", "list", "ruleset")
		dir := filepath.Join(h.DataDir, "swarm", "overlay", "netns")
		sbs, _ := os.ReadDir(dir)
		for _, sb := range sbs {
			p := "--net=" + filepath.Join(dir, sb.Name())
			run("nsenter", p, "ip", "-br", "link")
			run("nsenter", p, "ip", "neigh", "show", "dev", "vxlan0")
			run("nsenter", p, "bridge", "fdb", "show", "dev", "vxlan0")
		}
		t.Logf("overlay state of %s:\n%s", h.Name, b.String())
	}
}

// clientAddr reads httpd's REMOTE_ADDR ("[::ffff:198.18.0.1]" from its
// dual-stack socket).
func clientAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	return a.Unmap(), err
}

// removeService removes a service if it exists (cleanup of a subtest that
// may have failed half-way).
func removeService(m *harness.Host, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _, _ = m.CLI(ctx, "service", "rm", name)
}

func names(es []os.DirEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// hostLinks lists the interfaces of a host's namespace.
func hostLinks(h *harness.Host) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := h.Exec(ctx, "ip", "-o", "link", "show")
	if err != nil {
		return nil, err
	}
	var links []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			links = append(links, strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0])
		}
	}
	return links, nil
}

// mountsUnder lists the mount points below dir.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	return out
}
