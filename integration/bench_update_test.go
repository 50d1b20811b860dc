//go:build bench

package integration

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-project/shoal/integration/harness"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// TestBenchRollingUpdate measures the wall time of a rolling update of 12
// replicas on 3 nodes (a manager and 2 workers, all running tasks) with
// parallelism 3 and with parallelism 1 (delay 0, monitor 1 s, stop grace
// 1 s), stop-first (docker's default, the order the Docker Swarm figures
// were measured with) and start-first, from the update call to the
// update's completion, and where the time goes: per slot, waiting for the
// old task to stop (its grace period: sleep ignores SIGTERM), then
// starting the new one; at the end, the last monitor window.
func TestBenchRollingUpdate(t *testing.T) {
	rounds := envInt("SHOAL_BENCH_ROUNDS", 3)
	c := newClusterArgs(t, 1, 2)
	m := c.managers[0]
	api := control(t, m)
	v1 := harness.BusyboxImage(t)
	v2 := secondTag(t, v1, "bench-2")
	const replicas = 12
	for _, run := range []struct {
		parallelism int
		order       string
	}{{3, "stop-first"}, {1, "stop-first"}, {3, "start-first"}, {1, "start-first"}} {
		parallelism := run.parallelism
		name := fmt.Sprintf("roll%d%s", parallelism, strings.TrimSuffix(run.order, "-first"))
		m.MustCLI(t, "service", "create", "-d", "--name", name, "--replicas", fmt.Sprint(replicas), "--stop-grace-period", "1s",
			"--update-parallelism", fmt.Sprint(parallelism), "--update-delay", "0s", "--update-monitor", "1s", "--update-order", run.order, v1, "sleep", "86400")
		waitAllRunning(t, api, name, v1, replicas)
		var walls []time.Duration
		var stops, starts, tails []time.Duration
		img := v1
		for r := 0; r < rounds; r++ {
			if img == v1 {
				img = v2
			} else {
				img = v1
			}
			tl := watchTimeline(api, name)
			start := time.Now()
			m.MustCLI(t, "service", "update", "-d", "--image", img, name)
			svc := pollCompleted(t, api, name)
			wall := time.Since(start)
			walls = append(walls, wall)
			tl.stop()
			st, sr, tail := updateBreakdown(t, api, svc)
			stops, starts, tails = append(stops, st...), append(starts, sr...), append(tails, tail)
			waitAllRunning(t, api, name, img, replicas)
			t.Logf("%s parallelism %d round %d: %.2fs (slot stop median %.2fs, start median %.2fs, last monitor window %.2fs)",
				run.order, parallelism, r+1, wall.Seconds(), safeMedian(st).Seconds(), safeMedian(sr).Seconds(), tail.Seconds())
			t.Logf("  as seen by polling: %s", tl.phases(svc.SpecVersion, run.order == "start-first"))
		}
		fmt.Printf("RESULT rolling-update replicas=%d nodes=3 order=%s parallelism=%d rounds=%d median=%.2fs max=%.2fs slot-stop-median=%.2fs slot-start-median=%.2fs monitor-tail-median=%.2fs\n",
			replicas, run.order, parallelism, rounds, median(walls).Seconds(), maxDur(walls).Seconds(), safeMedian(stops).Seconds(), safeMedian(starts).Seconds(), safeMedian(tails).Seconds())
		m.MustCLI(t, "service", "rm", name)
	}
}

func listTasks(t *testing.T, api shoalpb.ControlClient, service string) []*shoalpb.Task {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := api.ListTasks(ctx, &shoalpb.ListTasksRequest{Filters: map[string]*shoalpb.FilterValues{"service": {Values: []string{service}}}})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Tasks
}

func waitAllRunning(t *testing.T, api shoalpb.ControlClient, service, image string, n int) {
	t.Helper()
	pollUntil(t, 3*time.Minute, service+" running "+image, func() bool {
		k := 0
		for _, tk := range listTasks(t, api, service) {
			if tk.DesiredState == shoalpb.TaskState_TASK_STATE_RUNNING && tk.GetStatus().GetState() == shoalpb.TaskState_TASK_STATE_RUNNING && tk.GetSpec().GetContainer().GetImage() == image {
				k++
			}
		}
		return k == n
	})
}

