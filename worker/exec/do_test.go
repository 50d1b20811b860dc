package exec_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/worker/exec"
	"github.com/shoal-project/shoal/worker/exec/sim"
)

// fakeClock returns strictly increasing times.
func fakeClock() func() time.Time {
	var n atomic.Int64
	base := time.Unix(1_700_000_000, 0)
	return func() time.Time { return base.Add(time.Duration(n.Add(1)) * time.Millisecond) }
}

func task(id, image string) *shoalpb.Task {
	return &shoalpb.Task{
		Id:           id,
		ServiceId:    "svc",
		ServiceName:  "web",
		Slot:         1,
		Spec:         &shoalpb.TaskSpec{Container: &shoalpb.ContainerSpec{Image: image}},
		Status:       &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_ASSIGNED},
		DesiredState: shoalpb.TaskState_TASK_STATE_RUNNING,
	}
}

// step runs one Do and records the status in t.
func step(tb testing.TB, ctx context.Context, t *shoalpb.Task, ctlr exec.Controller, now func() time.Time) (*shoalpb.TaskStatus, error) {
	tb.Helper()
	st, err := exec.Do(ctx, t, ctlr, now)
	if st == nil {
		tb.Fatalf("Do returned a nil status (err %v)", err)
	}
	if err == nil {
		t.Status = st
	}
	return st, err
}

// runUntil calls Do until the task reaches state (or beyond, terminal) and
// returns the states passed through.
func runUntil(tb testing.TB, ctx context.Context, t *shoalpb.Task, ctlr exec.Controller, state shoalpb.TaskState) []shoalpb.TaskState {
	tb.Helper()
	now := fakeClock()
	var seen []shoalpb.TaskState
	for range 20 {
		st, err := step(tb, ctx, t, ctlr, now)
		if err != nil {
			tb.Fatalf("Do from %v: %v", t.Status.GetState(), err)
		}
		seen = append(seen, st.State)
		if st.State == state || st.State >= shoalpb.TaskState_TASK_STATE_COMPLETE {
			return seen
		}
	}
	tb.Fatalf("task did not reach %v; went through %v", state, seen)
	return nil
}

