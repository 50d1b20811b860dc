//go:build bench

package integration

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-project/shoal/integration/harness"
)

// benchWebScript serves the task's hostname, listening within a few
// milliseconds of the start.
const benchWebScript = `hostname > /tmp/index.html && exec httpd -f -p 80 -h /tmp`

// stream runs a shell loop in a container and timestamps every line it
// prints as the line arrives.
type stream struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	lines  []streamLine
}

type streamLine struct {
	at   time.Time
	text string
}

func startStream(t *testing.T, container, script string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "docker", "exec", container, "sh", "-c", script)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &stream{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.mu.Lock()
			s.lines = append(s.lines, streamLine{at: time.Now(), text: sc.Text()})
			s.mu.Unlock()
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(s.stop)
	return s
}

func (s *stream) stop() {
	s.cancel()
	<-s.done
}

// since returns the lines that arrived after t0.
func (s *stream) since(t0 time.Time) []streamLine {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []streamLine
	for _, l := range s.lines {
		if l.at.After(t0) {
			out = append(out, l)
		}
	}
	return out
}

func containerStarted(t *testing.T, container string) time.Time {
	t.Helper()
	out, err := exec.Command("docker", "inspect", "-f", "{{.State.StartedAt}}", container).Output()
	if err != nil {
		t.Fatal(err)
	}
	at, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	return at
}

