package integration

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-project/shoal/integration/harness"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// secondTag tags the test image under a second name, as a new version of
// it, and removes the tag when the test ends.
func secondTag(t *testing.T, img, version string) string {
	t.Helper()
	tag := strings.TrimSuffix(img, ":1") + ":" + version
	if out, err := exec.Command("docker", "tag", img, tag).CombinedOutput(); err != nil {
		t.Fatalf("docker tag: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", tag).Run() })
	return tag
}

// runningSampler counts, every 100 ms through a manager's API, the tasks
// of a service that run and should (min) and those that run at all,
// wanted or being stopped (max), until stopped.
type runningSampler struct {
	mu      sync.Mutex
	min     int
	max     int
	samples int
	stop    chan struct{}
	done    chan struct{}
}

func sampleRunning(t *testing.T, c shoalpb.ControlClient, service string) *runningSampler {
	s := &runningSampler{min: 1 << 30, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			resp, err := c.ListTasks(ctx, &shoalpb.ListTasksRequest{Filters: map[string]*shoalpb.FilterValues{"service": {Values: []string{service}}}})
			cancel()
			if err == nil {
				wanted, up := 0, 0
				for _, tk := range resp.Tasks {
					if tk.GetStatus().GetState() == shoalpb.TaskState_TASK_STATE_RUNNING {
						up++
						if tk.DesiredState == shoalpb.TaskState_TASK_STATE_RUNNING {
							wanted++
						}
					}
				}
				s.mu.Lock()
				s.min, s.max, s.samples = min(s.min, wanted), max(s.max, up), s.samples+1
				s.mu.Unlock()
			}
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { s.finish() })
	return s
}

// finish stops sampling and returns the lowest count of tasks running
// and wanted, and the highest of tasks running at all.
func (s *runningSampler) finish() (lo, hi, samples int) {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.min, s.max, s.samples
}

// cliLong runs a command that waits for a service (no -d) and returns
// its output and error.
func cliLong(h *harness.Host, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	return h.CLI(ctx, args...)
}

func updateState(t *testing.T, h *harness.Host, service string) string {
	t.Helper()
	return strings.TrimSpace(h.MustCLI(t, "service", "inspect", "--format", "{{.UpdateStatus.State}}", service))
}

// runningImages returns the images of a service's tasks that run and
// should, per image.
func runningImages(t *testing.T, c shoalpb.ControlClient, service string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.ListTasks(ctx, &shoalpb.ListTasksRequest{Filters: map[string]*shoalpb.FilterValues{"service": {Values: []string{service}}}})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, tk := range resp.Tasks {
		if tk.DesiredState == shoalpb.TaskState_TASK_STATE_RUNNING && tk.GetStatus().GetState() == shoalpb.TaskState_TASK_STATE_RUNNING {
			out[tk.GetSpec().GetContainer().GetImage()+" "+strings.Join(tk.GetSpec().GetContainer().GetArgs(), " ")]++
		}
	}
	return out
}

var pausedTaskRE = regexp.MustCompile(`task ([0-9a-z]{25})`)

