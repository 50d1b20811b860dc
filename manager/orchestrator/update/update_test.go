package update_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/manager/orchestrator"
	"github.com/shoal-project/shoal/manager/orchestrator/orchestratortest"
	"github.com/shoal-project/shoal/manager/orchestrator/update"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

func setImage(image string) func(*shoalpb.ServiceSpec) {
	return func(s *shoalpb.ServiceSpec) { s.Task.Container.Image = image }
}

// eachSlotOnce checks that every slot 1..n ran exactly one task of spec
// version v.
func eachSlotOnce(t *testing.T, tasks []*shoalpb.Task, n int, v uint64) {
	t.Helper()
	per := map[uint64]int{}
	for _, task := range ofVersion(tasks, v) {
		per[task.Slot]++
	}
	for s := uint64(1); s <= uint64(n); s++ {
		if per[s] != 1 {
			t.Fatalf("slot %d has %d tasks of version %d, want 1:\n%s", s, per[s], v, orchestratortest.Dump(tasks))
		}
	}
}

func TestStopFirstReplacesSlotBySlot(t *testing.T) {
	h := newHarness(t, "n1", "n2")
	before := h.startAndConverge(svcOf("web", 4, "web:1"), 4)
	stop := h.watchRunning("web")

	h.update("web", setImage("web:2"))
	tasks := h.WaitTasks("web", "4 tasks of version 2 running", converged(4, 2))
	if st := h.service("web").GetUpdateStatus().GetState(); st != stUpdating {
		t.Fatalf("status %v before the monitor window ended, want UPDATING", st)
	}
	h.Clock.Advance(update.DefaultMonitor)
	svc := h.waitStatus("web", stCompleted)
	lo, hi := stop()

	if svc.UpdateStatus.Message != "update completed" || svc.UpdateStatus.CompletedAt != h.Clock.Now().UnixNano() ||
		svc.UpdateStatus.StartedAt != orchestratortest.Start.Add(time.Second).UnixNano() {
		t.Errorf("status %v", svc.UpdateStatus)
	}
	// One slot at a time, old task stopped before its replacement ran.
	if lo != 3 || hi != 4 {
		t.Errorf("running tasks ranged %d..%d during the update, want 3..4 (parallelism 1, stop-first)", lo, hi)
	}
	tasks = h.Tasks("web")
	eachSlotOnce(t, tasks, 4, 2)
	for _, old := range before {
		for _, task := range tasks {
			if task.Id == old.Id && (task.DesiredState != shutdown || task.Status.State != shutdown) {
				t.Errorf("old task %s: desired %v observed %v", task.Id, task.DesiredState, task.Status.State)
			}
		}
	}
	if len(tasks) != 8 {
		t.Errorf("%d tasks, want 4 old and 4 new:\n%s", len(tasks), orchestratortest.Dump(tasks))
	}
}

