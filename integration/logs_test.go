package integration

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/integration/harness"
)

// TestServiceLogs reads the output of a service's containers on two
// nodes through the manager's log broker: both tasks' lines, each with its
// task and node, stderr apart, --tail, and a follow that sees new lines.
func TestServiceLogs(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1, 1)
	m := c.managers[0]
	img := harness.BusyboxImage(t)
	svc := fmt.Sprintf("logs%d", time.Now().UnixNano()%100000)
	m.MustCLI(t, "service", "create", "-d", "--name", svc, "--replicas", "2", "--stop-grace-period", "1s", img,
		"sh", "-c", "echo hello-$HOSTNAME; echo oops >&2; sleep 3600")
	c.waitTasks(t, m, svc, 60*time.Second, func(rows []taskRow) error {
		if per := runningPerNode(rows); total(per) != 2 || len(per) != 2 {
			return fmt.Errorf("running per node %v, want one task on each node", per)
		}
		return nil
	})

	nodes := m.Name + "|" + c.workers[0].Name
	hello := regexp.MustCompile(`^` + svc + `\.[12]\.[0-9a-z]{12}@(` + nodes + `)    \| hello-\S+$`)
	oops := regexp.MustCompile(`^` + svc + `\.[12]\.[0-9a-z]{12}@(` + nodes + `)    \| oops$`)
	var stdout, stderr string
	harness.Eventually(t, 30*time.Second, "both tasks' lines in service logs", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var err error
		stdout, stderr, err = m.CLI(ctx, "service", "logs", svc)
		if err != nil {
			return fmt.Errorf("service logs: %v: %s", err, stderr)
		}
		if got := matching(stdout, hello); len(got) != 2 || got[0] == got[1] {
			return fmt.Errorf("hello lines from %v in stdout %q", got, stdout)
		}
		if got := matching(stderr, oops); len(got) != 2 {
			return fmt.Errorf("oops lines from %v in stderr %q", got, stderr)
		}
		return nil
	})
	if strings.Contains(stdout, "oops") || strings.Contains(stderr, "hello-") {
		t.Errorf("streams mixed up:\nstdout %q\nstderr %q", stdout, stderr)
	}

	// One line of each task, from either stream (the engine orders the
	// two streams as it received them).
	tctx, tcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer tcancel()
	stdout, stderr, err := m.CLI(tctx, "service", "logs", "--tail", "1", svc)
	if err != nil {
		t.Fatalf("service logs --tail 1: %v: %s", err, stderr)
	}
	if got := append(matching(stdout, hello), matching(stderr, oops)...); len(got) != 2 || got[0] == got[1] {
		t.Errorf("--tail 1 printed lines of %v:\nstdout %q\nstderr %q", got, stdout, stderr)
	}
	raw := m.MustCLI(t, "service", "logs", "--raw", svc)
	for _, l := range strings.Split(strings.TrimSpace(raw), "\n") {
		if !strings.HasPrefix(l, "hello-") {
			t.Errorf("--raw line %q", l)
		}
	}

	ticker := svc + "t"
	m.MustCLI(t, "service", "create", "-d", "--name", ticker, "--stop-grace-period", "1s", img,
		"sh", "-c", "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 1; done")
	c.waitTasks(t, m, ticker, 60*time.Second, func(rows []taskRow) error {
		if n := total(runningPerNode(rows)); n != 1 {
			return fmt.Errorf("%d running", n)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, errOut, err := m.CLI(ctx, "service", "logs", "-f", "--tail", "0", ticker)
	if ctx.Err() == nil {
		t.Fatalf("service logs -f ended by itself: %v\nstdout %q\nstderr %q", err, out, errOut)
	}
	if n := strings.Count(out, "| tick-"); n < 2 {
		t.Fatalf("followed %d new lines in 10s, want at least 2:\nstdout %q\nstderr %q", n, out, errOut)
	}
}

// matching returns the task prefix of each line of out matching re.
func matching(out string, re *regexp.Regexp) []string {
	var got []string
	for _, l := range strings.Split(out, "\n") {
		if re.MatchString(l) {
			prefix, _, _ := strings.Cut(l, "    |")
			got = append(got, prefix)
		}
	}
	return got
}

// TestServiceLogsFromEveryManager reads a worker's task output through
// each of three managers: a worker listens for log requests from every
// manager it knows, not only the one it takes assignments from.
func TestServiceLogsFromEveryManager(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, 1)
	m := c.managers[0]
	w := c.workers[0]
	img := harness.BusyboxImage(t)
	svc := fmt.Sprintf("mlogs%d", time.Now().UnixNano()%100000)
	m.MustCLI(t, "service", "create", "-d", "--name", svc, "--constraint", "node.role==worker", "--stop-grace-period", "1s", img,
		"sh", "-c", "echo hello-from-worker; sleep 3600")
	c.waitTasks(t, m, svc, 60*time.Second, func(rows []taskRow) error {
		if per := runningPerNode(rows); per[w.Name] != 1 {
			return fmt.Errorf("running per node %v, want the task on %s", per, w.Name)
		}
		return nil
	})
	for _, mgr := range c.managers {
		harness.Eventually(t, 30*time.Second, "the worker's line through "+mgr.Name, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			stdout, stderr, err := mgr.CLI(ctx, "service", "logs", "--raw", svc)
			if err != nil {
				return fmt.Errorf("service logs on %s: %v: %s", mgr.Name, err, stderr)
			}
			if strings.TrimSpace(stdout) != "hello-from-worker" {
				return fmt.Errorf("logs through %s: stdout %q, stderr %q", mgr.Name, stdout, stderr)
			}
			return nil
		})
	}
}