// TestUpdateRollingOrdersFailuresAndRollback runs, on one cluster of three
// nodes, a stop-first and a start-first rolling update with the number of
// running tasks sampled throughout, a failing update that pauses, a manual
// rollback, a failing update rolled back automatically, and an update
// whose new task never becomes healthy within the update timeout.
func TestUpdateRollingOrdersFailuresAndRollback(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1, 2)
	m := c.managers[0]
	api := control(t, m)
	v1 := harness.BusyboxImage(t)
	v2 := secondTag(t, v1, "update-2")
	common := []string{"--stop-grace-period", "1s", "--update-monitor", "1s", "--rollback-monitor", "1s", "--rollback-parallelism", "0"}
	create := func(name string, replicas int, extra ...string) {
		args := append([]string{"service", "create", "-d", "--name", name, "--replicas", fmt.Sprint(replicas)}, common...)
		args = append(append(args, extra...), v1, "sleep", "3600")
		m.MustCLI(t, args...)
		c.waitTasks(t, m, name, 90*time.Second, func(rows []taskRow) error {
			if n := total(runningPerNode(rows)); n != replicas {
				return fmt.Errorf("%d running, want %d", n, replicas)
			}
			return nil
		})
	}
	create("stopfirst", 4, "--update-parallelism", "2")
	create("startfirst", 3, "--update-parallelism", "1", "--update-order", "start-first")

	t.Run("stop-first", func(t *testing.T) {
		s := sampleRunning(t, api, "stopfirst")
		out, stderr, err := cliLong(m, "service", "update", "--image", v2, "stopfirst")
		if err != nil {
			t.Fatalf("service update: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr)
		}
		lo, hi, n := s.finish()
		t.Logf("during the update: at least %d tasks running and wanted, at most %d running, over %d samples", lo, hi, n)
		// Two slots at a time, each old task stopped before its
		// replacement starts: never more than 4 containers up.
		if lo < 2 || lo > 3 || hi != 4 {
			t.Errorf("%d..%d tasks running, want a dip to 2 or 3 (parallelism 2, stop-first) and never more than 4", lo, hi)
		}
		for _, want := range []string{"overall progress: 4 out of 4 tasks", "verify: Service converged"} {
			if !strings.Contains(out, want) {
				t.Errorf("progress lacks %q:\n%s", want, out)
			}
		}
		if st := updateState(t, m, "stopfirst"); st != "completed" {
			t.Errorf("update state %q, want completed", st)
		}
		if imgs := runningImages(t, api, "stopfirst"); imgs[v2+" sleep 3600"] != 4 || len(imgs) != 1 {
			t.Errorf("running images %v", imgs)
		}
		rows, _ := serviceTasks(context.Background(), m, "stopfirst")
		shut := 0
		for _, r := range rows {
			if r.Desired == "Shutdown" && strings.HasPrefix(r.Current, "Shutdown") {
				shut++
			}
		}
		if shut != 4 {
			t.Errorf("%d old tasks shown shut down, want 4: %+v", shut, rows)
		}
	})

	t.Run("start-first", func(t *testing.T) {
		s := sampleRunning(t, api, "startfirst")
		if out, stderr, err := cliLong(m, "service", "update", "--image", v2, "startfirst"); err != nil {
			t.Fatalf("service update: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr)
		}
		lo, hi, n := s.finish()
		t.Logf("during the update: at least %d tasks running and wanted, at most %d running, over %d samples", lo, hi, n)
		// Each new task runs before its old one is stopped (which takes
		// a second, while the next slot may start).
		if lo < 3 || hi < 4 {
			t.Errorf("%d..%d tasks running, want never fewer than 3 wanted and a fourth beside them (start-first)", lo, hi)
		}
		if imgs := runningImages(t, api, "startfirst"); imgs[v2+" sleep 3600"] != 3 {
			t.Errorf("running images %v", imgs)
		}
	})

	t.Run("failure pauses", func(t *testing.T) {
		// As with docker, a task that fails right after it started is
		// caught within the monitor window, while the update may go on:
		// the delay keeps the next slot for after that.
		out, stderr, err := cliLong(m, "service", "update", "--update-parallelism", "1", "--update-delay", "3s", "--args", "false", "stopfirst")
		if err == nil {
			t.Fatalf("an update to a command that fails succeeded:\n%s", out)
		}
		if !strings.Contains(stderr, "service update paused: update paused due to failure or early termination of task ") {
			t.Fatalf("stderr %q", stderr)
		}
		if st := updateState(t, m, "stopfirst"); st != "paused" {
			t.Errorf("update state %q, want paused", st)
		}
		// Only the first slot was touched: three old tasks still run.
		if imgs := runningImages(t, api, "stopfirst"); imgs[v2+" sleep 3600"] != 3 {
			t.Errorf("running %v, want the 3 tasks the update did not reach", imgs)
		}
		if ls := m.MustCLI(t, "service", "ls", "--format", "{{.Name}} {{.Replicas}}", "--filter", "name=stopfirst"); !strings.Contains(ls, "(update paused)") {
			t.Errorf("service ls: %q", ls)
		}
	})

	t.Run("manual rollback", func(t *testing.T) {
		out, stderr, err := cliLong(m, "service", "rollback", "stopfirst")
		if err != nil {
			t.Fatalf("service rollback: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr)
		}
		for _, want := range []string{"rollback: manually requested rollback", "overall progress: rolling back update: 4 out of 4 tasks", "verify: Service converged"} {
			if !strings.Contains(out, want) {
				t.Errorf("progress lacks %q:\n%s", want, out)
			}
		}
		if st := updateState(t, m, "stopfirst"); st != "rollback_completed" {
			t.Errorf("update state %q, want rollback_completed", st)
		}
		if imgs := runningImages(t, api, "stopfirst"); imgs[v2+" sleep 3600"] != 4 {
			t.Errorf("running %v after the rollback", imgs)
		}
	})

	t.Run("automatic rollback", func(t *testing.T) {
		out, stderr, err := cliLong(m, "service", "update", "--update-failure-action", "rollback", "--args", "false", "startfirst")
		// The rollback may be over before the first poll: the reason is
		// kept in the final message.
		if err == nil || !strings.Contains(stderr, "service rolled back: rollback completed (update rolled back due to failure or early termination of task ") {
			t.Fatalf("update: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr)
		}
		if !strings.Contains(out, "rollback: ") || !strings.Contains(out, "update rolled back due to failure or early termination of task ") {
			t.Errorf("progress does not say why it rolled back:\n%s", out)
		}
		if st := updateState(t, m, "startfirst"); st != "rollback_completed" {
			t.Errorf("update state %q, want rollback_completed", st)
		}
		if args := strings.TrimSpace(m.MustCLI(t, "service", "inspect", "--format", "{{json .Spec.TaskTemplate.ContainerSpec.Args}}", "startfirst")); args != `["sleep","3600"]` {
			t.Errorf("args after the rollback: %s", args)
		}
		// Start-first: the old tasks served throughout.
		if imgs := runningImages(t, api, "startfirst"); imgs[v2+" sleep 3600"] != 3 {
			t.Errorf("running %v after the rollback", imgs)
		}
	})

	t.Run("task timeout", func(t *testing.T) {
		// The first health check comes after a minute: the new task
		// stays starting, never running.
		out, stderr, err := cliLong(m, "service", "update", "--update-timeout", "5s",
			"--health-cmd", "true", "--health-interval", "60s", "--health-retries", "1", "startfirst")
		if err == nil {
			t.Fatalf("update with a task that never became healthy succeeded:\n%s", out)
		}
		m1 := pausedTaskRE.FindStringSubmatch(stderr)
		if !strings.Contains(stderr, "service update paused: update paused due to timeout of task") || !strings.Contains(stderr, "not running 5s after it was created") || m1 == nil {
			t.Fatalf("stderr %q", stderr)
		}
		rows, err := serviceTasks(context.Background(), m, "startfirst")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if strings.HasSuffix(r.Name, m1[1]) && !strings.HasPrefix(r.Current, "Starting") {
				t.Errorf("timed out task %s is %q, want still starting", r.Name, r.Current)
			}
		}
		if imgs := runningImages(t, api, "startfirst"); imgs[v2+" sleep 3600"] != 3 {
			t.Errorf("running %v: the old tasks must serve on (start-first)", imgs)
		}
	})
}

// TestUpdateSurvivesLeaderKill kills the leader with SIGKILL in the middle
// of a rolling update on three managers: the new leader carries the
// update on from the store, and every slot ends with one task of the new
// image.
func TestUpdateSurvivesLeaderKill(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, 0)
	v1 := harness.BusyboxImage(t)
	v2 := secondTag(t, v1, "update-3")
	leader := c.leader(t, c.managers[0])
	var other *harness.Host
	for _, h := range c.managers {
		if h != leader {
			other = h
			break
		}
	}
	api := control(t, other)
	const replicas = 6
	other.MustCLI(t, "service", "create", "-d", "--name", "survive", "--replicas", fmt.Sprint(replicas), "--stop-grace-period", "1s",
		"--update-parallelism", "1", "--update-delay", "1s", "--update-monitor", "1s", v1, "sleep", "3600")
	c.waitTasks(t, other, "survive", 90*time.Second, func(rows []taskRow) error {
		if n := total(runningPerNode(rows)); n != replicas {
			return fmt.Errorf("%d running", n)
		}
		return nil
	})
	other.MustCLI(t, "service", "update", "-d", "--image", v2, "survive")
	harness.Eventually(t, 60*time.Second, "the update under way", func() error {
		if n := runningImages(t, api, "survive")[v2+" sleep 3600"]; n < 1 || n > 3 {
			return fmt.Errorf("%d tasks updated", n)
		}
		return nil
	})
	if st := updateState(t, other, "survive"); st != "updating" {
		t.Fatalf("update state %q before the kill", st)
	}
	leader.Kill(t)
	killed := time.Now()
	harness.Eventually(t, 2*time.Minute, "the update completed on the new leader", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, stderr, err := other.CLI(ctx, "service", "inspect", "--format", "{{.UpdateStatus.State}}", "survive")
		if err != nil {
			return fmt.Errorf("%v: %s", err, stderr)
		}
		if st := strings.TrimSpace(out); st != "completed" {
			return fmt.Errorf("update state %q", st)
		}
		return nil
	})
	t.Logf("update completed %.1fs after the leader was killed", time.Since(killed).Seconds())
	// The dead leader's tasks are replaced on the live nodes too.
	harness.Eventually(t, time.Minute, "every slot running the new image", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := api.ListTasks(ctx, &shoalpb.ListTasksRequest{Filters: map[string]*shoalpb.FilterValues{"service": {Values: []string{"survive"}}}})
		if err != nil {
			return err
		}
		perSlot := map[uint64]int{}
		for _, tk := range resp.Tasks {
			if tk.DesiredState != shoalpb.TaskState_TASK_STATE_RUNNING {
				continue
			}
			if tk.GetSpec().GetContainer().GetImage() != v2 {
				return fmt.Errorf("task %s of slot %d still wanted with %s", tk.Id, tk.Slot, tk.GetSpec().GetContainer().GetImage())
			}
			if tk.GetStatus().GetState() == shoalpb.TaskState_TASK_STATE_RUNNING {
				perSlot[tk.Slot]++
			}
		}
		for s := uint64(1); s <= replicas; s++ {
			if perSlot[s] != 1 {
				return fmt.Errorf("slot %d has %d running tasks (%v)", s, perSlot[s], perSlot)
			}
		}
		return nil
	})
}
