package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/integration/harness"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// The data plane does not attach containers to overlays yet: these tests
// check what the managers allocate and how the CLI shows it, not packets.

// inspectedNetwork is the part of `network inspect` the tests read.
type inspectedNetwork struct {
	Name          string
	ID            string `json:"Id"`
	Scope, Driver string
	IPAM          struct {
		Config []struct{ Subnet, Gateway string }
	}
	Options, Labels map[string]string
	Ingress         bool
}

func inspectNetwork(t *testing.T, h *harness.Host, ref string) inspectedNetwork {
	t.Helper()
	var out []inspectedNetwork
	raw := h.MustCLI(t, "network", "inspect", ref)
	if err := json.Unmarshal([]byte(raw), &out); err != nil || len(out) != 1 {
		t.Fatalf("network inspect %s: %v\n%s", ref, err, raw)
	}
	if len(out[0].IPAM.Config) != 1 {
		t.Fatalf("network %s has IPAM config %+v", ref, out[0].IPAM.Config)
	}
	return out[0]
}

// runnableTasks lists a service's tasks the managers still want running,
// through the API, with their attachments.
func runnableTasks(t *testing.T, h *harness.Host, service string) []*shoalpb.Task {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := control(t, h).ListTasks(ctx, &shoalpb.ListTasksRequest{Filters: map[string]*shoalpb.FilterValues{
		"service": {Values: []string{service}}, "desired-state": {Values: []string{"running"}},
	}})
	if err != nil {
		t.Fatalf("list tasks of %s: %v", service, err)
	}
	return resp.GetTasks()
}

// countState counts rows whose current state starts with state.
func countState(rows []taskRow, state string) int {
	n := 0
	for _, r := range rows {
		if strings.EqualFold(r.Desired, "Running") && strings.HasPrefix(r.Current, state) {
			n++
		}
	}
	return n
}

