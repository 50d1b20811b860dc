package docker

import (
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/mount"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

func specTask() *shoalpb.Task {
	return &shoalpb.Task{
		Id: "abc123", ServiceId: "s1", ServiceName: "web", Slot: 3,
		Spec: &shoalpb.TaskSpec{Container: &shoalpb.ContainerSpec{Image: "img:1"}},
	}
}

func TestContainerName(t *testing.T) {
	tk := specTask()
	if n, err := ContainerName(tk, "node9"); err != nil || n != "web.3.abc123" {
		t.Fatalf("replicated: %q, %v", n, err)
	}
	tk.Slot = 0
	if n, err := ContainerName(tk, "node9"); err != nil || n != "web.node9.abc123" {
		t.Fatalf("global without node ID: %q, %v", n, err)
	}
	tk.NodeId = "node7"
	if n, err := ContainerName(tk, "node9"); err != nil || n != "web.node7.abc123" {
		t.Fatalf("global: %q, %v", n, err)
	}
	tk.ServiceName = "we b"
	if _, err := ContainerName(tk, "n"); err == nil || !strings.Contains(err.Error(), `"we b.node7.abc123"`) {
		t.Fatalf("bad name: %v", err)
	}
	tk.ServiceName = ""
	if _, err := ContainerName(tk, "n"); err == nil || !strings.Contains(err.Error(), "abc123") {
		t.Fatalf("no service name: %v", err)
	}
}

func TestContainerConfigMapping(t *testing.T) {
	e := New(nil, "node1", "n1")
	tk := specTask()
	spec := tk.Spec.Container
	spec.Labels = map[string]string{LabelTaskID: "forged", "x": "y"}
	spec.Healthcheck = &shoalpb.HealthConfig{Test: []string{"CMD", "true"}, IntervalNs: 1e9, TimeoutNs: 2e9, StartPeriodNs: 3e9, Retries: 4}
	spec.Mounts = []*shoalpb.Mount{
		{Type: shoalpb.Mount_TYPE_VOLUME, Source: "data", Target: "/data", VolumeDriver: "local", VolumeDriverOptions: map[string]string{"o": "bind"}},
		{Type: shoalpb.Mount_TYPE_TMPFS, Target: "/tmp"},
	}
	cfg, err := e.containerConfig(tk)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.config.Labels[LabelTaskID] != "abc123" || cfg.config.Labels["x"] != "y" || cfg.config.Labels[LabelNodeID] != "node1" {
		t.Fatalf("labels %v", cfg.config.Labels)
	}
	if cfg.grace != 10*time.Second || *cfg.config.StopTimeout != 10 {
		t.Fatalf("default grace %v, stop timeout %d", cfg.grace, *cfg.config.StopTimeout)
	}
	if cfg.config.Entrypoint != nil || cfg.config.Cmd != nil {
		t.Fatalf("entrypoint %v, cmd %v: want the image's", cfg.config.Entrypoint, cfg.config.Cmd)
	}
	h := cfg.config.Healthcheck
	if h.Interval != time.Second || h.Timeout != 2*time.Second || h.StartPeriod != 3*time.Second || h.Retries != 4 || h.Test[1] != "true" {
		t.Fatalf("health %+v", h)
	}
	if cfg.host.NetworkMode != "none" || cfg.host.RestartPolicy.Name != "no" {
		t.Fatalf("network %q, restart %q", cfg.host.NetworkMode, cfg.host.RestartPolicy.Name)
	}
	m := cfg.host.Mounts
	if len(m) != 2 || m[0].Type != mount.TypeVolume || m[0].VolumeOptions.DriverConfig.Name != "local" ||
		m[0].VolumeOptions.DriverConfig.Options["o"] != "bind" || m[1].Type != mount.TypeTmpfs || m[1].TmpfsOptions != nil {
		t.Fatalf("mounts %+v", m)
	}

	spec.Healthcheck = &shoalpb.HealthConfig{Test: []string{"NONE"}}
	spec.StopGracePeriodNs = &[]int64{0}[0]
	e.NetworkMode = "host"
	if cfg, err = e.containerConfig(tk); err != nil {
		t.Fatal(err)
	}
	if cfg.config.Healthcheck.Test[0] != "NONE" || *cfg.config.StopTimeout != 0 || cfg.host.NetworkMode != "host" {
		t.Fatalf("health %v, stop timeout %d, network %q", cfg.config.Healthcheck, *cfg.config.StopTimeout, cfg.host.NetworkMode)
	}
}

func TestContainerConfigRejects(t *testing.T) {
	e := New(nil, "node1", "n1")
	for _, tc := range []struct {
		name   string
		change func(*shoalpb.Task)
		want   string
	}{
		{"no spec", func(tk *shoalpb.Task) { tk.Spec = nil }, "no container spec"},
		{"no image", func(tk *shoalpb.Task) { tk.Spec.Container.Image = "" }, "no image"},
		{"negative grace", func(tk *shoalpb.Task) { tk.Spec.Container.StopGracePeriodNs = &[]int64{-1}[0] }, "-1ns"},
		{"relative target", func(tk *shoalpb.Task) {
			tk.Spec.Container.Mounts = []*shoalpb.Mount{{Type: shoalpb.Mount_TYPE_TMPFS, Target: "tmp"}}
		}, `"tmp"`},
		{"twice the target", func(tk *shoalpb.Task) {
			tk.Spec.Container.Mounts = []*shoalpb.Mount{{Type: shoalpb.Mount_TYPE_TMPFS, Target: "/t"}, {Type: shoalpb.Mount_TYPE_TMPFS, Target: "/t/"}}
		}, `"/t/"`},
		{"relative bind source", func(tk *shoalpb.Task) {
			tk.Spec.Container.Mounts = []*shoalpb.Mount{{Source: "data", Target: "/d"}}
		}, `"data"`},
		{"propagation", func(tk *shoalpb.Task) {
			tk.Spec.Container.Mounts = []*shoalpb.Mount{{Source: "/d", Target: "/d", BindPropagation: "sideways"}}
		}, `"sideways"`},
		{"tmpfs source", func(tk *shoalpb.Task) {
			tk.Spec.Container.Mounts = []*shoalpb.Mount{{Type: shoalpb.Mount_TYPE_TMPFS, Source: "/x", Target: "/t"}}
		}, `"/x"`},
		{"tmpfs size", func(tk *shoalpb.Task) {
			tk.Spec.Container.Mounts = []*shoalpb.Mount{{Type: shoalpb.Mount_TYPE_TMPFS, Target: "/t", TmpfsSizeBytes: -5}}
		}, "-5"},
		{"mount type", func(tk *shoalpb.Task) {
			tk.Spec.Container.Mounts = []*shoalpb.Mount{{Type: 9, Target: "/t"}}
		}, "9"},
		{"health test", func(tk *shoalpb.Task) {
			tk.Spec.Container.Healthcheck = &shoalpb.HealthConfig{Test: []string{"curl", "x"}}
		}, "curl"},
		{"health interval", func(tk *shoalpb.Task) {
			tk.Spec.Container.Healthcheck = &shoalpb.HealthConfig{IntervalNs: -2}
		}, "interval -2ns"},
		{"memory", func(tk *shoalpb.Task) {
			tk.Spec.Resources = &shoalpb.ResourceRequirements{Limits: &shoalpb.Resources{MemoryBytes: -7}}
		}, "-7"},
	} {
		tk := specTask()
		tc.change(tk)
		_, err := e.Controller(tk)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "abc123") {
			t.Errorf("%s: %v, want an error naming %s and the task", tc.name, err, tc.want)
		}
	}
	if _, err := New(nil, "", "n").Controller(specTask()); err == nil {
		t.Error("an executor without a node ID made a controller")
	}
}
