package worker

import (
	"testing"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

func TestMustPersist(t *testing.T) {
	st := func(s shoalpb.TaskState, container string) *shoalpb.TaskStatus {
		out := &shoalpb.TaskStatus{State: s}
		if container != "" {
			out.Container = &shoalpb.ContainerStatus{ContainerId: container}
		}
		return out
	}
	const (
		accepted  = shoalpb.TaskState_TASK_STATE_ACCEPTED
		preparing = shoalpb.TaskState_TASK_STATE_PREPARING
		starting  = shoalpb.TaskState_TASK_STATE_STARTING
		running   = shoalpb.TaskState_TASK_STATE_RUNNING
		failed    = shoalpb.TaskState_TASK_STATE_FAILED
	)
	for _, tc := range []struct {
		name     string
		last, st *shoalpb.TaskStatus
		want     bool
	}{
		{"first status", nil, st(accepted, ""), true},
		{"intermediate state", st(accepted, ""), st(preparing, ""), false},
		{"container made", st(preparing, ""), st(starting, "c1"), true},
		{"same container, still starting", st(starting, "c1"), st(starting, "c1"), false},
		{"running", st(starting, "c1"), st(running, "c1"), true},
		{"running again", st(running, "c1"), st(running, "c1"), false},
		{"failed", st(running, "c1"), st(failed, "c1"), true},
	} {
		if got := mustPersist(tc.last, tc.st); got != tc.want {
			t.Errorf("%s: mustPersist = %v, want %v", tc.name, got, tc.want)
		}
	}
}