// TestNetworksAndAllocation creates, lists, inspects and removes overlay
// networks, refuses bad input without writing anything, and checks that a
// service's tasks get addresses on its networks (and the ingress network
// for a published port), that an exhausted network keeps a task NEW with
// the reason shown until an address is freed, and that removing services
// frees what they held.
func TestNetworksAndAllocation(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1, 1)
	m := c.managers[0]
	img := harness.BusyboxImage(t)

	info := m.MustCLI(t, "info")
	for _, want := range []string{"Default Address Pool: " + testAddrPool, "SubnetSize: 24", "Data Path Port: 4789"} {
		if !strings.Contains(info, want) {
			t.Errorf("info lacks %q:\n%s", want, info)
		}
	}
	ingress := inspectNetwork(t, m, "ingress")
	if !ingress.Ingress || ingress.IPAM.Config[0].Subnet != "198.19.0.0/24" || ingress.Options["com.docker.network.driver.overlay.vxlanid_list"] != "4096" {
		t.Errorf("ingress network %+v", ingress)
	}

	id := strings.TrimSpace(m.MustCLI(t, "network", "create", "-d", "overlay", "--label", "tier=web", "front"))
	front := inspectNetwork(t, m, "front")
	if front.ID != id || front.Scope != "swarm" || front.Driver != "overlay" || front.Labels["tier"] != "web" ||
		front.IPAM.Config[0].Subnet != "198.19.1.0/24" || front.IPAM.Config[0].Gateway != "198.19.1.1" ||
		front.Options["com.docker.network.driver.overlay.vxlanid_list"] != "4097" {
		t.Errorf("front network %+v (created as %s)", front, id)
	}
	m.MustCLI(t, "network", "create", "--subnet", "198.19.200.0/29", "tiny")
	ls := m.MustCLI(t, "network", "ls")
	for _, want := range []string{"NETWORK ID", "front ", "ingress ", "tiny ", "overlay   swarm"} {
		if !strings.Contains(ls, want) {
			t.Errorf("network ls lacks %q:\n%s", want, ls)
		}
	}
	if q := strings.Fields(m.MustCLI(t, "network", "ls", "-q", "-f", "name=fro")); len(q) != 1 || !strings.HasPrefix(id, q[0]) {
		t.Errorf("network ls -q -f name=fro = %v, want front's ID", q)
	}

	// Bad input is refused, naming the value, and changes nothing.
	expectCLIError(t, m, "subnet 198.19.1.0/25 overlaps network front (198.19.1.0/24)", "network", "create", "--subnet", "198.19.1.0/25", "bad1")
	expectCLIError(t, m, `invalid subnet "198.19.300.0/24"`, "network", "create", "--subnet", "198.19.300.0/24", "bad2")
	expectCLIError(t, m, "network with name front already exists", "network", "create", "front")
	expectCLIError(t, m, "network nope not found", "service", "create", "-d", "--name", "bad3", "--network", "nope", img, "sleep", "3600")
	expectCLIError(t, m, "services cannot join the ingress network", "service", "create", "-d", "--name", "bad4", "--network", "ingress", img)
	if ls := m.MustCLI(t, "network", "ls", "--format", "{{.Name}}"); strings.Contains(ls, "bad") {
		t.Errorf("a refused network was created:\n%s", ls)
	}
	if ls := m.MustCLI(t, "service", "ls", "--format", "{{.Name}}"); strings.Contains(ls, "bad") {
		t.Errorf("a refused service was created:\n%s", ls)
	}

	// A service on front publishing a port: its tasks get an address on
	// front and on the ingress network, the service a VIP on each.
	m.MustCLI(t, "service", "create", "-d", "--name", "web", "--replicas", "2", "--stop-grace-period", "1s",
		"--network", "name=front,alias=www", "-p", "8080:80", img, "sleep", "3600")
	c.waitTasks(t, m, "web", 90*time.Second, func(rows []taskRow) error {
		if n := total(runningPerNode(rows)); n != 2 {
			return fmt.Errorf("%d running", n)
		}
		return nil
	})
	frontNet, ingressNet := netip.MustParsePrefix("198.19.1.0/24"), netip.MustParsePrefix("198.19.0.0/24")
	seen := map[netip.Addr]string{}
	for _, task := range runnableTasks(t, m, "web") {
		if len(task.Networks) != 2 {
			t.Fatalf("task %s attachments %v, want front and ingress", task.Id, task.Networks)
		}
		for i, want := range []netip.Prefix{frontNet, ingressNet} {
			a := task.Networks[i]
			p, err := netip.ParsePrefix(a.GetAddresses()[0])
			if err != nil || !want.Contains(p.Addr()) || p.Addr() == want.Addr().Next() {
				t.Errorf("task %s address %v on %s", task.Id, a.GetAddresses(), want)
			}
			if other, dup := seen[p.Addr()]; dup {
				t.Errorf("address %s of task %s is also %s's", p.Addr(), task.Id, other)
			}
			seen[p.Addr()] = task.Id
		}
		if a := task.Networks[0]; a.NetworkName != "front" || a.Vni != 4097 || strings.Join(a.Aliases, ",") != "www" {
			t.Errorf("task %s front attachment %v", task.Id, a)
		}
	}
	// Every node has its own address on the ingress network, for the
	// routing mesh.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	nodes, err := control(t, m).ListNodes(ctx, &shoalpb.ListNodesRequest{})
	cancel()
	if err != nil || len(nodes.GetNodes()) != 2 {
		t.Fatalf("list nodes: %v, %v", nodes, err)
	}
	for _, n := range nodes.GetNodes() {
		atts := n.GetAttachments()
		if len(atts) != 1 {
			t.Fatalf("node %s attachments %v, want one on ingress", n.Id, atts)
		}
		p, err := netip.ParsePrefix(atts[0].GetAddr())
		if err != nil || atts[0].GetNetworkId() != ingress.ID || !ingressNet.Contains(p.Addr()) || seen[p.Addr()] != "" {
			t.Errorf("node %s ingress attachment %v (tasks hold %v)", n.Id, atts[0], seen)
		}
		seen[p.Addr()] = "node " + n.Id
	}
	vips := m.MustCLI(t, "service", "inspect", "--format", "{{range .Endpoint.VirtualIPs}}{{.Addr}} {{end}}|{{range .Endpoint.Ports}}{{.PublishedPort}}->{{.TargetPort}}{{end}}", "web")
	parts := strings.Split(strings.TrimSpace(vips), "|")
	if len(parts) != 2 || len(strings.Fields(parts[0])) != 2 || parts[1] != "8080->80" {
		t.Fatalf("service inspect endpoint: %q", vips)
	}
	for i, v := range strings.Fields(parts[0]) {
		p := netip.MustParsePrefix(v)
		if !([]netip.Prefix{frontNet, ingressNet})[i].Contains(p.Addr()) || seen[p.Addr()] != "" {
			t.Errorf("VIP %s (tasks and nodes hold %v)", v, seen)
		}
	}
	if out := m.MustCLI(t, "service", "ls", "--format", "{{.Name}} {{.Ports}}"); !strings.Contains(out, "web *:8080->80/tcp") {
		t.Errorf("service ls: %q", out)
	}
	expectCLIError(t, m, "network front is in use by service web", "network", "rm", "front")
	expectCLIError(t, m, "port 8080/tcp is already in use by service web", "service", "create", "-d", "--name", "web2", "-p", "8080:81", img)

	// tiny holds five addresses: four tasks and a VIP fill it; a task of
	// another service waits NEW, saying why, until one is freed.
	m.MustCLI(t, "service", "create", "-d", "--name", "small", "--replicas", "4", "--stop-grace-period", "1s", "--network", "tiny", img, "sleep", "3600")
	c.waitTasks(t, m, "small", 90*time.Second, func(rows []taskRow) error {
		if n := total(runningPerNode(rows)); n != 4 {
			return fmt.Errorf("%d running", n)
		}
		return nil
	})
	m.MustCLI(t, "service", "create", "-d", "--name", "extra", "--endpoint-mode", "dnsrr", "--stop-grace-period", "1s", "--network", "tiny", img, "sleep", "3600")
	const noAddress = "network tiny: no IPv4 address left in 198.19.200.0/29"
	c.waitTasks(t, m, "extra", 90*time.Second, func(rows []taskRow) error {
		if countState(rows, "New") != 1 || !strings.Contains(rows[0].Error, noAddress) {
			return fmt.Errorf("want one NEW task saying %q: %+v", noAddress, rows)
		}
		return nil
	})
	m.MustCLI(t, "service", "scale", "-d", "small=3")
	c.waitTasks(t, m, "extra", 90*time.Second, func(rows []taskRow) error {
		if n := total(runningPerNode(rows)); n != 1 {
			return fmt.Errorf("%d running once an address was freed: %+v", n, rows)
		}
		return nil
	})

	// Removing the services frees what they held: the networks can go,
	// and the port can be published again.
	m.MustCLI(t, "service", "rm", "web", "small", "extra")
	left := []string{"front", "tiny"}
	harness.Eventually(t, 60*time.Second, "networks removable once their tasks shut down", func() error {
		for len(left) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, stderr, err := m.CLI(ctx, "network", "rm", left[0])
			cancel()
			if err != nil {
				return fmt.Errorf("network rm %s: %v: %s", left[0], err, stderr)
			}
			left = left[1:]
		}
		return nil
	})
	if ls := m.MustCLI(t, "network", "ls", "--format", "{{.Name}}"); strings.TrimSpace(ls) != "ingress" {
		t.Errorf("networks left: %q", ls)
	}
	m.MustCLI(t, "service", "create", "-d", "--name", "web2", "-p", "8080:81", img, "sleep", "3600")
	c.waitTasks(t, m, "web2", 90*time.Second, func(rows []taskRow) error {
		if n := total(runningPerNode(rows)); n != 1 {
			return fmt.Errorf("%d running", n)
		}
		return nil
	})
}