func TestStopFirstWaitsForTheOldTaskToStop(t *testing.T) {
	h := newHarness(t, "n1")
	before := h.startAndConverge(svcOf("web", 1, "web:1"), 1)
	old := before[0]
	h.mu.Lock()
	h.stopSilently[old.Id] = true
	h.mu.Unlock()

	h.update("web", setImage("web:2"))
	tasks := h.WaitTasks("web", "the replacement prepared", func(tasks []*shoalpb.Task) bool {
		nw := ofVersion(tasks, 2)
		return len(nw) == 1 && nw[0].Status.State == ready
	})
	nw := ofVersion(tasks, 2)[0]
	if nw.DesiredState != ready || nw.Slot != old.Slot {
		t.Fatalf("replacement desired %v in slot %d; want READY in slot %d", nw.DesiredState, nw.Slot, old.Slot)
	}
	// The old task has not reported stopping: the replacement waits, past
	// the restart supervisor's delay too.
	h.Clock.Advance(6 * time.Second)
	h.barrier()
	if got := h.Tasks("web"); ofVersion(got, 2)[0].DesiredState != ready {
		t.Fatalf("replacement started while the old task still runs:\n%s", orchestratortest.Dump(got))
	}
	// Once it stops, the replacement starts at once.
	h.Report(map[string]shoalpb.TaskState{old.Id: shutdown})
	h.WaitTasks("web", "the replacement running", converged(1, 2))

	// A replacement being prepared is started only once prepared, even
	// after the old task stopped: a change of its desired state would
	// interrupt the worker's preparation.
	h.mu.Lock()
	h.slowPrepare["web:3"] = true
	h.mu.Unlock()
	h.Clock.Advance(time.Second)
	h.update("web", setImage("web:3"))
	h.WaitTasks("web", "the replacement preparing, its old task stopped", func(tasks []*shoalpb.Task) bool {
		nw, old := ofVersion(tasks, 3), ofVersion(tasks, 2)
		return len(nw) == 1 && nw[0].Status.State == shoalpb.TaskState_TASK_STATE_PREPARING && old[0].Status.State == shutdown
	})
	h.Clock.Advance(time.Minute)
	h.barrier()
	if got := ofVersion(h.Tasks("web"), 3)[0]; got.DesiredState != ready {
		t.Fatalf("replacement started while preparing: desired %v", got.DesiredState)
	}
	h.mu.Lock()
	h.slowPrepare["web:3"] = false
	h.mu.Unlock()
	h.poke()
	h.WaitTasks("web", "the prepared replacement running", converged(1, 3))

	// A task that never reports stopping is waited for its grace period
	// plus the slack, no longer.
	cur := h.Tasks("web")
	h.mu.Lock()
	h.stopSilently[ofVersion(cur, 3)[0].Id] = true
	h.mu.Unlock()
	h.Clock.Advance(time.Second)
	h.update("web", func(s *shoalpb.ServiceSpec) {
		s.Task.Container.Image = "web:4"
		s.Task.Container.StopGracePeriodNs = i64(2 * time.Second)
	})
	h.WaitTasks("web", "the second replacement prepared", func(tasks []*shoalpb.Task) bool {
		nw := ofVersion(tasks, 4)
		return len(nw) == 1 && nw[0].Status.State == ready
	})
	h.Clock.Advance(10*time.Second + update.StopSlack - time.Millisecond)
	h.barrier()
	if got := h.Tasks("web"); ofVersion(got, 4)[0].DesiredState != ready {
		t.Fatalf("replacement started before the grace period and slack:\n%s", orchestratortest.Dump(got))
	}
	h.Clock.Advance(time.Millisecond)
	h.WaitTasks("web", "the second replacement running", func(tasks []*shoalpb.Task) bool {
		nw := ofVersion(tasks, 4)
		return len(nw) == 1 && nw[0].Status.State == running
	})
}

func TestStartFirstNeverRunsFewerThanReplicas(t *testing.T) {
	h := newHarness(t, "n1", "n2", "n3")
	svc := svcOf("web", 3, "web:1")
	svc.Spec.Update = &shoalpb.UpdateConfig{Parallelism: 1, Order: shoalpb.UpdateConfig_ORDER_START_FIRST}
	h.startAndConverge(svc, 3)
	stop := h.watchRunning("web")
	h.update("web", setImage("web:2"))
	h.WaitTasks("web", "3 tasks of version 2 running", converged(3, 2))
	h.Clock.Advance(update.DefaultMonitor)
	h.waitStatus("web", stCompleted)
	lo, hi := stop()
	if lo != 3 || hi != 4 {
		t.Errorf("running tasks ranged %d..%d during a start-first update, want 3..4", lo, hi)
	}
	eachSlotOnce(t, h.Tasks("web"), 3, 2)
}

func TestStartFirstFailureKeepsTheOldTask(t *testing.T) {
	h := newHarness(t, "n1", "n2")
	svc := svcOf("web", 2, "web:1")
	svc.Spec.Update = &shoalpb.UpdateConfig{Parallelism: 1, Order: shoalpb.UpdateConfig_ORDER_START_FIRST}
	before := h.startAndConverge(svc, 2)
	h.setPolicy(byImage(map[string]outcome{"web:2": fail}))
	h.update("web", setImage("web:2"))
	svc = h.waitStatus("web", stPaused)
	tasks := h.Tasks("web")
	nw := ofVersion(tasks, 2)
	if len(nw) != 1 {
		t.Fatalf("%d new tasks, want the one that failed:\n%s", len(nw), orchestratortest.Dump(tasks))
	}
	if want := "update paused due to failure or early termination of task " + nw[0].Id; svc.UpdateStatus.Message != want {
		t.Errorf("message %q, want %q", svc.UpdateStatus.Message, want)
	}
	h.barrier()
	run := runningWanted(h.Tasks("web"))
	if len(run) != 2 || run[0].Id != before[0].Id && run[1].Id != before[0].Id {
		t.Fatalf("the old tasks must keep running:\n%s", h.dump("web"))
	}
}