// pollCompleted polls the service until its update completed and returns
// it.
func pollCompleted(t *testing.T, api shoalpb.ControlClient, service string) *shoalpb.Service {
	t.Helper()
	var svc *shoalpb.Service
	pollUntil(t, 5*time.Minute, service+" update completed", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := api.GetService(ctx, &shoalpb.GetServiceRequest{ServiceRef: service})
		if err != nil {
			return false
		}
		svc = resp.Service
		st := svc.GetUpdateStatus().GetState()
		if st == shoalpb.UpdateStatus_STATE_PAUSED {
			t.Fatalf("update paused: %s", svc.GetUpdateStatus().GetMessage())
		}
		return st == shoalpb.UpdateStatus_STATE_COMPLETED
	})
	return svc
}

// updateBreakdown splits each slot's replacement into the wait for its
// old task to stop (new task created → old task reported SHUTDOWN) and
// the start of the new one (→ RUNNING), and returns the time from the
// last new task running to the update's completion (the monitor window).
func updateBreakdown(t *testing.T, api shoalpb.ControlClient, svc *shoalpb.Service) (stops, starts []time.Duration, tail time.Duration) {
	t.Helper()
	bySlot := map[uint64][]*shoalpb.Task{}
	for _, tk := range listTasks(t, api, svc.Id) {
		bySlot[tk.Slot] = append(bySlot[tk.Slot], tk)
	}
	var lastRunning int64
	for _, hist := range bySlot {
		sort.Slice(hist, func(i, j int) bool { return hist[i].GetMeta().GetCreatedAt() < hist[j].GetMeta().GetCreatedAt() })
		var nw, old *shoalpb.Task
		for i := len(hist) - 1; i >= 0; i-- {
			if hist[i].SpecVersion == svc.SpecVersion && nw == nil {
				nw = hist[i]
			} else if nw != nil && hist[i].SpecVersion != svc.SpecVersion {
				old = hist[i]
				break
			}
		}
		if nw == nil || old == nil || nw.GetStatus().GetState() != shoalpb.TaskState_TASK_STATE_RUNNING {
			continue
		}
		created, stopped, running := nw.GetMeta().GetCreatedAt(), old.GetStatus().GetTimestamp(), nw.GetStatus().GetTimestamp()
		if old.GetStatus().GetState() == shoalpb.TaskState_TASK_STATE_SHUTDOWN && stopped >= created && running >= stopped {
			stops = append(stops, time.Duration(stopped-created))
			starts = append(starts, time.Duration(running-stopped))
		}
		lastRunning = max(lastRunning, running)
	}
	if done := svc.GetUpdateStatus().GetCompletedAt(); done > lastRunning && lastRunning > 0 {
		tail = time.Duration(done - lastRunning)
	}
	if len(stops) == 0 {
		t.Logf("no slot breakdown available (%d slots)", len(bySlot))
	}
	return stops, starts, tail
}

// timeline records, by polling a manager every 20 ms, when each task of a
// service was first seen in each desired and observed state.
type timeline struct {
	mu    sync.Mutex
	seen  map[string]map[string]time.Time // task ID -> "desired:X"/"state:X" -> first seen
	tasks map[string]*shoalpb.Task
	done  chan struct{}
	wg    sync.WaitGroup
}

