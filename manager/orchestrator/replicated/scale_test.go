package replicated

import (
	"slices"
	"testing"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

func TestScaleDownVictims(t *testing.T) {
	task := func(slot uint64, node string, state shoalpb.TaskState) *shoalpb.Task {
		return &shoalpb.Task{Id: node + "-" + string(rune('0'+slot)), Slot: slot, NodeId: node, Status: &shoalpb.TaskStatus{State: state}}
	}
	const (
		run = shoalpb.TaskState_TASK_STATE_RUNNING
		asg = shoalpb.TaskState_TASK_STATE_ASSIGNED
		pen = shoalpb.TaskState_TASK_STATE_PENDING
	)
	for _, tc := range []struct {
		name  string
		tasks []*shoalpb.Task
		n     int
		want  []uint64 // victims' slots, in pick order
	}{
		{"highest slots when nothing else differs", []*shoalpb.Task{task(1, "a", run), task(2, "b", run), task(3, "c", run)}, 2, []uint64{3, 2}},
		{"unassigned first", []*shoalpb.Task{task(1, "", pen), task(2, "a", run), task(3, "a", run)}, 1, []uint64{1}},
		{"busiest node first", []*shoalpb.Task{task(1, "a", run), task(2, "a", run), task(3, "b", run)}, 1, []uint64{2}},
		{"not running first on a node", []*shoalpb.Task{task(1, "a", asg), task(2, "a", run), task(3, "b", run)}, 1, []uint64{1}},
		{"balance as picks go", []*shoalpb.Task{task(1, "a", run), task(2, "a", run), task(3, "a", asg), task(4, "b", run), task(5, "c", asg)}, 3, []uint64{3, 2, 5}},
		{"more than there are", []*shoalpb.Task{task(1, "a", run)}, 3, []uint64{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			occ := map[uint64]*shoalpb.Task{}
			for _, x := range tc.tasks {
				occ[x.Slot] = x
			}
			var got []uint64
			for _, v := range scaleDownVictims(occ, tc.n) {
				got = append(got, v.Slot)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("victims %v, want %v", got, tc.want)
			}
		})
	}
}