func TestParallelism(t *testing.T) {
	for _, tc := range []struct {
		name        string
		parallelism uint64
		batches     []int
	}{
		{"two at a time", 2, []int{2, 2, 1}},
		{"all at once", 0, []int{5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "n1", "n2")
			svc := svcOf("web", 5, "web:1")
			svc.Spec.Update = &shoalpb.UpdateConfig{Parallelism: tc.parallelism}
			h.startAndConverge(svc, 5)
			h.setPolicy(byImage(map[string]outcome{"web:2": hold}))
			h.update("web", setImage("web:2"))
			made := 0
			for i, n := range tc.batches {
				tasks := h.WaitTasks("web", fmt.Sprintf("batch %d", i+1), func(tasks []*shoalpb.Task) bool {
					return len(ofVersion(tasks, 2)) == made+n
				})
				// Nothing more is started while the batch is in flight.
				h.barrier()
				tasks = h.Tasks("web")
				if got := len(ofVersion(tasks, 2)); got != made+n {
					t.Fatalf("batch %d: %d new tasks, want %d:\n%s", i+1, got, made+n, orchestratortest.Dump(tasks))
				}
				var ids []string
				for _, nt := range ofVersion(tasks, 2) {
					ids = append(ids, nt.Id)
				}
				made += n
				h.release(ids...)
			}
			h.WaitTasks("web", "5 tasks of version 2 running", converged(5, 2))
			h.Clock.Advance(update.DefaultMonitor)
			h.waitStatus("web", stCompleted)
			eachSlotOnce(t, h.Tasks("web"), 5, 2)
		})
	}
}

func TestDelayBetweenSlots(t *testing.T) {
	h := newHarness(t, "n1")
	svc := svcOf("web", 3, "web:1")
	svc.Spec.Update = &shoalpb.UpdateConfig{Parallelism: 1, DelayNs: int64(10 * time.Second), MonitorNs: i64(time.Second)}
	h.startAndConverge(svc, 3)
	h.update("web", setImage("web:2"))
	for i := 1; i <= 3; i++ {
		h.WaitTasks("web", fmt.Sprintf("%d new tasks running", i), func(tasks []*shoalpb.Task) bool {
			return len(runningWanted(ofVersion(tasks, 2))) == i
		})
		if i == 3 {
			break
		}
		h.Clock.Advance(10*time.Second - time.Millisecond)
		h.barrier()
		if n := len(ofVersion(h.Tasks("web"), 2)); n != i {
			t.Fatalf("%d new tasks before the delay passed, want %d:\n%s", n, i, h.dump("web"))
		}
		h.Clock.Advance(time.Millisecond)
	}
	if st := h.service("web").GetUpdateStatus().GetState(); st != stUpdating {
		t.Fatalf("status %v before the last monitor window, want UPDATING", st)
	}
	h.Clock.Advance(time.Second)
	h.waitStatus("web", stCompleted)
}