// TestBenchOverlay measures, on three hosts (one manager, two workers)
// with the Docker executor:
//
//   - scale-up: from `service scale web=2` (one task on h1 or h2 before)
//     to the first answer of the new task through the service's VIP, in a
//     client on h3 requesting it in a loop; and from the new task's
//     container start to that answer — the overlay's share (endpoint
//     gossiped, the client's VIP table rewritten);
//   - scale-down: from `service scale web=1` to the last answer of the
//     removed task;
//   - dead node: from kill -9 of h2's daemon until its task's address has
//     left tasks.<service> as resolved, in a loop, by tasks on h1 and h3.
func TestBenchOverlay(t *testing.T) {
	rounds := envInt("SHOAL_BENCH_ROUNDS", 5)
	c := newCluster(t, 1, 2)
	img := harness.BusyboxImage(t)
	m := c.managers[0]
	h2 := c.workers[0]
	t.Cleanup(func() { removeNodeContainers(t, c.ids) })
	front := strings.TrimSpace(m.MustCLI(t, "network", "create", "front"))

	m.MustCLI(t, "service", "create", "-d", "--name", "web", "--stop-grace-period", "1s", "--constraint", "node.hostname!=h3",
		"--network", "front", img, "sh", "-c", benchWebScript)
	m.MustCLI(t, "service", "create", "-d", "--name", "client", "--stop-grace-period", "1s", "--constraint", "node.hostname==h3",
		"--network", "front", img, "sleep", "86400")
	c.waitRunning(t, "web", 1)
	client := c.waitRunning(t, "client", 1)[0]
	requests := startStream(t, client.container, "while true; do busybox timeout 2 wget -q -O - http://web/ || echo fail; done")

	var up, upOverlay, toCreated, toStarted, down []time.Duration
	for r := 0; r < rounds; r++ {
		before := map[string]bool{}
		for _, w := range c.waitRunning(t, "web", 1) {
			before[w.id] = true
		}
		t0 := time.Now()
		m.MustCLI(t, "service", "scale", "-d", "web=2")
		var added ovTask
		for _, w := range c.waitRunning(t, "web", 2) {
			if !before[w.id] {
				added = w
			}
		}
		name := mustExec(t, added.container, "hostname")
		started := containerStarted(t, added.container)
		for _, tk := range runnableTasks(t, m, "web") {
			if tk.Id == added.id {
				created := time.Unix(0, tk.GetMeta().GetCreatedAt())
				toCreated = append(toCreated, created.Sub(t0))
				toStarted = append(toStarted, started.Sub(created))
			}
		}
		var first time.Time
		harness.Eventually(t, 30*time.Second, "the new task answers through the VIP", func() error {
			for _, l := range requests.since(t0) {
				if l.text == name {
					first = l.at
					return nil
				}
			}
			return fmt.Errorf("no answer from %s yet", name)
		})
		up = append(up, first.Sub(t0))
		upOverlay = append(upOverlay, first.Sub(started))

		t1 := time.Now()
		m.MustCLI(t, "service", "scale", "-d", "web=1")
		left := c.waitRunning(t, "web", 1)[0]
		keep := mustExec(t, left.container, "hostname")
		// Settled: a second of answers from the remaining task only.
		var last time.Time
		harness.Eventually(t, 30*time.Second, "only the remaining task answers", func() error {
			ls := requests.since(t1)
			last = time.Time{}
			for _, l := range ls {
				if l.text != keep {
					last = l.at
				}
			}
			if last.IsZero() {
				last = t1
			}
			if n := len(ls); n == 0 || time.Since(last) < time.Second {
				return fmt.Errorf("removed tasks answered until %v ago", time.Since(last))
			}
			return nil
		})
		down = append(down, last.Sub(t1))
	}
	requests.stop()

	// Baseline: the same scale-up of a service on no network (one
	// container per task, nothing to attach), to its container's start.
	m.MustCLI(t, "service", "create", "-d", "--name", "plain", "--stop-grace-period", "1s", "--constraint", "node.hostname!=h3",
		img, "sh", "-c", benchWebScript)
	var plain []time.Duration
	for r := 0; r < rounds; r++ {
		before := map[string]bool{}
		for _, w := range c.waitRunning(t, "plain", 1) {
			before[w.id] = true
		}
		t0 := time.Now()
		m.MustCLI(t, "service", "scale", "-d", "plain=2")
		for _, w := range c.waitRunning(t, "plain", 2) {
			if !before[w.id] {
				plain = append(plain, containerStarted(t, w.container).Sub(t0))
			}
		}
		m.MustCLI(t, "service", "scale", "-d", "plain=1")
		c.waitRunning(t, "plain", 1)
	}
	m.MustCLI(t, "service", "rm", "plain")
	var upStart []time.Duration
	for i := range up {
		upStart = append(upStart, up[i]-upOverlay[i])
	}
	fmt.Printf("RESULT overlay-scale-up-baseline no-network scale-to-container-started median=%.2fs; overlay service scale-to-container-started median=%.2fs ratio=%.2f\n",
		median(plain).Seconds(), median(upStart).Seconds(), median(upStart).Seconds()/median(plain).Seconds())
	fmt.Printf("RESULT overlay-scale-up rounds=%d scale-to-vip-traffic median=%.2fs max=%.2fs container-start-to-vip-traffic median=%.3fs max=%.3fs\n",
		rounds, median(up).Seconds(), maxDur(up).Seconds(), median(upOverlay).Seconds(), maxDur(upOverlay).Seconds())
	fmt.Printf("RESULT overlay-scale-up-breakdown scale-to-task-created median=%.2fs task-created-to-container-started median=%.2fs\n",
		median(toCreated).Seconds(), median(toStarted).Seconds())
	fmt.Printf("RESULT overlay-scale-down rounds=%d scale-to-last-answer-of-removed median=%.2fs max=%.2fs\n",
		rounds, median(down).Seconds(), maxDur(down).Seconds())

	// Dead node: a global service on h1 and h2; observers on h1 and h3.
	m.MustCLI(t, "service", "rm", "web")
	m.MustCLI(t, "service", "create", "-d", "--name", "g", "--mode", "global", "--stop-grace-period", "1s", "--constraint", "node.hostname!=h3",
		"--network", "front", img, "sh", "-c", benchWebScript)
	var gone []time.Duration
	for r := 0; r < rounds; r++ {
		g := c.waitRunning(t, "g", 2)
		var victim, observer ovTask
		for _, w := range g {
			if w.node == c.ids[h2] {
				victim = w
			} else {
				observer = w
			}
		}
		addr := victim.addrs[front]
		streams := []*stream{}
		for _, obs := range []string{client.container, observer.container} {
			streams = append(streams, startStream(t, obs, "while true; do busybox nslookup -type=a tasks.g 2>&1; echo ---; done"))
		}
		// Both observers see both tasks before the kill.
		harness.Eventually(t, 30*time.Second, "both tasks resolved", func() error {
			for _, s := range streams {
				blocks := resolvedBlocks(s.since(time.Now().Add(-time.Second)))
				if len(blocks) == 0 || !slices.Contains(blocks[len(blocks)-1].addrs, addr.String()) {
					return fmt.Errorf("observer does not list %s yet", addr)
				}
			}
			return nil
		})
		t0 := time.Now()
		h2.Kill(t)
		var worst time.Duration
		for _, s := range streams {
			harness.Eventually(t, 30*time.Second, "the dead node's task leaves tasks.g", func() error {
				for _, b := range resolvedBlocks(s.since(t0)) {
					// An answer with the other task but not the dead one's.
					if len(b.addrs) > 0 && !slices.Contains(b.addrs, addr.String()) {
						worst = max(worst, b.at.Sub(t0))
						return nil
					}
				}
				return fmt.Errorf("still listed")
			})
			s.stop()
		}
		gone = append(gone, worst)
		h2.Start(t)
		c.waitNodes(t, m, 60*time.Second, func(rows []nodeRow) error {
			if r := rowOf(rows, "h2"); r.Status != "Ready" {
				return fmt.Errorf("h2 is %s", r.Status)
			}
			return nil
		})
	}
	fmt.Printf("RESULT overlay-dead-node-dns rounds=%d kill-to-gone-from-every-answer median=%.2fs max=%.2fs\n",
		rounds, median(gone).Seconds(), maxDur(gone).Seconds())
}

type resolvedBlock struct {
	at    time.Time
	addrs []string
}

// resolvedBlocks splits nslookup loop output into answers ("---" ends
// each), with the time each ended.
func resolvedBlocks(lines []streamLine) []resolvedBlock {
	var out []resolvedBlock
	var cur []string
	complete := false
	for _, l := range lines {
		if l.text == "---" {
			if complete {
				out = append(out, resolvedBlock{at: l.at, addrs: cur})
			}
			cur, complete = nil, true
			continue
		}
		if m := addrRE.FindStringSubmatch(l.text); m != nil {
			cur = append(cur, m[1])
		}
	}
	return out
}
