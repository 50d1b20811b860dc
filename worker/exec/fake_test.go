package exec_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/worker/exec"
)

// fakeCtlr fails the steps it is told to, and reports health from a
// script, one state per Health call.
type fakeCtlr struct {
	startErr, shutdownErr, waitErr error

	mu        sync.Mutex
	healths   []exec.HealthState
	shutdowns int
}

func (f *fakeCtlr) Prepare(context.Context) error { return nil }
func (f *fakeCtlr) Start(context.Context) error   { return f.startErr }
func (f *fakeCtlr) Wait(context.Context) error    { return f.waitErr }
func (f *fakeCtlr) Shutdown(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.shutdowns++
	return f.shutdownErr
}
func (f *fakeCtlr) Terminate(context.Context) error { return nil }
func (f *fakeCtlr) Remove(context.Context) error    { return nil }
func (f *fakeCtlr) Close() error                    { return nil }

// healthFake adds a scripted Health: the controller can only be polled.
type healthFake struct{ *fakeCtlr }

func (h healthFake) Health(context.Context) (exec.HealthState, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.healths) == 0 {
		return exec.HealthStarting, nil
	}
	s := h.healths[0]
	h.healths = h.healths[1:]
	return s, nil
}

func at(state shoalpb.TaskState) *shoalpb.Task {
	tk := task("t", "img")
	tk.Status = &shoalpb.TaskStatus{State: state, Message: "before"}
	return tk
}

func TestDoStartErrorFails(t *testing.T) {
	f := &fakeCtlr{startErr: errors.New("no such device eth7")}
	st, err := exec.Do(t.Context(), at(shoalpb.TaskState_TASK_STATE_STARTING), f, time.Now)
	if err != nil || st.State != shoalpb.TaskState_TASK_STATE_FAILED || !strings.Contains(st.Err, "eth7") {
		t.Fatalf("Do: %v, %v; want FAILED naming the error", st, err)
	}
}

func TestDoWaitErrorFails(t *testing.T) {
	f := &fakeCtlr{waitErr: exec.ErrTaskNotFound}
	st, err := exec.Do(t.Context(), at(shoalpb.TaskState_TASK_STATE_RUNNING), f, time.Now)
	if err != nil || st.State != shoalpb.TaskState_TASK_STATE_FAILED || st.Err != exec.ErrTaskNotFound.Error() {
		t.Fatalf("Do: %v, %v; want FAILED", st, err)
	}
	f = &fakeCtlr{waitErr: &exec.ExitError{Code: 42}}
	st, _ = exec.Do(t.Context(), at(shoalpb.TaskState_TASK_STATE_RUNNING), f, time.Now)
	if st.GetContainer().GetExitCode() != 42 {
		t.Fatalf("exit code %v, want 42 taken from the ExitError", st.GetContainer())
	}
}

func TestDoShutdownErrorKeepsStatus(t *testing.T) {
	f := &fakeCtlr{shutdownErr: errors.New("engine busy")}
	tk := at(shoalpb.TaskState_TASK_STATE_RUNNING)
	tk.DesiredState = shoalpb.TaskState_TASK_STATE_SHUTDOWN
	st, err := exec.Do(t.Context(), tk, f, time.Now)
	if err == nil || !strings.Contains(err.Error(), "engine busy") || st.State != shoalpb.TaskState_TASK_STATE_RUNNING || st.Message != "before" {
		t.Fatalf("Do: %v, %v; want the status unchanged and the error", st, err)
	}
	f.shutdownErr = exec.ErrTaskNotFound
	if st, err := exec.Do(t.Context(), tk, f, time.Now); err != nil || st.State != shoalpb.TaskState_TASK_STATE_SHUTDOWN {
		t.Fatalf("Do of a task without a container: %v, %v; want SHUTDOWN", st, err)
	}
}

func TestDoPollsHealth(t *testing.T) {
	f := &fakeCtlr{healths: []exec.HealthState{exec.HealthStarting, exec.HealthStarting, exec.HealthHealthy}}
	st, err := exec.Do(t.Context(), at(shoalpb.TaskState_TASK_STATE_STARTING), healthFake{f}, time.Now)
	if err != nil || st.State != shoalpb.TaskState_TASK_STATE_RUNNING {
		t.Fatalf("Do: %v, %v; want RUNNING", st, err)
	}
	if len(f.healths) != 0 {
		t.Fatalf("RUNNING before the check passed: %v left", f.healths)
	}

	f = &fakeCtlr{healths: []exec.HealthState{exec.HealthStarting, exec.HealthUnhealthy}}
	st, err = exec.Do(t.Context(), at(shoalpb.TaskState_TASK_STATE_STARTING), healthFake{f}, time.Now)
	if err != nil || st.State != shoalpb.TaskState_TASK_STATE_FAILED || f.shutdowns != 1 {
		t.Fatalf("Do: %v, %v, %d shutdowns; want FAILED and the container stopped", st, err, f.shutdowns)
	}
}

func TestDoGivesUpOnSlowHealth(t *testing.T) {
	f := &fakeCtlr{}
	tk := at(shoalpb.TaskState_TASK_STATE_STARTING)
	// The check can take at most 4 ms + slack to decide; it never does.
	tk.Spec.Container.Healthcheck = &shoalpb.HealthConfig{IntervalNs: 1e6, TimeoutNs: 5e5, Retries: 1}
	start := time.Now()
	st, err := exec.Do(t.Context(), tk, healthFake{f}, time.Now)
	if err != nil || st.State != shoalpb.TaskState_TASK_STATE_FAILED || !strings.Contains(st.Err, "did not become healthy") {
		t.Fatalf("Do: %v, %v; want FAILED for a check that never decides", st, err)
	}
	if took, limit := time.Since(start), exec.HealthDecisionTime(tk.Spec.Container.Healthcheck); took < limit {
		t.Fatalf("gave up after %v, before %v", took, limit)
	}
}

func TestDoNoopCases(t *testing.T) {
	f := &fakeCtlr{}
	for _, s := range []shoalpb.TaskState{
		shoalpb.TaskState_TASK_STATE_COMPLETE, shoalpb.TaskState_TASK_STATE_FAILED,
		shoalpb.TaskState_TASK_STATE_REJECTED, shoalpb.TaskState_TASK_STATE_SHUTDOWN,
	} {
		tk := at(s)
		tk.DesiredState = shoalpb.TaskState_TASK_STATE_SHUTDOWN
		if st, err := exec.Do(t.Context(), tk, f, time.Now); !errors.Is(err, exec.ErrTaskNoop) || st.State != s {
			t.Fatalf("Do from %v: %v, %v; want ErrTaskNoop", s, st, err)
		}
	}
	if f.shutdowns != 0 {
		t.Fatalf("%d shutdowns of terminal tasks", f.shutdowns)
	}
	if _, err := exec.Do(t.Context(), nil, f, time.Now); err == nil {
		t.Fatal("Do of a nil task succeeded")
	}
}