func TestMonitorFailurePausesAndUpdateResumes(t *testing.T) {
	h := newHarness(t, "n1", "n2")
	svc := svcOf("web", 3, "web:1")
	svc.Spec.Task.Restart = &shoalpb.RestartPolicy{DelayNs: i64(0)}
	h.startAndConverge(svc, 3)
	h.update("web", setImage("web:2"))
	first := h.WaitTasks("web", "the first new task running", func(tasks []*shoalpb.Task) bool {
		return len(runningWanted(ofVersion(tasks, 2))) == 1
	})
	victim := runningWanted(ofVersion(first, 2))[0]
	// The update moves on to the second slot at once; hold it there.
	h.setPolicy(byImage(map[string]outcome{"web:2": hold}))
	h.WaitTasks("web", "the second new task starting", func(tasks []*shoalpb.Task) bool {
		nw := ofVersion(tasks, 2)
		return len(nw) == 2 && nw[1].Status.State == starting
	})
	h.Clock.Advance(4 * time.Second)
	h.Report(map[string]shoalpb.TaskState{victim.Id: failed})
	svc = h.waitStatus("web", stPaused)
	if want := "update paused due to failure or early termination of task " + victim.Id; svc.UpdateStatus.Message != want {
		t.Errorf("message %q, want %q", svc.UpdateStatus.Message, want)
	}
	// Paused: nothing more is replaced; the failed slot is restarted by
	// its restart policy with the new spec, and no slot is left empty.
	h.setPolicy(byImage(nil))
	h.WaitTasks("web", "3 tasks running", func(tasks []*shoalpb.Task) bool { return len(runningWanted(tasks)) == 3 })
	h.barrier()
	tasks := h.Tasks("web")
	if n := len(runningWanted(ofVersion(tasks, 1))); n != 1 {
		t.Fatalf("%d old tasks running while paused, want 1:\n%s", n, orchestratortest.Dump(tasks))
	}

	// Updating the service again (no spec change, as the CLI's
	// `service update` without flags) resumes it.
	h.Clock.Advance(time.Second)
	h.setStatus("web", &shoalpb.UpdateStatus{State: stUpdating, StartedAt: h.Clock.Now().UnixNano()})
	h.WaitTasks("web", "all new tasks running", converged(3, 2))
	h.Clock.Advance(update.DefaultMonitor)
	h.waitStatus("web", stCompleted)
}

func TestFailureAfterTheMonitorWindowIsNotCounted(t *testing.T) {
	h := newHarness(t, "n1")
	svc := svcOf("web", 2, "web:1")
	svc.Spec.Task.Restart = &shoalpb.RestartPolicy{DelayNs: i64(0)}
	h.startAndConverge(svc, 2)
	h.setPolicy(byImage(map[string]outcome{"web:2": hold}))
	h.update("web", setImage("web:2"))
	tasks := h.WaitTasks("web", "the first new task", func(tasks []*shoalpb.Task) bool { return len(ofVersion(tasks, 2)) == 1 })
	first := ofVersion(tasks, 2)[0]
	h.release(first.Id)
	h.WaitTasks("web", "the first new task running", func(tasks []*shoalpb.Task) bool {
		return len(runningWanted(ofVersion(tasks, 2))) == 1
	})
	h.Clock.Advance(update.DefaultMonitor)
	h.Report(map[string]shoalpb.TaskState{first.Id: failed})
	h.setPolicy(byImage(nil))
	h.WaitTasks("web", "all new tasks running", converged(2, 2))
	h.Clock.Advance(update.DefaultMonitor)
	h.waitStatus("web", stCompleted)
}

func TestFailureRollsBack(t *testing.T) {
	h := newHarness(t, "n1", "n2")
	svc := svcOf("web", 4, "web:1")
	svc.Spec.Update = &shoalpb.UpdateConfig{Parallelism: 2, FailureAction: shoalpb.UpdateConfig_FAILURE_ACTION_ROLLBACK}
	svc.Spec.Rollback = &shoalpb.UpdateConfig{Parallelism: 0, MonitorNs: i64(time.Second)}
	before := h.startAndConverge(svc, 4)
	h.setPolicy(byImage(map[string]outcome{"web:2": fail}))
	h.update("web", setImage("web:2"))
	svc = h.waitStatus("web", stRollbackStarted)
	if !strings.HasPrefix(svc.UpdateStatus.Message, "update rolled back due to failure or early termination of task ") {
		t.Errorf("message %q", svc.UpdateStatus.Message)
	}
	if svc.Spec.Task.Container.Image != "web:1" || svc.SpecVersion != 3 || svc.PreviousSpec != nil {
		t.Errorf("after the rollback: image %s, spec version %d, previous spec %v", svc.Spec.Task.Container.Image, svc.SpecVersion, svc.PreviousSpec)
	}
	tasks := h.WaitTasks("web", "4 tasks of the old image running", func(tasks []*shoalpb.Task) bool {
		r := runningWanted(tasks)
		if len(r) != 4 || len(orchestratortest.Runnable(tasks)) != 4 {
			return false
		}
		for _, t := range r {
			if t.Spec.Container.Image != "web:1" {
				return false
			}
		}
		return true
	})
	// Slots the update had not reached keep their tasks.
	kept := 0
	for _, old := range before {
		for _, t := range runningWanted(tasks) {
			if t.Id == old.Id {
				kept++
			}
		}
	}
	if kept != 2 {
		t.Errorf("%d original tasks kept, want the 2 the update did not reach:\n%s", kept, orchestratortest.Dump(tasks))
	}
	h.Clock.Advance(time.Second)
	why := svc.UpdateStatus.Message
	svc = h.waitStatus("web", stRollbackCompleted)
	if want := "rollback completed (" + why + ")"; svc.UpdateStatus.Message != want {
		t.Errorf("message %q, want %q", svc.UpdateStatus.Message, want)
	}
}

