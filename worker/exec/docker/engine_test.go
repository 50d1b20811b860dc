package docker

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/worker/exec"
)

func TestRunToExit(t *testing.T) {
	e := newExecutor(t)
	ctx := testCtx(t)
	for _, tc := range []struct {
		steps []string
		state shoalpb.TaskState
		code  int
	}{
		{[]string{"out:bye", "exit:0"}, shoalpb.TaskState_TASK_STATE_COMPLETE, 0},
		{[]string{"exit:3"}, shoalpb.TaskState_TASK_STATE_FAILED, 3},
	} {
		tk := newTask(tc.steps...)
		c := controller(t, e, tk)
		doUntil(t, ctx, tk, c, shoalpb.TaskState_TASK_STATE_RUNNING)
		if info := inspect(t, ctx, c); info.State.StartedAt == "" || info.HostConfig.NetworkMode != "none" {
			t.Fatalf("container %s: started %q, network %q", c.Name(), info.State.StartedAt, info.HostConfig.NetworkMode)
		}
		err := c.Wait(ctx)
		var ee *exec.ExitError
		switch {
		case tc.code == 0 && err != nil:
			t.Fatalf("Wait of %v: %v, want nil", tc.steps, err)
		case tc.code != 0 && (!errors.As(err, &ee) || ee.Code != tc.code):
			t.Fatalf("Wait of %v: %v, want ExitError{Code: %d}", tc.steps, err, tc.code)
		}
		st := doUntil(t, ctx, tk, c, tc.state)
		if st.State != tc.state || st.GetContainer().GetExitCode() != int32(tc.code) || st.GetContainer().GetContainerId() == "" {
			t.Fatalf("status after %v: %v, want %v with exit code %d", tc.steps, st, tc.state, tc.code)
		}
		if err := c.Remove(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.inspect(ctx); !errors.Is(err, exec.ErrTaskNotFound) {
			t.Fatalf("after Remove: %v, want ErrTaskNotFound", err)
		}
		if err := c.Remove(ctx); err != nil {
			t.Fatalf("second Remove: %v", err)
		}
	}
}

func TestShutdownUsesStopSignal(t *testing.T) {
	e := newExecutor(t)
	ctx := testCtx(t)
	for _, tc := range []struct {
		signal string
		steps  []string
	}{
		{"", []string{"wait:TERM"}},
		{"SIGUSR1", []string{"ignore-term", "wait:USR1"}},
	} {
		tk := newTask(tc.steps...)
		tk.Spec.Container.StopSignal = tc.signal
		c := controller(t, e, tk)
		doUntil(t, ctx, tk, c, shoalpb.TaskState_TASK_STATE_RUNNING)
		waitForLine(t, ctx, c, "waiting for")
		start := time.Now()
		tk.DesiredState = shoalpb.TaskState_TASK_STATE_SHUTDOWN
		st := doUntil(t, ctx, tk, c, shoalpb.TaskState_TASK_STATE_SHUTDOWN)
		// The default grace period is 10 s: a program that got its signal
		// stops well before.
		if took := time.Since(start); took > 8*time.Second {
			t.Fatalf("stop with %q took %v: the signal was not delivered", tc.signal, took)
		}
		if st.State != shoalpb.TaskState_TASK_STATE_SHUTDOWN || st.GetContainer().GetExitCode() != 0 {
			t.Fatalf("stop with %q: %v, want SHUTDOWN with exit code 0", tc.signal, st)
		}
		if err := c.Wait(ctx); err != nil {
			t.Fatalf("Wait after stop with %q: %v", tc.signal, err)
		}
		if err := c.Shutdown(ctx); err != nil {
			t.Fatalf("second Shutdown: %v", err)
		}
	}
}

func TestShutdownKillsAfterGracePeriod(t *testing.T) {
	e := newExecutor(t)
	ctx := testCtx(t)
	tk := newTask("ignore-term", "wait:USR1")
	grace := time.Second
	tk.Spec.Container.StopGracePeriodNs = &[]int64{int64(grace)}[0]
	c := controller(t, e, tk)
	doUntil(t, ctx, tk, c, shoalpb.TaskState_TASK_STATE_RUNNING)
	waitForLine(t, ctx, c, "waiting for")
	start := time.Now()
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if took, limit := time.Since(start), grace+10*time.Second; took > limit {
		t.Fatalf("Shutdown took %v, more than grace %v plus margin", took, grace)
	}
	var ee *exec.ExitError
	if err := c.Wait(ctx); !errors.As(err, &ee) || ee.Code != 137 {
		t.Fatalf("Wait after kill: %v, want exit code 137", err)
	}
}

func TestTerminate(t *testing.T) {
	e := newExecutor(t)
	ctx := testCtx(t)
	tk := newTask("ignore-term", "wait:USR1")
	c := controller(t, e, tk)
	doUntil(t, ctx, tk, c, shoalpb.TaskState_TASK_STATE_RUNNING)
	if err := c.Terminate(ctx); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := c.Wait(ctx); !errors.As(err, &ee) || ee.Code != 137 {
		t.Fatalf("Wait after Terminate: %v, want exit code 137", err)
	}
	if err := c.Terminate(ctx); err != nil {
		t.Fatalf("Terminate of a dead container: %v", err)
	}
}

func healthTask(steps ...string) *shoalpb.Task {
	tk := newTask(steps...)
	tk.Spec.Container.Healthcheck = &shoalpb.HealthConfig{
		Test:       []string{"CMD", "/app", "exists:/ready"},
		IntervalNs: int64(100 * time.Millisecond),
		TimeoutNs:  int64(2 * time.Second),
		Retries:    2,
	}
	return tk
}

func TestRunningOnlyOnceHealthy(t *testing.T) {
	e := newExecutor(t)
	ctx := testCtx(t)
	const pause = 700 * time.Millisecond
	tk := healthTask("pause:"+pause.String(), "touch:/ready", "wait:TERM")
	// Failures in the start period do not count: the check waits for the
	// program instead of giving up after two probes.
	tk.Spec.Container.Healthcheck.StartPeriodNs = int64(20 * time.Second)
	c := controller(t, e, tk)
	doUntil(t, ctx, tk, c, shoalpb.TaskState_TASK_STATE_STARTING)
	start := time.Now()
	st := doUntil(t, ctx, tk, c, shoalpb.TaskState_TASK_STATE_RUNNING)
	if st.State != shoalpb.TaskState_TASK_STATE_RUNNING {
		t.Fatalf("status %v, want RUNNING", st)
	}
	if took := time.Since(start); took < pause {
		t.Fatalf("RUNNING after %v, before the program could be healthy (%v)", took, pause)
	}
	if h, err := c.Health(ctx); err != nil || h != exec.HealthHealthy {
		t.Fatalf("health at RUNNING: %q, %v", h, err)
	}
}

func TestUnhealthyFailsTheTask(t *testing.T) {
	e := newExecutor(t)
	ctx := testCtx(t)
	tk := healthTask("wait:TERM")
	c := controller(t, e, tk)
	st := doUntil(t, ctx, tk, c, shoalpb.TaskState_TASK_STATE_RUNNING)
	if st.State != shoalpb.TaskState_TASK_STATE_FAILED || !strings.Contains(st.Err, "unhealthy") {
		t.Fatalf("status %v, want FAILED as unhealthy", st)
	}
	if info := inspect(t, ctx, c); info.State.Running {
		t.Fatal("the unhealthy container still runs")
	}
}

func TestWaitSeesHealthTurnBad(t *testing.T) {
	e := newExecutor(t)
	ctx := testCtx(t)
	tk := healthTask("touch:/ready", "pause:1500ms", "rm:/ready", "wait:TERM")
	c := controller(t, e, tk)
	st := doUntil(t, ctx, tk, c, shoalpb.TaskState_TASK_STATE_RUNNING)
	if st.State != shoalpb.TaskState_TASK_STATE_RUNNING {
		t.Fatalf("status %v, want RUNNING", st)
	}
	st = doUntil(t, ctx, tk, c, shoalpb.TaskState_TASK_STATE_COMPLETE)
	if st.State != shoalpb.TaskState_TASK_STATE_FAILED || !strings.Contains(st.Err, "unhealthy") {
		t.Fatalf("status %v, want FAILED as unhealthy", st)
	}
}

func TestMissingImage(t *testing.T) {
	e := newExecutor(t)
	ctx := testCtx(t)
	tk := newTask()
	tk.Spec.Container.Image = "shoal-exec-test/absent:" + runID
	c := controller(t, e, tk)
	err := c.Prepare(ctx)
	if !errors.Is(err, exec.ErrImageNotFound) || !strings.Contains(err.Error(), tk.Spec.Container.Image) || !strings.Contains(err.Error(), e.nodeName) {
		t.Fatalf("Prepare: %v, want ErrImageNotFound naming image %q and node %q", err, tk.Spec.Container.Image, e.nodeName)
	}
	st := doUntil(t, ctx, tk, c, shoalpb.TaskState_TASK_STATE_RUNNING)
	if st.State != shoalpb.TaskState_TASK_STATE_REJECTED || !strings.Contains(st.Err, tk.Spec.Container.Image) {
		t.Fatalf("status %v, want REJECTED naming the image", st)
	}
}

func TestAdoptExistingContainer(t *testing.T) {
	e := newExecutor(t)
	ctx := testCtx(t)
	tk := newTask("wait:TERM")
	c1 := controller(t, e, tk)
	doUntil(t, ctx, tk, c1, shoalpb.TaskState_TASK_STATE_RUNNING)
	before := inspect(t, ctx, c1)
	if err := c1.Prepare(ctx); err != nil {
		t.Fatalf("second Prepare: %v", err)
	}

	c2 := controller(t, e, tk)
	if err := c2.Prepare(ctx); err != nil {
		t.Fatalf("Prepare of a new controller: %v", err)
	}
	if err := c2.Start(ctx); err != nil {
		t.Fatalf("Start of a new controller: %v", err)
	}
	after := inspect(t, ctx, c2)
	if after.ID != before.ID || after.State.StartedAt != before.State.StartedAt || !after.State.Running {
		t.Fatalf("adopted container %s started %s (running %v), want %s started %s",
			after.ID, after.State.StartedAt, after.State.Running, before.ID, before.State.StartedAt)
	}
	cs, err := c2.ContainerStatus(ctx)
	if err != nil || cs.ContainerId != before.ID || cs.Pid == 0 {
		t.Fatalf("ContainerStatus: %v, %v", cs, err)
	}

	// Another node's executor must not take the container over.
	other := New(cli, "other-"+e.nodeID, "other")
	oc, err := other.Controller(tk)
	if err != nil {
		t.Fatal(err)
	}
	if err := oc.Prepare(ctx); err == nil || !strings.Contains(err.Error(), e.nodeID) {
		t.Fatalf("Prepare by another node: %v, want a refusal naming the owner", err)
	}
	if err := oc.Remove(ctx); err == nil {
		t.Fatal("another node removed the container")
	}
}

func TestDescribe(t *testing.T) {
	e := newExecutor(t)
	d, err := e.Describe(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if d.GetPlatform().GetOs() != "linux" || d.GetPlatform().GetArchitecture() == "" || d.GetResources().GetNanoCpus() < 1e9 ||
		d.GetResources().GetMemoryBytes() <= 0 || d.GetEngineVersion() == "" || d.GetHostname() != "" {
		t.Fatalf("Describe: %v", d)
	}
}
