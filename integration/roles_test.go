package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/integration/harness"
)

// TestPromoteDemote promotes two workers to a three-manager cluster,
// demotes the leader (which hands leadership over first), demotes back down
// to one manager, and refuses to demote the last one.
func TestPromoteDemote(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1, 2)
	m := c.managers[0]
	w1, w2 := c.workers[0], c.workers[1]

	out := m.MustCLI(t, "node", "promote", w1.Name, w2.Name)
	if !strings.Contains(out, "promoted to a manager") {
		t.Fatalf("promote output %q", out)
	}
	c.managers = append(c.managers, w1, w2)
	c.workers = nil
	c.waitNodes(t, m, 45*time.Second, func(rows []nodeRow) error {
		for _, h := range []*harness.Host{w1, w2} {
			if r := rowOf(rows, h.Name); r.ManagerStatus != "Reachable" {
				return fmt.Errorf("%s manager status %q, want Reachable", h.Name, r.ManagerStatus)
			}
		}
		return nil
	})
	// The promoted nodes answer the cluster API themselves.
	harness.Eventually(t, 20*time.Second, "node ls on a promoted node", func() error {
		_, err := listNodes(t.Context(), w1)
		return err
	})
	if got := strings.TrimSpace(w1.MustCLI(t, "info", "--format", "{{.Swarm.ControlAvailable}}")); got != "true" {
		t.Fatalf("promoted node says Is Manager %q", got)
	}

	// Demoting the leader transfers leadership before it is removed.
	out = m.MustCLI(t, "node", "demote", m.Name)
	if !strings.Contains(out, "demoted") {
		t.Fatalf("demote output %q", out)
	}
	rows := c.waitNodes(t, w1, 45*time.Second, func(rows []nodeRow) error {
		if r := rowOf(rows, m.Name); r.ManagerStatus != "" {
			return fmt.Errorf("demoted leader still shows %q", r.ManagerStatus)
		}
		leaders := 0
		for _, h := range []*harness.Host{w1, w2} {
			switch rowOf(rows, h.Name).ManagerStatus {
			case "Leader":
				leaders++
			case "Reachable":
			default:
				return fmt.Errorf("%s is %q", h.Name, rowOf(rows, h.Name).ManagerStatus)
			}
		}
		if leaders != 1 {
			return fmt.Errorf("%d leaders among the remaining managers", leaders)
		}
		return nil
	})
	if r := rowOf(rows, m.Name); r.Status != "Ready" {
		t.Fatalf("demoted node is %s", r.Status)
	}
	harness.Eventually(t, 30*time.Second, "demoted node refuses cluster calls", func() error {
		_, stderr, err := m.CLI(t.Context(), "node", "ls")
		if err == nil || !strings.Contains(stderr, "not a swarm manager") {
			return fmt.Errorf("node ls on the demoted node: err %v, stderr %q", err, stderr)
		}
		return nil
	})

	w2.MustCLI(t, "node", "demote", w2.Name)
	c.waitNodes(t, w1, 45*time.Second, func(rows []nodeRow) error {
		if r := rowOf(rows, w2.Name); r.ManagerStatus != "" {
			return fmt.Errorf("%s still shows %q", w2.Name, r.ManagerStatus)
		}
		if r := rowOf(rows, w1.Name); r.ManagerStatus != "Leader" {
			return fmt.Errorf("%s is %q, want Leader", w1.Name, r.ManagerStatus)
		}
		return nil
	})
	expectCLIError(t, w1, "attempting to demote the last manager of the swarm", "node", "demote", w1.Name)

	// And back: the demoted node can be promoted again.
	w1.MustCLI(t, "node", "promote", m.Name)
	c.waitNodes(t, w1, 45*time.Second, func(rows []nodeRow) error {
		if r := rowOf(rows, m.Name); r.ManagerStatus != "Reachable" {
			return fmt.Errorf("re-promoted %s is %q", m.Name, r.ManagerStatus)
		}
		return nil
	})
}

// TestNodeCommandsRefuseBadInput checks that bad references and values are
// refused with the value named, and change nothing.
func TestNodeCommandsRefuseBadInput(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1, 1)
	m := c.managers[0]
	expectCLIError(t, m, "nosuchnode", "node", "inspect", "nosuchnode")
	expectCLIError(t, m, "nosuchnode", "node", "update", "--availability", "drain", "nosuchnode")
	expectCLIError(t, m, "sideways", "node", "update", "--availability", "sideways", c.workers[0].Name)
	expectCLIError(t, m, "is not down", "node", "rm", c.workers[0].Name)
	rows := c.waitNodes(t, m, 10*time.Second, func([]nodeRow) error { return nil })
	if r := rowOf(rows, c.workers[0].Name); r.Availability != "Active" || r.Status != "Ready" {
		t.Fatalf("refused commands changed the worker: %+v", r)
	}
	expectCLIError(t, m, "30m0s", "swarm", "update", "--cert-expiry", "30m")
	expectCLIError(t, m, "2m0s", "swarm", "update", "--dispatcher-heartbeat", "2m")
	m.MustCLI(t, "swarm", "update", "--dispatcher-heartbeat", "2s")
	harness.Eventually(t, 20*time.Second, "the worker learns the new heartbeat period", func() error {
		if got := strings.TrimSpace(c.workers[0].MustCLI(t, "info", "--format", "{{.Swarm.Cluster.Spec.Dispatcher.HeartbeatPeriod}}")); got != "2s" {
			return fmt.Errorf("worker heartbeat period %q", got)
		}
		return nil
	})
	m.MustCLI(t, "node", "update", "--availability", "drain", "--label-add", "zone=a", c.workers[0].Name)
	got := strings.TrimSpace(m.MustCLI(t, "node", "inspect", "--format", "{{.Spec.Availability}} {{index .Spec.Labels \"zone\"}}", c.workers[0].Name))
	if got != "drain a" {
		t.Fatalf("after update: %q", got)
	}
}