func TestFailedRollbackPauses(t *testing.T) {
	h := newHarness(t, "n1")
	svc := svcOf("web", 2, "web:1")
	svc.Spec.Update = &shoalpb.UpdateConfig{Parallelism: 1, FailureAction: shoalpb.UpdateConfig_FAILURE_ACTION_ROLLBACK}
	svc.Spec.Rollback = &shoalpb.UpdateConfig{Parallelism: 1, FailureAction: shoalpb.UpdateConfig_FAILURE_ACTION_ROLLBACK}
	h.startAndConverge(svc, 2)
	// The old image no longer starts either.
	h.setPolicy(byImage(map[string]outcome{"web:2": fail, "web:1": fail}))
	h.update("web", setImage("web:2"))
	svc = h.waitStatus("web", stRollbackPaused)
	if !strings.HasPrefix(svc.UpdateStatus.Message, "rollback paused due to failure or early termination of task ") {
		t.Errorf("message %q", svc.UpdateStatus.Message)
	}
}

func TestFailureActionContinue(t *testing.T) {
	for _, order := range []shoalpb.UpdateConfig_Order{shoalpb.UpdateConfig_ORDER_STOP_FIRST, shoalpb.UpdateConfig_ORDER_START_FIRST} {
		t.Run(order.String(), func(t *testing.T) {
			h := newHarness(t, "n1", "n2")
			svc := svcOf("web", 3, "web:1")
			svc.Spec.Task.Restart = &shoalpb.RestartPolicy{Condition: shoalpb.RestartPolicy_CONDITION_NONE}
			svc.Spec.Update = &shoalpb.UpdateConfig{Parallelism: 1, FailureAction: shoalpb.UpdateConfig_FAILURE_ACTION_CONTINUE, Order: order}
			h.startAndConverge(svc, 3)
			h.setPolicy(byImage(map[string]outcome{"web:2": fail}))
			h.update("web", setImage("web:2"))
			h.waitStatus("web", stCompleted)
			// Every slot was handed to its restart policy (none): no old
			// task is left running.
			tasks := h.WaitTasks("web", "no runnable task", func(tasks []*shoalpb.Task) bool {
				return len(orchestratortest.Runnable(tasks)) == 0
			})
			eachSlotOnce(t, tasks, 3, 2)
		})
	}
}

func TestMaxFailureRatio(t *testing.T) {
	for _, tc := range []struct {
		name  string
		bad   []uint64
		ratio float32
		want  shoalpb.UpdateStatus_State
	}{
		{"one of four is tolerated at 0.25", []uint64{1}, 0.25, stCompleted},
		{"two of four are not", []uint64{1, 3}, 0.25, stPaused},
		{"any failure pauses at 0", []uint64{4}, 0, stPaused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "n1", "n2")
			svc := svcOf("web", 4, "web:1")
			svc.Spec.Update = &shoalpb.UpdateConfig{Parallelism: 1, MaxFailureRatio: tc.ratio}
			h.startAndConverge(svc, 4)
			h.setPolicy(func(task *shoalpb.Task) outcome {
				for _, s := range tc.bad {
					if task.Slot == s && task.SpecVersion == 2 {
						return fail
					}
				}
				return run
			})
			h.update("web", setImage("web:2"))
			if tc.want == stCompleted {
				h.WaitTasks("web", "every slot updated", func(tasks []*shoalpb.Task) bool {
					return len(runningWanted(ofVersion(tasks, 2))) == 4-len(tc.bad)
				})
				h.Clock.Advance(update.DefaultMonitor)
			}
			svc = h.waitStatus("web", tc.want)
			if tc.want == stPaused && !strings.Contains(svc.UpdateStatus.Message, "update paused due to failure") {
				t.Errorf("message %q", svc.UpdateStatus.Message)
			}
		})
	}
}