// TestInitNetworkConfigAndPoolExhaustion checks that swarm init refuses a
// bad network configuration without making a swarm, and that a tiny
// default address pool runs out with a clear error.
func TestInitNetworkConfigAndPoolExhaustion(t *testing.T) {
	t.Parallel()
	harness.RequireRoot(t)
	lab := harness.NewLab(t, harness.LabOptions{Binary: harness.BuildShoal(t, harness.RaceEnabled)})
	h := lab.AddHost(t)
	h.Start(t)
	t.Cleanup(func() {
		if h.Running() {
			h.Kill(t)
		}
	})
	for _, c := range []struct {
		want string
		args []string
	}{
		{`invalid default address pool "198.19.0.0/33"`, []string{"--default-addr-pool", "198.19.0.0/33"}},
		{"invalid default address pool mask length 30: must be between 23 (the prefix length of pool 198.19.0.0/23) and 29", []string{"--default-addr-pool", "198.19.0.0/23", "--default-addr-pool-mask-length", "30"}},
		{"invalid default address pool mask length 16", []string{"--default-addr-pool", "198.19.0.0/23", "--default-addr-pool-mask-length", "16"}},
		{`invalid default address pool "198.19.1.0/24": it overlaps pool 198.19.0.0/23`, []string{"--default-addr-pool", "198.19.0.0/23", "--default-addr-pool", "198.19.1.0/24"}},
		{"invalid --data-path-port 80", []string{"--data-path-port", "80"}},
	} {
		expectCLIError(t, h, c.want, append([]string{"swarm", "init", "--advertise-addr", h.IP}, c.args...)...)
	}
	if state := strings.TrimSpace(h.MustCLI(t, "info", "--format", "{{.Swarm.LocalNodeState}}")); state != "inactive" {
		t.Fatalf("after refused inits the node is %q", state)
	}

	h.MustCLI(t, "swarm", "init", "--advertise-addr", h.IP, "--default-addr-pool", "198.19.0.0/23", "--data-path-port", "7789")
	if out := h.MustCLI(t, "info", "--format", "{{.Swarm.Cluster.DefaultAddrPool}} {{.Swarm.Cluster.SubnetSize}} {{.Swarm.Cluster.DataPathPort}}"); strings.TrimSpace(out) != "[198.19.0.0/23] 24 7789" {
		t.Errorf("info: %q", out)
	}
	// The ingress network took the first /24, a first network the second.
	h.MustCLI(t, "network", "create", "first")
	if n := inspectNetwork(t, h, "first"); n.IPAM.Config[0].Subnet != "198.19.1.0/24" {
		t.Errorf("first network %+v", n)
	}
	expectCLIError(t, h, "no /24 subnet left in the default address pools (198.19.0.0/23): give network second a subnet", "network", "create", "second")
	if ls := h.MustCLI(t, "network", "ls", "--format", "{{.Name}}"); strings.Contains(ls, "second") {
		t.Errorf("network ls after the refused create: %q", ls)
	}
	// A subnet given by hand still works.
	h.MustCLI(t, "network", "create", "--subnet", "198.18.250.0/24", "second")
}
