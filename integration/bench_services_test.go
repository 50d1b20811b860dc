//go:build bench

package integration

import (
	"context"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/integration/harness"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// runningOn counts a service's tasks that run and should, per node ID.
func runningOn(c shoalpb.ControlClient, service string) (map[string]int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.ListTasks(ctx, &shoalpb.ListTasksRequest{Filters: map[string]*shoalpb.FilterValues{"service": {Values: []string{service}}}})
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, tk := range resp.Tasks {
		if tk.DesiredState == shoalpb.TaskState_TASK_STATE_RUNNING && tk.GetStatus().GetState() == shoalpb.TaskState_TASK_STATE_RUNNING {
			out[tk.NodeId]++
		}
	}
	return out, nil
}

// pollUntil polls cond every 20 ms until it holds, or fails after limit.
func pollUntil(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(20 * time.Millisecond) // polling interval of the measurement
	}
	return time.Since(start)
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// TestBenchReschedule measures, from kill -9 of a node running tasks, the
// time until all of a 10-replica service's tasks run on the other nodes:
// for a worker, and for the leader (which runs tasks too).
func TestBenchReschedule(t *testing.T) {
	rounds := envInt("SHOAL_BENCH_ROUNDS", 3)
	c := newClusterArgs(t, 3, 2)
	img := harness.BusyboxImage(t)
	const replicas = 10
	c.managers[0].MustCLI(t, "service", "create", "-d", "--name", "resched", "--replicas", fmt.Sprint(replicas), "--stop-grace-period", "1s", img, "sleep", "86400")
	for _, kind := range []string{"worker", "leader"} {
		var times []time.Duration
		for r := 0; r < rounds; r++ {
			leader := c.leader(t, c.managers[0])
			var victim, observer *harness.Host
			if kind == "leader" {
				victim = leader
			} else {
				victim = c.workers[r%len(c.workers)]
			}
			for _, m := range c.managers {
				if m != victim {
					observer = m
					break
				}
			}
			client := control(t, observer)
			pollUntil(t, 2*time.Minute, "service settled", func() bool {
				per, err := runningOn(client, "resched")
				if err != nil || per[c.ids[victim]] == 0 {
					return false
				}
				n := 0
				for _, k := range per {
					n += k
				}
				return n == replicas
			})
			victim.Kill(t)
			d := pollUntil(t, 2*time.Minute, "tasks rescheduled", func() bool {
				per, err := runningOn(client, "resched")
				if err != nil {
					return false
				}
				n := 0
				for node, k := range per {
					if node != c.ids[victim] {
						n += k
					}
				}
				return n == replicas
			})
			times = append(times, d)
			t.Logf("%s kill %d: all %d tasks running elsewhere after %.2fs", kind, r+1, replicas, d.Seconds())
			victim.Start(t)
			// Spread the service over every node again for the next round.
			c.waitNodes(t, observer, time.Minute, func(rows []nodeRow) error {
				if r := rowOf(rows, victim.Name); r.Status != "Ready" {
					return fmt.Errorf("%s is %s", victim.Name, r.Status)
				}
				return nil
			})
			observer.MustCLI(t, "service", "scale", "-d", "resched=0")
			pollUntil(t, 2*time.Minute, "scaled to 0", func() bool {
				per, err := runningOn(client, "resched")
				return err == nil && len(per) == 0
			})
			observer.MustCLI(t, "service", "scale", "-d", fmt.Sprintf("resched=%d", replicas))
		}
		fmt.Printf("RESULT reschedule kind=%s rounds=%d median=%.2fs max=%.2fs\n", kind, rounds, median(times).Seconds(), maxDur(times).Seconds())
	}
}

func maxDur(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

// TestBenchConvergence measures `service create` of N replicas on one node
// until all run, against the floor of N sequential `docker run -d` of the
// same image on the same engine, in the same run.
func TestBenchConvergence(t *testing.T) {
	c := newClusterArgs(t, 1, 0)
	m := c.managers[0]
	img := harness.BusyboxImage(t)
	client := control(t, m)
	for _, n := range []int{10, 30} {
		name := fmt.Sprintf("conv%d", n)
		start := time.Now()
		m.MustCLI(t, "service", "create", "-d", "--name", name, "--replicas", fmt.Sprint(n), img, "sleep", "86400")
		ours := pollUntil(t, 5*time.Minute, "convergence", func() bool {
			per, err := runningOn(client, name)
			return err == nil && per[c.ids[m]] == n
		})
		ours = time.Since(start)
		m.MustCLI(t, "service", "rm", name)

		label := fmt.Sprintf("shoal.bench.floor=%d", time.Now().UnixNano())
		start = time.Now()
		for i := 0; i < n; i++ {
			out, err := exec.Command("docker", "run", "-d", "--network", "none", "--label", label, img, "sleep", "86400").CombinedOutput()
			if err != nil {
				t.Fatalf("docker run: %v: %s", err, out)
			}
		}
		floor := time.Since(start)
		if ids, err := exec.Command("docker", "ps", "-aq", "--filter", "label="+label).Output(); err == nil {
			if f := strings.Fields(string(ids)); len(f) > 0 {
				exec.Command("docker", append([]string{"rm", "-f"}, f...)...).Run()
			}
		}
		fmt.Printf("RESULT convergence replicas=%d shoal=%.2fs docker-run-floor=%.2fs ratio=%.2f\n", n, ours.Seconds(), floor.Seconds(), ours.Seconds()/floor.Seconds())
	}
}
