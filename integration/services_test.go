package integration

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/integration/harness"
)

type taskRow struct {
	Name, Node, Desired, Current, Error string
}

func serviceTasks(ctx context.Context, h *harness.Host, service string) ([]taskRow, error) {
	out, stderr, err := h.CLI(ctx, "service", "ps", "--no-trunc", "--format", "{{.Name}}|{{.Node}}|{{.DesiredState}}|{{.CurrentState}}|{{.Error}}", service)
	if err != nil {
		return nil, fmt.Errorf("service ps %s: %v: %s", service, err, stderr)
	}
	var rows []taskRow
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.SplitN(line, "|", 5)
		if len(f) == 5 {
			rows = append(rows, taskRow{f[0], f[1], f[2], f[3], f[4]})
		}
	}
	return rows, nil
}

// runningPerNode counts the tasks of a service that run and should.
func runningPerNode(rows []taskRow) map[string]int {
	out := map[string]int{}
	for _, r := range rows {
		if strings.EqualFold(r.Desired, "Running") && strings.HasPrefix(r.Current, "Running") {
			out[r.Node]++
		}
	}
	return out
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func (c *testCluster) waitTasks(t *testing.T, h *harness.Host, service string, timeout time.Duration, check func([]taskRow) error) []taskRow {
	t.Helper()
	var rows []taskRow
	harness.Eventually(t, timeout, "tasks of "+service, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		if rows, err = serviceTasks(ctx, h, service); err != nil {
			return err
		}
		return check(rows)
	})
	return rows
}

// runningContainers counts the running containers of a service on the
// engine, by the labels the executor sets.
func runningContainers(t *testing.T, service string) int {
	t.Helper()
	out, err := exec.Command("docker", "ps", "-q", "--filter", "label=shoal.service.name="+service).Output()
	if err != nil {
		t.Fatalf("docker ps: %v", err)
	}
	return len(strings.Fields(string(out)))
}

// TestServiceSpreadScaleAndReschedule runs a replicated service on three
// nodes: tasks spread evenly as real containers, scale up and down, and
// move off a worker killed with SIGKILL; when the worker comes back, the
// containers it ran before are stopped.
func TestServiceSpreadScaleAndReschedule(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1, 2)
	m := c.managers[0]
	img := harness.BusyboxImage(t)
	svc := fmt.Sprintf("web%d", time.Now().UnixNano()%100000)
	m.MustCLI(t, "service", "create", "-d", "--name", svc, "--replicas", "6", "--stop-grace-period", "1s", img, "sleep", "3600")
	c.waitTasks(t, m, svc, 60*time.Second, func(rows []taskRow) error {
		per := runningPerNode(rows)
		if total(per) != 6 || len(per) != 3 {
			return fmt.Errorf("running per node %v, want 6 over 3 nodes", per)
		}
		for n, k := range per {
			if k != 2 {
				return fmt.Errorf("node %s runs %d tasks, want 2 each", n, k)
			}
		}
		return nil
	})
	if n := runningContainers(t, svc); n != 6 {
		t.Fatalf("%d running containers, want 6", n)
	}
	if out := m.MustCLI(t, "service", "ls", "--format", "{{.Name}} {{.Replicas}}"); !strings.Contains(out, svc+" 6/6") {
		t.Fatalf("service ls: %q", out)
	}

	m.MustCLI(t, "service", "scale", "-d", svc+"=2")
	c.waitTasks(t, m, svc, 60*time.Second, func(rows []taskRow) error {
		if n := total(runningPerNode(rows)); n != 2 {
			return fmt.Errorf("%d running after scaling to 2", n)
		}
		return nil
	})
	harness.Eventually(t, 30*time.Second, "containers stopped after scale-down", func() error {
		if n := runningContainers(t, svc); n != 2 {
			return fmt.Errorf("%d running containers", n)
		}
		return nil
	})
	m.MustCLI(t, "service", "scale", "-d", svc+"=4")
	rows := c.waitTasks(t, m, svc, 60*time.Second, func(rows []taskRow) error {
		if n := total(runningPerNode(rows)); n != 4 {
			return fmt.Errorf("%d running after scaling to 4", n)
		}
		return nil
	})

	// Kill a worker that runs tasks; they come back on the other nodes.
	var victim *harness.Host
	per := runningPerNode(rows)
	for _, w := range c.workers {
		if per[w.Name] > 0 {
			victim = w
			break
		}
	}
	if victim == nil {
		t.Fatalf("no worker runs a task: %v", per)
	}
	victim.Kill(t)
	killed := time.Now()
	c.waitTasks(t, m, svc, 60*time.Second, func(rows []taskRow) error {
		per := runningPerNode(rows)
		if per[victim.Name] != 0 {
			return fmt.Errorf("tasks still counted on the dead node: %v", per)
		}
		if total(per) != 4 {
			return fmt.Errorf("running per node %v, want 4 on the live nodes", per)
		}
		return nil
	})
	t.Logf("tasks of the killed worker running elsewhere %.1fs after the kill", time.Since(killed).Seconds())

	// The worker returns: what it ran before is stopped, as its tasks now
	// run elsewhere.
	victim.Start(t)
	harness.Eventually(t, 60*time.Second, "old containers stopped on the returning worker", func() error {
		if n := runningContainers(t, svc); n != 4 {
			return fmt.Errorf("%d running containers, want 4", n)
		}
		return nil
	})
}

