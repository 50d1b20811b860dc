package docker

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/mount"

	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/worker/exec"
)

func TestContainerConfigOnTheEngine(t *testing.T) {
	e := newExecutor(t)
	ctx := testCtx(t)
	tk := newTask("wait:TERM")
	spec := tk.Spec.Container
	spec.Labels["team"] = "blue"
	spec.Labels[LabelNodeID] = "forged"
	spec.Command = []string{"/app", "out:from-command"}
	spec.Env = []string{"A=1", "B=two words"}
	spec.Dir = "/work"
	spec.User = "1234:5678"
	spec.Hostname = "box"
	spec.StopSignal = "SIGUSR1"
	spec.StopGracePeriodNs = &[]int64{2_500_000_000}[0]
	tk.Spec.Resources = &shoalpb.ResourceRequirements{
		Limits:       &shoalpb.Resources{NanoCpus: 500_000_000, MemoryBytes: 64 << 20},
		Reservations: &shoalpb.Resources{MemoryBytes: 32 << 20},
	}
	c := controller(t, e, tk)
	if err := c.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	info := inspect(t, ctx, c)
	if name := strings.TrimPrefix(info.Name, "/"); name != "exectest.1."+tk.Id {
		t.Errorf("name %q, want exectest.1.%s", name, tk.Id)
	}
	wantLabels := map[string]string{
		LabelNodeID: e.nodeID, LabelTaskID: tk.Id, LabelServiceID: tk.ServiceId,
		LabelServiceName: tk.ServiceName, "team": "blue", labelTestRun: runID,
	}
	for k, v := range wantLabels {
		if got := info.Config.Labels[k]; got != v {
			t.Errorf("label %s = %q, want %q", k, got, v)
		}
	}
	cfg, host := info.Config, info.HostConfig
	for _, check := range []struct {
		what      string
		got, want any
	}{
		{"entrypoint", []string(cfg.Entrypoint), spec.Command},
		{"cmd", []string(cfg.Cmd), []string{"wait:TERM"}},
		{"dir", cfg.WorkingDir, "/work"},
		{"user", cfg.User, "1234:5678"},
		{"hostname", cfg.Hostname, "box"},
		{"stop signal", cfg.StopSignal, "SIGUSR1"},
		{"network", string(host.NetworkMode), "none"},
		{"nano CPUs", host.NanoCPUs, int64(500_000_000)},
		{"memory", host.Memory, int64(64 << 20)},
		{"memory reservation", host.MemoryReservation, int64(32 << 20)},
	} {
		if !equal(check.got, check.want) {
			t.Errorf("%s = %v, want %v", check.what, check.got, check.want)
		}
	}
	if cfg.StopTimeout == nil || *cfg.StopTimeout != 3 {
		t.Errorf("stop timeout %v, want 3 s (2.5 s rounded up)", cfg.StopTimeout)
	}
	for _, env := range spec.Env {
		if !slices.Contains(cfg.Env, env) {
			t.Errorf("env %v lacks %q", cfg.Env, env)
		}
	}
}

func equal(a, b any) bool {
	if as, ok := a.([]string); ok {
		bs, _ := b.([]string)
		return slices.Equal(as, bs)
	}
	return a == b
}