func TestTaskTimeout(t *testing.T) {
	h := newHarness(t, "n1")
	svc := svcOf("web", 2, "web:1")
	svc.Spec.Update = &shoalpb.UpdateConfig{Parallelism: 1, TaskTimeoutNs: i64(30 * time.Second)}
	h.startAndConverge(svc, 2)
	h.setPolicy(byImage(map[string]outcome{"web:2": hold}))
	h.update("web", setImage("web:2"))
	tasks := h.WaitTasks("web", "the new task starting", func(tasks []*shoalpb.Task) bool {
		nw := ofVersion(tasks, 2)
		return len(nw) == 1 && nw[0].Status.State == starting
	})
	nt := ofVersion(tasks, 2)[0]
	h.Clock.Advance(30*time.Second - time.Millisecond)
	h.barrier()
	if st := h.service("web").GetUpdateStatus().GetState(); st != stUpdating {
		t.Fatalf("status %v before the timeout", st)
	}
	h.Clock.Advance(time.Millisecond)
	svc = h.waitStatus("web", stPaused)
	if want := fmt.Sprintf("update paused due to timeout of task %s (not running 30s after it was created)", nt.Id); svc.UpdateStatus.Message != want {
		t.Errorf("message %q, want %q", svc.UpdateStatus.Message, want)
	}
	// The slow task is left alone: it may still come up.
	h.release(nt.Id)
	h.WaitTasks("web", "the slow task running", func(tasks []*shoalpb.Task) bool { return len(runningWanted(ofVersion(tasks, 2))) == 1 })
}

func TestUpdateResumesAfterLeaderChange(t *testing.T) {
	h := newHarness(t, "n1", "n2")
	svc := svcOf("web", 4, "web:1")
	svc.Spec.Update = &shoalpb.UpdateConfig{Parallelism: 1, MaxFailureRatio: 0.3}
	// Failed slots stay empty, so only the updater makes tasks here.
	svc.Spec.Task.Restart = &shoalpb.RestartPolicy{Condition: shoalpb.RestartPolicy_CONDITION_NONE}
	h.startAndConverge(svc, 4)
	h.setPolicy(func(task *shoalpb.Task) outcome {
		if task.SpecVersion == 2 && task.Slot == 1 {
			return fail
		}
		if task.SpecVersion == 2 {
			return hold
		}
		return run
	})
	h.update("web", setImage("web:2"))
	h.WaitTasks("web", "the second slot in flight", func(tasks []*shoalpb.Task) bool {
		for _, t := range ofVersion(tasks, 2) {
			if t.Slot == 2 && t.Status.State == starting {
				return true
			}
		}
		return false
	})
	// Leadership moves: a new updater picks the update up from the store.
	h.stopUpdater()
	h.startUpdater()
	h.barrier()
	if n := len(ofVersion(h.Tasks("web"), 2)); n != 2 {
		t.Fatalf("%d new tasks after the restart, want the 2 made before it:\n%s", n, h.dump("web"))
	}
	// Its failure still counts: one more would exceed the ratio.
	h.setPolicy(func(task *shoalpb.Task) outcome {
		if task.SpecVersion == 2 && (task.Slot == 1 || task.Slot == 3) {
			return fail
		}
		return run
	})
	svc = h.waitStatus("web", stPaused)
	tasks := h.Tasks("web")
	for _, task := range ofVersion(tasks, 2) {
		if task.Slot == 3 && !strings.HasSuffix(svc.UpdateStatus.Message, task.Id) {
			t.Errorf("message %q does not name the task of slot 3 (%s)", svc.UpdateStatus.Message, task.Id)
		}
	}
	per := map[uint64]int{}
	for _, task := range ofVersion(tasks, 2) {
		per[task.Slot]++
	}
	if per[2] != 1 || per[3] != 1 || per[4] != 0 {
		t.Errorf("new tasks per slot %v:\n%s", per, orchestratortest.Dump(tasks))
	}
}