func newCtlr(tb testing.TB, e exec.Executor, t *shoalpb.Task) exec.Controller {
	tb.Helper()
	c, err := e.Controller(t)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

func TestDoRunsToCompletion(t *testing.T) {
	ctx := t.Context()
	e := sim.New(sim.Config{NodeID: "n1", NodeName: "node-1"})
	tk := task("t1", "sim/run")
	c := newCtlr(t, e, tk)

	seen := runUntil(t, ctx, tk, c, shoalpb.TaskState_TASK_STATE_RUNNING)
	want := []shoalpb.TaskState{
		shoalpb.TaskState_TASK_STATE_ACCEPTED, shoalpb.TaskState_TASK_STATE_PREPARING,
		shoalpb.TaskState_TASK_STATE_READY, shoalpb.TaskState_TASK_STATE_STARTING,
		shoalpb.TaskState_TASK_STATE_RUNNING,
	}
	if len(seen) != len(want) {
		t.Fatalf("states %v, want %v", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("states %v, want %v", seen, want)
		}
	}
	if cs := tk.Status.GetContainer(); cs.GetContainerId() != "sim-t1" || cs.GetPid() == 0 {
		t.Fatalf("running status has container %v, want sim-t1 with a pid", cs)
	}
	if tk.Status.Timestamp == 0 || tk.Status.Message == "" {
		t.Fatalf("status %v lacks a timestamp or message", tk.Status)
	}

	if err := e.Exit("t1", 0); err != nil {
		t.Fatal(err)
	}
	st, err := step(t, ctx, tk, c, time.Now)
	if err != nil || st.State != shoalpb.TaskState_TASK_STATE_COMPLETE {
		t.Fatalf("after exit 0: %v, %v; want COMPLETE", st, err)
	}
	if _, err := exec.Do(ctx, tk, c, time.Now); !errors.Is(err, exec.ErrTaskNoop) {
		t.Fatalf("Do of a complete task: %v, want ErrTaskNoop", err)
	}
}

func TestDoExitCodes(t *testing.T) {
	for _, tc := range []struct {
		image string
		state shoalpb.TaskState
		code  int32
	}{
		{"sim/exit:0", shoalpb.TaskState_TASK_STATE_COMPLETE, 0},
		{"sim/exit:3", shoalpb.TaskState_TASK_STATE_FAILED, 3},
		{"sim/sleep:20ms", shoalpb.TaskState_TASK_STATE_COMPLETE, 0},
	} {
		t.Run(tc.image, func(t *testing.T) {
			e := sim.New(sim.Config{})
			tk := task("t", tc.image)
			c := newCtlr(t, e, tk)
			seen := runUntil(t, t.Context(), tk, c, shoalpb.TaskState_TASK_STATE_COMPLETE)
			if got := seen[len(seen)-1]; got != tc.state {
				t.Fatalf("final state %v (%v), want %v", got, tk.Status, tc.state)
			}
			if got := tk.Status.GetContainer().GetExitCode(); got != tc.code {
				t.Fatalf("exit code %d, want %d", got, tc.code)
			}
			if tc.code != 0 && !strings.Contains(tk.Status.Err, "exit code 3") {
				t.Fatalf("err %q does not give the exit code", tk.Status.Err)
			}
		})
	}
}

func TestWaitReturnsExitError(t *testing.T) {
	ctx := t.Context()
	e := sim.New(sim.Config{})
	c := newCtlr(t, e, task("t", "sim/exit:7"))
	if err := c.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(ctx); !errors.Is(err, exec.ErrContainerNotStarted) {
		t.Fatalf("Wait before Start: %v, want ErrContainerNotStarted", err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := c.Wait(ctx); !errors.As(err, &ee) || ee.Code != 7 {
		t.Fatalf("Wait: %v, want ExitError 7", err)
	}
}

func TestDoMissingImageIsRejected(t *testing.T) {
	ctx := t.Context()
	e := sim.New(sim.Config{NodeID: "n1", NodeName: "node-1"})
	tk := task("t", "sim/missing:latest")
	c := newCtlr(t, e, tk)
	if err := c.Prepare(ctx); !errors.Is(err, exec.ErrImageNotFound) ||
		!strings.Contains(err.Error(), "sim/missing:latest") || !strings.Contains(err.Error(), "node-1") {
		t.Fatalf("Prepare: %v, want ErrImageNotFound naming image and node", err)
	}
	seen := runUntil(t, ctx, tk, c, shoalpb.TaskState_TASK_STATE_RUNNING)
	if got := seen[len(seen)-1]; got != shoalpb.TaskState_TASK_STATE_REJECTED {
		t.Fatalf("final state %v, want REJECTED", got)
	}
	if !strings.Contains(tk.Status.Err, "sim/missing:latest") {
		t.Fatalf("err %q does not name the image", tk.Status.Err)
	}
}

func TestDoStopsAtDesiredReady(t *testing.T) {
	e := sim.New(sim.Config{})
	tk := task("t", "sim/run")
	tk.DesiredState = shoalpb.TaskState_TASK_STATE_READY
	c := newCtlr(t, e, tk)
	seen := runUntil(t, t.Context(), tk, c, shoalpb.TaskState_TASK_STATE_READY)
	if got := seen[len(seen)-1]; got != shoalpb.TaskState_TASK_STATE_READY {
		t.Fatalf("final state %v, want READY", got)
	}
	if _, err := exec.Do(t.Context(), tk, c, time.Now); !errors.Is(err, exec.ErrTaskNoop) {
		t.Fatalf("Do at the desired state: %v, want ErrTaskNoop", err)
	}
	if e.Running() != 0 || e.Containers() != 1 {
		t.Fatalf("running %d, containers %d; want a created, not started container", e.Running(), e.Containers())
	}
	tk.DesiredState = shoalpb.TaskState_TASK_STATE_RUNNING
	runUntil(t, t.Context(), tk, c, shoalpb.TaskState_TASK_STATE_RUNNING)
}

func TestDoShutdown(t *testing.T) {
	ctx := t.Context()
	e := sim.New(sim.Config{StopDelay: 10 * time.Millisecond})
	tk := task("t", "sim/run")
	c := newCtlr(t, e, tk)
	runUntil(t, ctx, tk, c, shoalpb.TaskState_TASK_STATE_RUNNING)

	tk.DesiredState = shoalpb.TaskState_TASK_STATE_SHUTDOWN
	st, err := step(t, ctx, tk, c, time.Now)
	if err != nil || st.State != shoalpb.TaskState_TASK_STATE_SHUTDOWN {
		t.Fatalf("Do with desired SHUTDOWN: %v, %v", st, err)
	}
	if st.GetContainer().GetExitCode() != 0 || e.Running() != 0 {
		t.Fatalf("after shutdown: container %v, %d running; want stopped with code 0", st.GetContainer(), e.Running())
	}
	if err := c.Wait(ctx); err != nil {
		t.Fatalf("Wait after a clean stop: %v", err)
	}
	if _, err := exec.Do(ctx, tk, c, time.Now); !errors.Is(err, exec.ErrTaskNoop) {
		t.Fatalf("Do after shutdown: %v, want ErrTaskNoop", err)
	}
	if err := c.Remove(ctx); err != nil || e.Containers() != 0 {
		t.Fatalf("Remove: %v, %d containers left", err, e.Containers())
	}
	if err := c.Remove(ctx); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
}

func TestShutdownKillsAfterGrace(t *testing.T) {
	ctx := t.Context()
	e := sim.New(sim.Config{})
	tk := task("t", "sim/ignore-stop")
	grace := 50 * time.Millisecond
	tk.Spec.Container.StopGracePeriodNs = proto64(int64(grace))
	c := newCtlr(t, e, tk)
	runUntil(t, ctx, tk, c, shoalpb.TaskState_TASK_STATE_RUNNING)
	start := time.Now()
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < grace {
		t.Fatalf("Shutdown took %v, less than the grace period %v", took, grace)
	}
	var ee *exec.ExitError
	if err := c.Wait(ctx); !errors.As(err, &ee) || ee.Code != 137 {
		t.Fatalf("Wait after kill: %v, want exit 137", err)
	}
}

func proto64(v int64) *int64 { return &v }

func TestDoWaitsForHealthy(t *testing.T) {
	ctx := t.Context()
	delay := 50 * time.Millisecond
	e := sim.New(sim.Config{HealthDelay: delay})
	tk := task("t", "sim/healthy")
	c := newCtlr(t, e, tk)
	runUntil(t, ctx, tk, c, shoalpb.TaskState_TASK_STATE_STARTING)
	start := time.Now()
	st, err := step(t, ctx, tk, c, time.Now)
	if err != nil || st.State != shoalpb.TaskState_TASK_STATE_RUNNING {
		t.Fatalf("Do from STARTING: %v, %v; want RUNNING", st, err)
	}
	if took := time.Since(start); took < delay {
		t.Fatalf("RUNNING after %v, before the health check could pass (%v)", took, delay)
	}
	if h, _ := c.(exec.Healthy).Health(ctx); h != exec.HealthHealthy {
		t.Fatalf("health %q, want healthy", h)
	}
}

func TestDoFailsUnhealthy(t *testing.T) {
	ctx := t.Context()
	e := sim.New(sim.Config{HealthDelay: 10 * time.Millisecond})
	tk := task("t", "sim/unhealthy")
	c := newCtlr(t, e, tk)
	seen := runUntil(t, ctx, tk, c, shoalpb.TaskState_TASK_STATE_RUNNING)
	if got := seen[len(seen)-1]; got != shoalpb.TaskState_TASK_STATE_FAILED {
		t.Fatalf("final state %v, want FAILED", got)
	}
	if !strings.Contains(tk.Status.Err, exec.ErrContainerUnhealthy.Error()) {
		t.Fatalf("err %q does not say unhealthy", tk.Status.Err)
	}
	if e.Running() != 0 {
		t.Fatal("the unhealthy container still runs")
	}
}

func TestDoContextEnds(t *testing.T) {
	e := sim.New(sim.Config{PrepareDelay: time.Hour})
	tk := task("t", "sim/run")
	c := newCtlr(t, e, tk)
	runUntil(t, t.Context(), tk, c, shoalpb.TaskState_TASK_STATE_PREPARING)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	st, err := exec.Do(ctx, tk, c, time.Now)
	if !errors.Is(err, context.DeadlineExceeded) || st.State != shoalpb.TaskState_TASK_STATE_PREPARING {
		t.Fatalf("Do with an ending ctx: %v, %v; want PREPARING unchanged and the ctx error", st, err)
	}
}

func TestControllersOfOneTaskShareTheContainer(t *testing.T) {
	ctx := t.Context()
	e := sim.New(sim.Config{})
	tk := task("t", "sim/run")
	c1 := newCtlr(t, e, tk)
	runUntil(t, ctx, tk, c1, shoalpb.TaskState_TASK_STATE_RUNNING)
	c2 := newCtlr(t, e, tk)
	if err := c2.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	s1, _ := c1.(exec.ContainerStatuser).ContainerStatus(ctx)
	s2, _ := c2.(exec.ContainerStatuser).ContainerStatus(ctx)
	if s1.GetContainerId() != s2.GetContainerId() || s1.GetPid() != s2.GetPid() || e.Containers() != 1 {
		t.Fatalf("controllers see %v and %v (%d containers), want one container", s1, s2, e.Containers())
	}
}

func TestSimManyConcurrentTasks(t *testing.T) {
	const n = 2000
	e := sim.New(sim.Config{StartDelay: time.Millisecond})
	ctx := t.Context()
	errs := make(chan error, n)
	for i := range n {
		go func() {
			tk := task("t"+strconv.Itoa(i), "sim/run")
			c, err := e.Controller(tk)
			if err != nil {
				errs <- err
				return
			}
			for tk.Status.State != shoalpb.TaskState_TASK_STATE_RUNNING {
				st, err := exec.Do(ctx, tk, c, time.Now)
				if err != nil {
					errs <- err
					return
				}
				tk.Status = st
			}
			errs <- nil
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := e.Running(); got != n {
		t.Fatalf("%d running, want %d", got, n)
	}
}

func TestHealthDecisionTime(t *testing.T) {
	if got, want := exec.HealthDecisionTime(nil), 4*time.Minute+31*time.Second; got != want {
		t.Fatalf("default: %v, want %v", got, want)
	}
	hc := &shoalpb.HealthConfig{IntervalNs: int64(time.Second), TimeoutNs: int64(time.Second), Retries: 1, StartPeriodNs: int64(2 * time.Second)}
	if got, want := exec.HealthDecisionTime(hc), 2*time.Second+2*2*time.Second+time.Second+time.Second; got != want {
		t.Fatalf("configured: %v, want %v", got, want)
	}
}