func watchTimeline(api shoalpb.ControlClient, service string) *timeline {
	tl := &timeline{seen: map[string]map[string]time.Time{}, tasks: map[string]*shoalpb.Task{}, done: make(chan struct{})}
	tl.wg.Add(1)
	go func() {
		defer tl.wg.Done()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			resp, err := api.ListTasks(ctx, &shoalpb.ListTasksRequest{Filters: map[string]*shoalpb.FilterValues{"service": {Values: []string{service}}}})
			cancel()
			now := time.Now()
			if err == nil {
				tl.mu.Lock()
				for _, tk := range resp.Tasks {
					m := tl.seen[tk.Id]
					if m == nil {
						m = map[string]time.Time{"created": now}
						tl.seen[tk.Id] = m
					}
					tl.tasks[tk.Id] = tk
					for _, k := range []string{"desired:" + tk.DesiredState.String(), "state:" + tk.GetStatus().GetState().String()} {
						if _, ok := m[k]; !ok {
							m[k] = now
						}
					}
				}
				tl.mu.Unlock()
			}
			select {
			case <-tl.done:
				return
			case <-time.After(20 * time.Millisecond): // polling interval of the measurement
			}
		}
	}()
	return tl
}

func (tl *timeline) stop() {
	close(tl.done)
	tl.wg.Wait()
}

// phases words the median, over the slots replaced, of: new task seen →
// old task seen SHUTDOWN; → new task seen wanted RUNNING (the updater
// starting it); → new task seen RUNNING (stop-first), or new task seen →
// RUNNING; → old task seen SHUTDOWN (start-first); and new task RUNNING →
// the next replacement seen (the turn-around).
func (tl *timeline) phases(version uint64, startFirst bool) string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	bySlot := map[uint64][]*shoalpb.Task{}
	for _, tk := range tl.tasks {
		bySlot[tk.Slot] = append(bySlot[tk.Slot], tk)
	}
	var stop, raise, start []time.Duration
	var made, ran []time.Time
	for _, hist := range bySlot {
		var nw, old *shoalpb.Task
		for _, tk := range hist {
			if tk.SpecVersion == version {
				nw = tk
				if c := tl.seen[tk.Id]["created"]; !c.IsZero() {
					// Every new task counts for the turn-around, also
					// those of slots whose phases the poller missed.
					made = append(made, c)
				}
			} else if tk.DesiredState == shoalpb.TaskState_TASK_STATE_SHUTDOWN {
				if o := tl.seen[tk.Id]; old == nil || o["desired:TASK_STATE_SHUTDOWN"].After(tl.seen[old.Id]["desired:TASK_STATE_SHUTDOWN"]) {
					old = tk
				}
			}
		}
		if nw == nil || old == nil {
			continue
		}
		n, o := tl.seen[nw.Id], tl.seen[old.Id]
		c, sd, rr, rn := n["created"], o["state:TASK_STATE_SHUTDOWN"], n["desired:TASK_STATE_RUNNING"], n["state:TASK_STATE_RUNNING"]
		if c.IsZero() || sd.IsZero() || rr.IsZero() || rn.IsZero() {
			continue
		}
		if startFirst {
			start, stop = append(start, rn.Sub(c)), append(stop, sd.Sub(rn))
		} else {
			stop, raise, start = append(stop, sd.Sub(c)), append(raise, rr.Sub(sd)), append(start, rn.Sub(rr))
		}
		ran = append(ran, rn)
	}
	if len(stop) == 0 {
		return "no slot seen through all its phases"
	}
	// Turn-around: from a new task running to the next new task made.
	var turn []time.Duration
	sort.Slice(made, func(i, j int) bool { return made[i].Before(made[j]) })
	for _, r := range ran {
		for _, c := range made {
			if !c.Before(r) { // seen in the same poll counts
				turn = append(turn, c.Sub(r))
				break
			}
		}
	}
	if len(turn) == 0 {
		turn = []time.Duration{0}
	}
	if startFirst {
		return fmt.Sprintf("new task running %.2fs after it appeared; old stopped %.2fs after that; next slot %.2fs after a task ran (medians over %d slots)",
			median(start).Seconds(), median(stop).Seconds(), median(turn).Seconds(), len(stop))
	}
	return fmt.Sprintf("old stopped %.2fs after the new task appeared; new task started %.2fs later; running %.2fs after that; next slot %.2fs after a task ran (medians over %d slots)",
		median(stop).Seconds(), median(raise).Seconds(), median(start).Seconds(), median(turn).Seconds(), len(stop))
}

// safeMedian is median, or 0 for no values.
func safeMedian(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return median(ds)
}
