//go:build bench

package integration

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-project/shoal/integration/harness"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// These are benchmarks, not tests: scripts/bench/*.sh run them with the
// bench build tag and record what they print in docs/BENCHMARKS.md.

func benchCluster(t *testing.T, managers int, daemonArgs ...string) *testCluster {
	t.Helper()
	return newClusterArgs(t, managers, 0, daemonArgs...)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestBenchFailover kills the leader of a 3-manager cluster with SIGKILL,
// repeatedly, and measures the time from the kill to the first write that
// succeeds on a surviving manager: first with hashicorp/raft's default 1 s
// timeouts (the baseline), then with Shoal's default.
func TestBenchFailover(t *testing.T) {
	kills := envInt("SHOAL_BENCH_KILLS", 7)
	base := failoverRun(t, kills, "--raft-timeout", "1s")
	ours := failoverRun(t, kills)
	fmt.Printf("RESULT failover baseline(raft-timeout=1s) median=%.3fs max=%.3fs\n", base.median.Seconds(), base.max.Seconds())
	fmt.Printf("RESULT failover shoal-default median=%.3fs max=%.3fs kills=%d ratio=%.2f\n", ours.median.Seconds(), ours.max.Seconds(), kills, ours.median.Seconds()/base.median.Seconds())
}

type failoverStats struct{ median, max time.Duration }

func failoverRun(t *testing.T, kills int, daemonArgs ...string) failoverStats {
	c := benchCluster(t, 3, daemonArgs...)
	defer c.lab.Close()
	clients := map[*harness.Host]shoalpb.ControlClient{}
	for _, m := range c.managers {
		clients[m] = control(t, m)
	}
	var times []time.Duration
	for k := 0; k < kills; k++ {
		leader := c.leader(t, c.managers[0])
		var survivors []*harness.Host
		for _, m := range c.managers {
			if m != leader {
				survivors = append(survivors, m)
			}
		}
		leader.Kill(t)
		t0 := time.Now()
		for i := 0; ; i++ {
			m := survivors[i%len(survivors)]
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := clients[m].UpdateNode(ctx, &shoalpb.UpdateNodeRequest{NodeRef: m.Name, LabelsAdd: map[string]string{"kill": strconv.Itoa(k)}})
			cancel()
			if err == nil {
				break
			}
			if time.Since(t0) > 60*time.Second {
				t.Fatalf("no write succeeded within 60s of kill %d: %v", k, err)
			}
		}
		d := time.Since(t0)
		times = append(times, d)
		t.Logf("%v kill %d: first write after %.3fs", daemonArgs, k+1, d.Seconds())
		leader.Start(t, daemonArgs...)
		c.waitNodes(t, survivors[0], 60*time.Second, func(rows []nodeRow) error {
			for _, m := range c.managers {
				if s := rowOf(rows, m.Name).ManagerStatus; s != "Leader" && s != "Reachable" {
					return fmt.Errorf("%s is %q", m.Name, s)
				}
			}
			return nil
		})
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	median := times[len(times)/2]
	if len(times)%2 == 0 {
		median = (times[len(times)/2-1] + times[len(times)/2]) / 2
	}
	return failoverStats{median: median, max: times[len(times)-1]}
}

// TestBenchRaftWrites measures acknowledged writes per second (node label
// updates, each one Raft entry with an fsync on every manager) against the
// leader of a 3-manager cluster, with 1 and with 64 concurrent clients.
func TestBenchRaftWrites(t *testing.T) {
	c := benchCluster(t, 3)
	leader := c.leader(t, c.managers[0])
	client := control(t, leader)
	dur := time.Duration(envInt("SHOAL_BENCH_SECONDS", 10)) * time.Second
	for _, n := range []int{1, 64} {
		var ok, failed atomic.Int64
		var wg sync.WaitGroup
		deadline := time.Now().Add(dur)
		for w := 0; w < n; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; time.Now().Before(deadline); i++ {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					_, err := client.UpdateNode(ctx, &shoalpb.UpdateNodeRequest{NodeRef: leader.Name, LabelsAdd: map[string]string{"c" + strconv.Itoa(w): strconv.Itoa(i)}})
					cancel()
					if err != nil {
						failed.Add(1)
					} else {
						ok.Add(1)
					}
				}
			}(w)
		}
		wg.Wait()
		fmt.Printf("RESULT raft-writes clients=%d writes=%d failed=%d rate=%.0f/s\n", n, ok.Load(), failed.Load(), float64(ok.Load())/dur.Seconds())
	}
}