// TestServiceUnschedulableAndMissingImage checks that a task that cannot
// be placed says why, a task whose image is missing fails naming image and
// node, and neither blocks another service.
func TestServiceUnschedulableAndMissingImage(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1, 1)
	m := c.managers[0]
	img := harness.BusyboxImage(t)
	m.MustCLI(t, "service", "create", "-d", "--name", "mars", "--constraint", "node.labels.zone==mars", img, "sleep", "3600")
	m.MustCLI(t, "service", "create", "-d", "--name", "ghost", "shoal-it/no-such-image:1")
	m.MustCLI(t, "service", "create", "-d", "--name", "fine", "--replicas", "2", img, "sleep", "3600")
	c.waitTasks(t, m, "mars", 30*time.Second, func(rows []taskRow) error {
		for _, r := range rows {
			if strings.HasPrefix(r.Current, "Pending") && strings.Contains(r.Error, "no suitable node") && strings.Contains(r.Error, "node.labels.zone==mars") {
				return nil
			}
		}
		return fmt.Errorf("no pending task explained: %+v", rows)
	})
	c.waitTasks(t, m, "ghost", 30*time.Second, func(rows []taskRow) error {
		for _, r := range rows {
			if strings.Contains(r.Error, "shoal-it/no-such-image:1") && strings.Contains(r.Error, r.Node) && r.Node != "" {
				return nil
			}
		}
		return fmt.Errorf("no task names the missing image and its node: %+v", rows)
	})
	c.waitTasks(t, m, "fine", 60*time.Second, func(rows []taskRow) error {
		if n := total(runningPerNode(rows)); n != 2 {
			return fmt.Errorf("%d running", n)
		}
		return nil
	})
	// Labelling a node makes the pending task placeable.
	m.MustCLI(t, "node", "update", "--label-add", "zone=mars", c.workers[0].Name)
	c.waitTasks(t, m, "mars", 60*time.Second, func(rows []taskRow) error {
		per := runningPerNode(rows)
		if per[c.workers[0].Name] != 1 {
			return fmt.Errorf("running per node %v, want the task on %s", per, c.workers[0].Name)
		}
		return nil
	})
}

// TestManagerRestartKeepsContainers restarts the daemon of a node running
// tasks: its containers are adopted, not restarted.
func TestManagerRestartKeepsContainers(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1, 0)
	m := c.managers[0]
	img := harness.BusyboxImage(t)
	m.MustCLI(t, "service", "create", "-d", "--name", "keep", "--replicas", "2", img, "sleep", "3600")
	c.waitTasks(t, m, "keep", 60*time.Second, func(rows []taskRow) error {
		if n := total(runningPerNode(rows)); n != 2 {
			return fmt.Errorf("%d running", n)
		}
		return nil
	})
	before := containerStarts(t, "keep")
	m.Stop(t)
	m.Start(t)
	c.waitTasks(t, m, "keep", 60*time.Second, func(rows []taskRow) error {
		if n := total(runningPerNode(rows)); n != 2 {
			return fmt.Errorf("%d running", n)
		}
		return nil
	})
	after := containerStarts(t, "keep")
	if len(after) != 2 {
		t.Fatalf("containers after restart: %v", after)
	}
	for id, started := range before {
		if after[id] != started {
			t.Fatalf("container %s: started %q before the restart, %q after", id, started, after[id])
		}
	}
}

// containerStarts maps a service's container IDs to their start times.
func containerStarts(t *testing.T, service string) map[string]string {
	t.Helper()
	out, err := exec.Command("docker", "ps", "-q", "--no-trunc", "--filter", "label=shoal.service.name="+service).Output()
	if err != nil {
		t.Fatal(err)
	}
	starts := map[string]string{}
	for _, id := range strings.Fields(string(out)) {
		s, err := exec.Command("docker", "inspect", "-f", "{{.State.StartedAt}}", id).Output()
		if err != nil {
			t.Fatal(err)
		}
		starts[id] = strings.TrimSpace(string(s))
	}
	return starts
}

// TestGlobalServiceAndJob runs a global service (one task per node,
// following a drain) and a replicated job to completion.
func TestGlobalServiceAndJob(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1, 2)
	m := c.managers[0]
	img := harness.BusyboxImage(t)
	m.MustCLI(t, "service", "create", "-d", "--name", "agent", "--mode", "global", img, "sleep", "3600")
	c.waitTasks(t, m, "agent", 60*time.Second, func(rows []taskRow) error {
		per := runningPerNode(rows)
		if len(per) != 3 || total(per) != 3 {
			return fmt.Errorf("running per node %v, want one on each of 3", per)
		}
		return nil
	})
	m.MustCLI(t, "node", "update", "--availability", "drain", c.workers[0].Name)
	c.waitTasks(t, m, "agent", 60*time.Second, func(rows []taskRow) error {
		per := runningPerNode(rows)
		if per[c.workers[0].Name] != 0 || total(per) != 2 {
			return fmt.Errorf("running per node %v after draining %s", per, c.workers[0].Name)
		}
		return nil
	})

	m.MustCLI(t, "service", "create", "-d", "--name", "batch", "--mode", "replicated-job", "--replicas", "3", img, "true")
	c.waitTasks(t, m, "batch", 60*time.Second, func(rows []taskRow) error {
		done := 0
		for _, r := range rows {
			if strings.HasPrefix(r.Current, "Complete") {
				done++
			}
		}
		if done != 3 {
			return fmt.Errorf("%d tasks complete, want 3: %+v", done, rows)
		}
		return nil
	})
}
