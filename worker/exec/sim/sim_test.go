package sim

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/worker/exec"
)

func TestImageFor(t *testing.T) {
	for _, tc := range []struct {
		name string
		want Image
	}{
		{"sim/missing", Image{Missing: true}},
		{"sim/missing:v2", Image{Missing: true}},
		{"sim/exit:3", Image{Exits: true, ExitCode: 3}},
		{"sim/sleep:1s", Image{Exits: true, RunFor: time.Second}},
		{"sim/healthy", Image{Health: exec.HealthHealthy}},
		{"sim/unhealthy:latest", Image{Health: exec.HealthUnhealthy}},
		{"sim/ignore-stop", Image{IgnoreStop: true}},
		{"nginx:1.27", Image{}},
	} {
		got, err := ImageFor(tc.name)
		if err != nil || got != tc.want {
			t.Errorf("ImageFor(%q) = %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
	for _, bad := range []string{"sim/exit:x", "sim/exit:300", "sim/sleep:soon"} {
		if _, err := ImageFor(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("ImageFor(%q): %v, want an error naming it", bad, err)
		}
	}
}

func simTask(image string) *shoalpb.Task {
	return &shoalpb.Task{
		Id:           "t1",
		Spec:         &shoalpb.TaskSpec{Container: &shoalpb.ContainerSpec{Image: image}},
		DesiredState: shoalpb.TaskState_TASK_STATE_RUNNING,
	}
}

// drive runs exec.Do until the task is terminal or RUNNING.
func drive(t *testing.T, tk *shoalpb.Task, c exec.Controller) {
	t.Helper()
	for range 10 {
		st, err := exec.Do(t.Context(), tk, c, time.Now)
		if err != nil {
			t.Fatalf("Do from %v: %v", tk.GetStatus().GetState(), err)
		}
		tk.Status = st
		if st.State == shoalpb.TaskState_TASK_STATE_RUNNING || st.State >= shoalpb.TaskState_TASK_STATE_COMPLETE {
			return
		}
	}
	t.Fatalf("task stuck at %v", tk.Status)
}

func TestConfigImagesOverrideNames(t *testing.T) {
	e := New(Config{Images: map[string]Image{"app:v1": {Exits: true, ExitCode: 9}}})
	tk := simTask("app:v1")
	c, err := e.Controller(tk)
	if err != nil {
		t.Fatal(err)
	}
	drive(t, tk, c)
	drive(t, tk, c)
	if tk.Status.State != shoalpb.TaskState_TASK_STATE_FAILED || tk.Status.GetContainer().GetExitCode() != 9 {
		t.Fatalf("status %v, want FAILED with exit code 9", tk.Status)
	}
}

func TestDelaysAreHonoured(t *testing.T) {
	const d = 30 * time.Millisecond
	e := New(Config{PrepareDelay: d, StartDelay: d})
	tk := simTask("sim/run")
	c, _ := e.Controller(tk)
	start := time.Now()
	drive(t, tk, c)
	if took := time.Since(start); took < 2*d {
		t.Fatalf("RUNNING after %v, want at least %v", took, 2*d)
	}
}

func TestTerminateAndExit(t *testing.T) {
	e := New(Config{})
	tk := simTask("sim/run")
	c, _ := e.Controller(tk)
	drive(t, tk, c)
	if err := c.Terminate(t.Context()); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := c.Wait(t.Context()); !errors.As(err, &ee) || ee.Code != 137 {
		t.Fatalf("Wait after Terminate: %v, want exit 137", err)
	}
	if err := e.Exit("t1", 1); err == nil {
		t.Fatal("Exit of a stopped container succeeded")
	}
	if err := e.Exit("nope", 1); !errors.Is(err, exec.ErrTaskNotFound) || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("Exit of an unknown task: %v", err)
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if e.Running() != 0 {
		t.Fatal("Start restarted a container that had run")
	}
}

func TestDescribe(t *testing.T) {
	d, err := New(Config{}).Describe(t.Context())
	if err != nil || d.GetResources().GetNanoCpus() != 4e9 || d.GetEngineVersion() != "sim" || d.GetHostname() != "" {
		t.Fatalf("Describe: %v, %v", d, err)
	}
	want := &shoalpb.NodeDescription{EngineVersion: "custom"}
	if d, _ := New(Config{Description: want}).Describe(t.Context()); d != want {
		t.Fatalf("Describe ignored Config.Description: %v", d)
	}
}

func TestControllerRejectsBadSpecs(t *testing.T) {
	e := New(Config{})
	if _, err := e.Controller(&shoalpb.Task{Id: "t9"}); err == nil || !strings.Contains(err.Error(), "t9") {
		t.Fatalf("task without image: %v", err)
	}
	if _, err := e.Controller(simTask("sim/exit:abc")); err == nil || !strings.Contains(err.Error(), "sim/exit:abc") {
		t.Fatalf("bad image: %v", err)
	}
}
