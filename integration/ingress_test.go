package integration

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/integration/harness"
)

// TestReplaceIngressNetwork replaces the swarm's routing-mesh network on a
// running cluster, as with Docker: `network rm ingress` is refused while a
// service publishes a port on it and accepted once none does; every node
// then drops its endpoint and the network's sandbox; after `network create
// --ingress` every node moves its routing mesh to the new network without
// a restart, a new published port answers on every node (one without the
// task included), and a restarted node comes back on the new network.
func TestReplaceIngressNetwork(t *testing.T) {
	c := newCluster(t, 1, 2)
	img := harness.BusyboxImage(t)
	m := c.managers[0]
	h1, h2, h3 := m, c.workers[0], c.workers[1]
	hosts := []*harness.Host{h1, h2, h3}
	t.Cleanup(func() { removeNodeContainers(t, c.ids) })
	dumpOnFailure(t, c)

	old := inspectNetwork(t, m, "ingress")
	oldSubnet := netip.MustParsePrefix(old.IPAM.Config[0].Subnet)
	// publish runs a web service on h2 publishing port, and checks the
	// mesh answers on every node over the ingress subnet.
	publish := func(name string, port int, subnet netip.Prefix) {
		m.MustCLI(t, "service", "create", "-d", "--name", name, "--stop-grace-period", "1s", "--constraint", "node.hostname==h2",
			"-p", fmt.Sprintf("%d:80", port), img, "sh", "-c", webScript)
		t.Cleanup(func() { removeService(m, name) })
		c.waitRunning(t, name, 1)
		for _, h := range hosts {
			meshAnswers(t, h3, h, port, subnet)
		}
	}
	// The mesh works on the first ingress network.
	publish("web", 8080, oldSubnet)

	expectCLIError(t, m, "publishes port", "network", "rm", "ingress")
	m.MustCLI(t, "service", "rm", "web")
	harness.Eventually(t, 60*time.Second, "ingress removable once web's task is gone", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, stderr, err := m.CLI(ctx, "network", "rm", "ingress"); err != nil {
			return fmt.Errorf("network rm ingress: %v: %s", err, stderr)
		}
		return nil
	})
	// Every node takes its endpoint down and removes the sandbox, and a
	// restarted daemon would come up without an ingress network.
	for _, h := range hosts {
		harness.Eventually(t, 30*time.Second, h.Name+" leaves the removed ingress network", func() error {
			if addrs, err := ingressAddrs(h); err != nil || len(addrs) > 0 {
				return fmt.Errorf("shoal_ing0 still there with %v (%v)", addrs, err)
			}
			if sbs := sandboxNames(t, h); len(sbs) > 0 {
				return fmt.Errorf("sandboxes left: %v", sbs)
			}
			if cfg := overlayConfigFile(t, h); strings.Contains(cfg, old.ID) {
				return fmt.Errorf("config.json still names %s:\n%s", old.ID, cfg)
			}
			return nil
		})
	}
	if out, err := hostGet(h3, "http://"+h1.IP+":8080/", ""); err == nil {
		t.Errorf("h1 still answers 8080 after the ingress network went: %q", out)
	}

	// The new ingress network.
	newSubnet := netip.MustParsePrefix("198.19.200.0/24")
	m.MustCLI(t, "network", "create", "-d", "overlay", "--ingress", "--subnet", newSubnet.String(), "newingress")
	nw := inspectNetwork(t, m, "newingress")
	if !nw.Ingress {
		t.Fatalf("newingress is not the ingress network: %+v", nw)
	}
	for _, h := range hosts {
		harness.Eventually(t, 30*time.Second, h.Name+" joins the new ingress network", func() error {
			addrs, err := ingressAddrs(h)
			if err != nil {
				return err
			}
			if len(addrs) != 1 || !newSubnet.Contains(addrs[0].Addr()) {
				return fmt.Errorf("shoal_ing0 addresses %v, want one in %s", addrs, newSubnet)
			}
			if sbs := sandboxNames(t, h); len(sbs) != 1 {
				return fmt.Errorf("sandboxes %v, want the new ingress network's", sbs)
			}
			if cfg := overlayConfigFile(t, h); !strings.Contains(cfg, nw.ID) {
				return fmt.Errorf("config.json does not name %s:\n%s", nw.ID, cfg)
			}
			return nil
		})
	}

	publish("web2", 8081, newSubnet)

	// A restarted node (without the task) comes back on the new network.
	h3.Restart(t)
	harness.Eventually(t, 30*time.Second, "h3 on the new ingress network after a restart", func() error {
		addrs, err := ingressAddrs(h3)
		if err != nil || len(addrs) != 1 || !newSubnet.Contains(addrs[0].Addr()) {
			return fmt.Errorf("shoal_ing0 addresses %v (%v), want one in %s", addrs, err, newSubnet)
		}
		return nil
	})
	meshAnswers(t, h1, h3, 8081, newSubnet)
}

// meshAnswers checks, from host from, that port on host via serves web's
// page, and that the task sees the request come from via's address on the
// ingress network (subnet).
func meshAnswers(t *testing.T, from, via *harness.Host, port int, subnet netip.Prefix) {
	t.Helper()
	url := fmt.Sprintf("http://%s:%d/cgi-bin/ip", via.IP, port)
	harness.Eventually(t, 30*time.Second, fmt.Sprintf("routing mesh on %s:%d", via.Name, port), func() error {
		got, err := hostGet(from, url, "")
		if err != nil {
			return err
		}
		ip, err := clientAddr(got)
		if err != nil || !subnet.Contains(ip) {
			return fmt.Errorf("through %s the task saw client %q, want an address in %s", via.Name, got, subnet)
		}
		return nil
	})
}

// ingressAddrs lists the IPv4 addresses of the host's routing-mesh
// endpoint, none when it has none.
func ingressAddrs(h *harness.Host) ([]netip.Prefix, error) {
	links, err := hostLinks(h)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(links, "shoal_ing0") {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := h.Exec(ctx, "ip", "-o", "-4", "addr", "show", "dev", "shoal_ing0")
	if err != nil {
		return nil, err
	}
	var addrs []netip.Prefix
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if i := slices.Index(f, "inet"); i >= 0 && i+1 < len(f) {
			if p, err := netip.ParsePrefix(f[i+1]); err == nil {
				addrs = append(addrs, p)
			}
		}
	}
	if len(addrs) == 0 {
		// A link without an address is a leftover too.
		return nil, fmt.Errorf("shoal_ing0 without an address")
	}
	return addrs, nil
}

// sandboxNames lists the host's overlay sandboxes.
func sandboxNames(t *testing.T, h *harness.Host) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(h.DataDir, "swarm", "overlay", "netns"))
	if err != nil {
		t.Fatal(err)
	}
	return names(ents)
}

// overlayConfigFile is the overlay configuration the host's daemon saved.
func overlayConfigFile(t *testing.T, h *harness.Host) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.DataDir, "swarm", "overlay", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