func TestGlobalServiceNodeByNode(t *testing.T) {
	h := newHarness(t, "n1", "n2", "n3")
	svc := svcOf("agent", 0, "agent:1")
	h.CreateService(svc)
	before := h.WaitTasks("agent", "3 running tasks", converged(3, 1))
	h.Clock.Advance(time.Second)
	// A paused node keeps its task and takes none.
	h.SetAvailability("n3", shoalpb.NodeAvailability_NODE_AVAILABILITY_PAUSE)
	stop := h.watchRunning("agent")
	h.update("agent", setImage("agent:2"))
	h.WaitTasks("agent", "2 new tasks running", func(tasks []*shoalpb.Task) bool {
		return len(runningWanted(ofVersion(tasks, 2))) == 2
	})
	h.Clock.Advance(update.DefaultMonitor)
	h.waitStatus("agent", stCompleted)
	if lo, _ := stop(); lo != 2 {
		t.Errorf("at least %d tasks running during the update, want 2 (one node at a time)", lo)
	}
	tasks := h.Tasks("agent")
	perNode := map[string]string{}
	for _, task := range runningWanted(tasks) {
		perNode[task.NodeId] = task.Spec.Container.Image
	}
	if perNode["n1"] != "agent:2" || perNode["n2"] != "agent:2" || perNode["n3"] != "agent:1" {
		t.Fatalf("images per node %v:\n%s", perNode, orchestratortest.Dump(tasks))
	}
	for _, old := range before {
		if old.NodeId == "n3" {
			continue
		}
		for _, nt := range ofVersion(tasks, 2) {
			if nt.NodeId == old.NodeId && nt.Slot != 0 {
				t.Errorf("global task %s has slot %d", nt.Id, nt.Slot)
			}
		}
	}
	// Once it takes tasks again, its task is updated too.
	h.SetAvailability("n3", shoalpb.NodeAvailability_NODE_AVAILABILITY_ACTIVE)
	h.WaitTasks("agent", "3 new tasks running", converged(3, 2))
}

func TestNoUpdateWithoutTaskSpecChange(t *testing.T) {
	h := newHarness(t, "n1")
	before := h.startAndConverge(svcOf("web", 2, "web:1"), 2)
	h.update("web", func(s *shoalpb.ServiceSpec) { s.GetReplicated().Replicas = 3; s.Labels = map[string]string{"a": "b"} })
	h.WaitTasks("web", "3 running tasks", converged(3, 1))
	h.barrier()
	if st := h.service("web").GetUpdateStatus(); st != nil {
		t.Fatalf("update status %v after a change of replicas and labels", st)
	}
	tasks := h.Tasks("web")
	for _, old := range before {
		found := false
		for _, task := range runningWanted(tasks) {
			found = found || task.Id == old.Id
		}
		if !found {
			t.Errorf("task %s was replaced:\n%s", old.Id, orchestratortest.Dump(tasks))
		}
	}
}

func TestUpdaterStartsAnUpdateForOutdatedTasks(t *testing.T) {
	h := newHarness(t, "n1")
	h.startAndConverge(svcOf("web", 2, "web:1"), 2)
	// A spec written with no update status (not through the control API).
	h.UpdateService("web", func(s *shoalpb.Service) { s.Spec.Task.Container.Image = "web:2" })
	svc := h.waitStatus("web", stUpdating)
	if svc.UpdateStatus.StartedAt != h.Clock.Now().UnixNano() || svc.UpdateStatus.Message != "update in progress" {
		t.Errorf("status %v", svc.UpdateStatus)
	}
	h.WaitTasks("web", "new tasks running", converged(2, 2))
	h.Clock.Advance(update.DefaultMonitor)
	h.waitStatus("web", stCompleted)
}

func TestRemovedServiceIsForgotten(t *testing.T) {
	h := newHarness(t, "n1")
	h.startAndConverge(svcOf("web", 2, "web:1"), 2)
	h.setPolicy(byImage(map[string]outcome{"web:2": hold}))
	h.update("web", setImage("web:2"))
	h.WaitTasks("web", "a new task", func(tasks []*shoalpb.Task) bool { return len(ofVersion(tasks, 2)) == 1 })
	h.RemoveService("web")
	h.barrier()
	h.Clock.Advance(time.Hour)
	h.barrier()
	var left []*shoalpb.Task
	h.Store.View(func(tx store.ReadTx) { left = tx.TasksByService("web") })
	if n := len(ofVersion(left, 2)); n != 1 {
		t.Errorf("%d new tasks after the service was removed, want the 1 made before:\n%s", n, orchestratortest.Dump(left))
	}
}

var _ = context.Background
var _ = orchestrator.IsRunnable