func TestMountsOnTheEngine(t *testing.T) {
	e := newExecutor(t)
	ctx := testCtx(t)
	roDir, rwDir := t.TempDir(), t.TempDir()
	tk := newTask("mount:/scratch", "touch:/scratch/ok", "touch:/rw/ok", "touch:/vol/ok", "touch:/ro/x")
	tk.Spec.Container.Mounts = []*shoalpb.Mount{
		{Type: shoalpb.Mount_TYPE_TMPFS, Target: "/scratch", TmpfsSizeBytes: 1 << 20, TmpfsMode: 0o750},
		{Type: shoalpb.Mount_TYPE_BIND, Source: roDir, Target: "/ro", ReadOnly: true, BindPropagation: "rprivate"},
		{Type: shoalpb.Mount_TYPE_BIND, Source: rwDir, Target: "/rw"},
		{Type: shoalpb.Mount_TYPE_VOLUME, Target: "/vol", VolumeNocopy: true, VolumeLabels: map[string]string{labelTestRun: runID}},
	}
	c := controller(t, e, tk)
	st := doUntil(t, ctx, tk, c, shoalpb.TaskState_TASK_STATE_COMPLETE)
	if st.State != shoalpb.TaskState_TASK_STATE_FAILED || st.GetContainer().GetExitCode() != 1 {
		t.Fatalf("status %v, want FAILED with exit code 1 (the write to the read-only bind)", st)
	}
	var out, errOut bytes.Buffer
	if err := c.Logs(ctx, exec.LogOptions{Tail: -1}, func(l exec.LogLine) error {
		b := &out
		if l.Stream == exec.StreamStderr {
			b = &errOut
		}
		b.Write(l.Data)
		b.WriteByte('\n')
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, " tmpfs ") || !strings.Contains(s, "size=1024k") || !strings.Contains(s, "mode=750") {
		t.Errorf("the /scratch mount is not a 1 MiB tmpfs of mode 750: %q", s)
	}
	if s := errOut.String(); !strings.Contains(s, "read-only file system") {
		t.Errorf("the write to the read-only bind did not fail as such: %q", s)
	}
	if _, err := os.Stat(filepath.Join(rwDir, "ok")); err != nil {
		t.Errorf("the write to the read-write bind is not on the host: %v", err)
	}
	if _, err := os.Stat(filepath.Join(roDir, "x")); err == nil {
		t.Error("the read-only bind was written")
	}

	info := inspect(t, ctx, c)
	var volume string
	for _, m := range info.Mounts {
		switch m.Destination {
		case "/ro":
			if m.RW || m.Propagation != mount.PropagationRPrivate {
				t.Errorf("/ro mounted rw=%v propagation %q", m.RW, m.Propagation)
			}
		case "/vol":
			volume = m.Name
		}
	}
	if volume == "" {
		t.Fatalf("no volume at /vol in %+v", info.Mounts)
	}
	v, err := cli.VolumeInspect(ctx, volume)
	if err != nil || v.Labels[labelTestRun] != runID {
		t.Fatalf("volume %s: %+v, %v; want the spec's labels", volume, v, err)
	}
	if err := c.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.VolumeInspect(ctx, volume); !cerrdefs.IsNotFound(err) {
		t.Errorf("anonymous volume %s outlived its container: %v", volume, err)
	}
}

func TestListOwnedAndRemoveOrphans(t *testing.T) {
	a := newExecutor(t)
	ctx := testCtx(t)
	b := New(cli, "other-"+a.nodeID, "other")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = b.RemoveOrphans(ctx, nil)
	})
	prepare := func(e *Executor, slot uint64) *Controller {
		tk := newTask("exit:0")
		tk.Slot = slot
		c := controller(t, e, tk)
		if err := c.Prepare(ctx); err != nil {
			t.Fatal(err)
		}
		return c
	}
	kept, orphan := prepare(a, 1), prepare(a, 2)
	foreign := prepare(b, 1)

	refs, err := a.ListOwned(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var tasks []string
	for _, r := range refs {
		tasks = append(tasks, r.TaskID)
		if r.State != "created" || r.ID == "" || !strings.HasPrefix(r.Name, "exectest.") {
			t.Errorf("ref %+v", r)
		}
	}
	slices.Sort(tasks)
	want := []string{kept.taskID, orphan.taskID}
	slices.Sort(want)
	if !slices.Equal(tasks, want) {
		t.Fatalf("ListOwned lists tasks %v, want %v", tasks, want)
	}

	removed, err := a.RemoveOrphans(ctx, map[string]bool{kept.taskID: true})
	if err != nil || len(removed) != 1 || removed[0].TaskID != orphan.taskID {
		t.Fatalf("RemoveOrphans: %+v, %v; want only task %s", removed, err, orphan.taskID)
	}
	for _, c := range []*Controller{kept, foreign} {
		if _, err := c.inspect(ctx); err != nil {
			t.Errorf("container %s did not survive: %v", c.Name(), err)
		}
	}
	if _, err := orphan.inspect(ctx); err == nil {
		t.Errorf("orphan %s survived", orphan.Name())
	}
}
