package replicated_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/manager/orchestrator"
	"github.com/shoal-project/shoal/manager/orchestrator/orchestratortest"
	"github.com/shoal-project/shoal/manager/orchestrator/replicated"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

const (
	running  = shoalpb.TaskState_TASK_STATE_RUNNING
	ready    = shoalpb.TaskState_TASK_STATE_READY
	pending  = shoalpb.TaskState_TASK_STATE_PENDING
	shutdown = shoalpb.TaskState_TASK_STATE_SHUTDOWN
	failed   = shoalpb.TaskState_TASK_STATE_FAILED
	complete = shoalpb.TaskState_TASK_STATE_COMPLETE
)

func start(t *testing.T, e *orchestratortest.Env) {
	t.Helper()
	o, err := replicated.New(e.Config())
	if err != nil {
		t.Fatal(err)
	}
	e.Go(o.Run)
}

func newEnv(t *testing.T) *orchestratortest.Env {
	e := orchestratortest.NewEnv(t)
	start(t, e)
	return e
}

func barrier(e *orchestratortest.Env) {
	e.Barrier(func(id string) *shoalpb.Service { return orchestratortest.Replicated(id, 1) })
}

// bySlot returns the runnable task of each slot; it fails the test if a
// slot has two.
func bySlot(t *testing.T, tasks []*shoalpb.Task) map[uint64]*shoalpb.Task {
	t.Helper()
	out := map[uint64]*shoalpb.Task{}
	for _, task := range orchestratortest.Runnable(tasks) {
		if out[task.Slot] != nil {
			t.Fatalf("slot %d has two runnable tasks:\n%s", task.Slot, orchestratortest.Dump(tasks))
		}
		out[task.Slot] = task
	}
	return out
}

func runnableCount(n int) func([]*shoalpb.Task) bool {
	return func(tasks []*shoalpb.Task) bool { return len(orchestratortest.Runnable(tasks)) == n }
}

func withRestart(svc *shoalpb.Service, p *shoalpb.RestartPolicy) *shoalpb.Service {
	svc.Spec.Task.Restart = p
	return svc
}

func TestCreateAndScale(t *testing.T) {
	e := newEnv(t)
	svc := orchestratortest.Replicated("web", 3)
	svc.Spec.Task.Container.Env = []string{"A=1"}
	e.CreateService(svc)
	tasks := e.WaitTasks("web", "3 tasks", runnableCount(3))
	slots := bySlot(t, tasks)
	now := orchestratortest.Start.UnixNano()
	for slot := uint64(1); slot <= 3; slot++ {
		task := slots[slot]
		if task == nil {
			t.Fatalf("slot %d has no task:\n%s", slot, orchestratortest.Dump(tasks))
		}
		if task.ServiceId != "web" || task.ServiceName != "web" || task.SpecVersion != 1 || task.NodeId != "" ||
			task.DesiredState != running || task.Status.GetState() != pending || task.Status.Message != "pending" ||
			task.Status.Timestamp != now || task.Meta.CreatedAt != now || task.Meta.UpdatedAt != now {
			t.Errorf("slot %d: unexpected task %v", slot, task)
		}
		if !proto.Equal(task.Spec, svc.Spec.Task) {
			t.Errorf("slot %d: spec %v, want the service's %v", slot, task.Spec, svc.Spec.Task)
		}
	}

	e.UpdateService("web", func(s *shoalpb.Service) { s.Spec.GetReplicated().Replicas = 5 })
	tasks = e.WaitTasks("web", "5 tasks", runnableCount(5))
	slots = bySlot(t, tasks)
	for slot := uint64(1); slot <= 5; slot++ {
		if slots[slot] == nil {
			t.Fatalf("slot %d has no task after scaling up:\n%s", slot, orchestratortest.Dump(tasks))
		}
	}
	if slots[4].SpecVersion != 2 || slots[1].SpecVersion != 1 {
		t.Errorf("spec versions: slot 1 %d (want 1, untouched), slot 4 %d (want 2)", slots[1].SpecVersion, slots[4].SpecVersion)
	}

	// No task is placed, so the highest slots go.
	e.UpdateService("web", func(s *shoalpb.Service) { s.Spec.GetReplicated().Replicas = 2 })
	tasks = e.WaitTasks("web", "2 runnable tasks", runnableCount(2))
	slots = bySlot(t, tasks)
	if slots[1] == nil || slots[2] == nil {
		t.Fatalf("kept slots %v, want 1 and 2:\n%s", orchestrator.SortedKeys(slots), orchestratortest.Dump(tasks))
	}
	if len(tasks) != 5 {
		t.Fatalf("%d tasks, want the 5 made (scaling down only shuts tasks down)", len(tasks))
	}
	for _, task := range tasks {
		if task.Slot > 2 && task.DesiredState != shutdown {
			t.Errorf("slot %d desired %v, want SHUTDOWN", task.Slot, task.DesiredState)
		}
	}
}

func TestScaleDownPrefersBusyNodesAndTasksNotRunning(t *testing.T) {
	e := newEnv(t)
	e.AddNodes(orchestratortest.Node("n1"), orchestratortest.Node("n2"), orchestratortest.Node("n3"))
	e.CreateService(orchestratortest.Replicated("web", 5))
	tasks := e.WaitTasks("web", "5 tasks", runnableCount(5))
	slots := bySlot(t, tasks)
	place := map[uint64]string{1: "n1", 2: "n1", 3: "n1", 4: "n2", 5: "n3"}
	for slot, node := range place {
		e.Assign(slots[slot].Id, node)
	}
	e.Report(map[string]shoalpb.TaskState{slots[1].Id: running, slots[2].Id: running, slots[4].Id: running})
	barrier(e)

	e.UpdateService("web", func(s *shoalpb.Service) { s.Spec.GetReplicated().Replicas = 2 })
	tasks = e.WaitTasks("web", "2 runnable tasks", runnableCount(2))
	// n1 runs three: its task not yet running (slot 3) goes, then the
	// higher of its running ones (slot 2); then every node runs one, and
	// the task not yet running (slot 5, on n3) goes.
	kept := bySlot(t, tasks)
	if kept[1] == nil || kept[4] == nil {
		t.Fatalf("kept slots %v, want 1 and 4:\n%s", orchestrator.SortedKeys(kept), orchestratortest.Dump(tasks))
	}
}

func TestFailedTaskRestartsInSlotAfterDelay(t *testing.T) {
	e := newEnv(t)
	e.AddNodes(orchestratortest.Node("n1"))
	e.CreateService(orchestratortest.Replicated("web", 2))
	slots := bySlot(t, e.WaitTasks("web", "2 tasks", runnableCount(2)))
	old := slots[2]
	e.Assign(old.Id, "n1")
	e.Report(map[string]shoalpb.TaskState{old.Id: failed})
	created := e.Clock.Now().UnixNano()

	tasks := e.WaitTasks("web", "a replacement in slot 2", func(tasks []*shoalpb.Task) bool {
		s := bySlot(t, tasks)
		return s[2] != nil && s[2].Id != old.Id
	})
	repl := bySlot(t, tasks)[2]
	if repl.DesiredState != ready || repl.NodeId != "" || repl.Meta.CreatedAt != created {
		t.Fatalf("replacement %v: want desired READY, no node, made now", repl)
	}
	for _, task := range tasks {
		if task.Id == old.Id && (task.DesiredState != shutdown || task.Status.State != failed) {
			t.Fatalf("failed task: desired %v observed %v, want SHUTDOWN and FAILED kept", task.DesiredState, task.Status.State)
		}
	}

	e.Clock.Advance(4 * time.Second)
	barrier(e)
	if got := bySlot(t, e.Tasks("web"))[2]; got.DesiredState != ready {
		t.Fatalf("replacement desired %v 4 s after the failure, want READY until the 5 s delay", got.DesiredState)
	}
	e.Clock.Advance(time.Second)
	e.WaitTasks("web", "the replacement raised to RUNNING", func(tasks []*shoalpb.Task) bool {
		s := bySlot(t, tasks)[2]
		return s != nil && s.Id == repl.Id && s.DesiredState == running
	})
}

// failAndSettle reports the runnable task of slot as state and waits until
// the orchestrator shut it down, then until it handled everything.
func failAndSettle(t *testing.T, e *orchestratortest.Env, svc string, slot uint64, state shoalpb.TaskState) []*shoalpb.Task {
	t.Helper()
	task := bySlot(t, e.Tasks(svc))[slot]
	if task == nil {
		t.Fatalf("slot %d has no runnable task:\n%s", slot, orchestratortest.Dump(e.Tasks(svc)))
	}
	e.Report(map[string]shoalpb.TaskState{task.Id: state})
	e.WaitTasks(svc, "the stopped task shut down", func(tasks []*shoalpb.Task) bool {
		for _, x := range tasks {
			if x.Id == task.Id {
				return x.DesiredState == shutdown
			}
		}
		return false
	})
	barrier(e)
	return e.Tasks(svc)
}

func TestRestartConditionNone(t *testing.T) {
	e := newEnv(t)
	e.CreateService(withRestart(orchestratortest.Replicated("web", 2), &shoalpb.RestartPolicy{Condition: shoalpb.RestartPolicy_CONDITION_NONE}))
	e.WaitTasks("web", "2 tasks", runnableCount(2))
	tasks := failAndSettle(t, e, "web", 1, complete)
	if s := bySlot(t, tasks); s[1] != nil || s[2] == nil || len(tasks) != 2 {
		t.Fatalf("after slot 1 completed with condition none, want slot 1 empty and no new task:\n%s", orchestratortest.Dump(tasks))
	}
}

func TestRestartOnFailure(t *testing.T) {
	e := newEnv(t)
	zero := int64(0)
	e.CreateService(withRestart(orchestratortest.Replicated("web", 2), &shoalpb.RestartPolicy{Condition: shoalpb.RestartPolicy_CONDITION_ON_FAILURE, DelayNs: &zero}))
	e.WaitTasks("web", "2 tasks", runnableCount(2))
	tasks := failAndSettle(t, e, "web", 1, complete)
	if s := bySlot(t, tasks); s[1] != nil || len(tasks) != 2 {
		t.Fatalf("a completed task was replaced under on-failure:\n%s", orchestratortest.Dump(tasks))
	}
	tasks = failAndSettle(t, e, "web", 2, failed)
	if s := bySlot(t, tasks); s[2] == nil || s[2].DesiredState != running || len(tasks) != 3 {
		t.Fatalf("a failed task was not replaced at once (delay 0) under on-failure:\n%s", orchestratortest.Dump(tasks))
	}
	// Slot 1 stays empty: the service does not grow another slot to
	// make up for it.
	if s := bySlot(t, tasks); len(s) != 1 {
		t.Fatalf("runnable slots %v, want only 2", orchestrator.SortedKeys(s))
	}
}

func TestMaxAttemptsWithinWindow(t *testing.T) {
	e := newEnv(t)
	zero := int64(0)
	e.CreateService(withRestart(orchestratortest.Replicated("web", 1), &shoalpb.RestartPolicy{MaxAttempts: 2, WindowNs: int64(time.Minute), DelayNs: &zero}))
	e.WaitTasks("web", "1 task", runnableCount(1))
	for i := 1; i <= 2; i++ {
		tasks := failAndSettle(t, e, "web", 1, failed)
		if s := bySlot(t, tasks); s[1] == nil || len(tasks) != i+1 {
			t.Fatalf("failure %d was not replaced:\n%s", i, orchestratortest.Dump(tasks))
		}
	}
	tasks := failAndSettle(t, e, "web", 1, failed)
	if s := bySlot(t, tasks); s[1] != nil || len(tasks) != 3 {
		t.Fatalf("third failure within the window was replaced:\n%s", orchestratortest.Dump(tasks))
	}
}

func TestMaxAttemptsWindowSlides(t *testing.T) {
	e := newEnv(t)
	zero := int64(0)
	e.CreateService(withRestart(orchestratortest.Replicated("web", 1), &shoalpb.RestartPolicy{MaxAttempts: 1, WindowNs: int64(10 * time.Second), DelayNs: &zero}))
	e.WaitTasks("web", "1 task", runnableCount(1))
	for i := 1; i <= 2; i++ {
		// Each failure comes after the previous restart left the window.
		tasks := failAndSettle(t, e, "web", 1, failed)
		if bySlot(t, tasks)[1] == nil {
			t.Fatalf("failure %d, the only one in its window, was not replaced:\n%s", i, orchestratortest.Dump(tasks))
		}
		e.Clock.Advance(11 * time.Second)
	}
	failAndSettle(t, e, "web", 1, failed)
	tasks := failAndSettle(t, e, "web", 1, failed)
	if s := bySlot(t, tasks); s[1] != nil || len(tasks) != 4 {
		t.Fatalf("second failure within 10 s was replaced:\n%s", orchestratortest.Dump(tasks))
	}
}

func TestNodeDownReplacesAtOnce(t *testing.T) {
	e := newEnv(t)
	e.AddNodes(orchestratortest.Node("n1"), orchestratortest.Node("n2"))
	e.CreateService(orchestratortest.Replicated("web", 3))
	slots := bySlot(t, e.WaitTasks("web", "3 tasks", runnableCount(3)))
	e.Assign(slots[1].Id, "n1")
	e.Assign(slots[2].Id, "n1")
	e.Assign(slots[3].Id, "n2")
	e.Report(map[string]shoalpb.TaskState{slots[1].Id: running, slots[2].Id: running, slots[3].Id: running})

	e.SetNodeState("n1", shoalpb.NodeState_NODE_STATE_DOWN)
	tasks := e.WaitTasks("web", "slots 1 and 2 replaced", func(tasks []*shoalpb.Task) bool { return len(tasks) == 5 && len(orchestratortest.Runnable(tasks)) == 3 })
	now := bySlot(t, tasks)
	for _, slot := range []uint64{1, 2} {
		r := now[slot]
		if r == nil || r.Id == slots[slot].Id || r.NodeId != "" || r.DesiredState != running {
			t.Fatalf("slot %d: replacement %v, want a new task with no node, desired RUNNING", slot, r)
		}
	}
	if now[3].Id != slots[3].Id {
		t.Fatalf("the task on n2 was replaced")
	}
	for _, task := range tasks {
		if task.NodeId == "n1" && (task.DesiredState != shutdown || task.Status.State != running) {
			t.Errorf("task on the down node: desired %v observed %v, want SHUTDOWN with its status untouched", task.DesiredState, task.Status.State)
		}
	}
}

func TestDrainReplacesAtOnceWhateverThePolicy(t *testing.T) {
	e := newEnv(t)
	e.AddNodes(orchestratortest.Node("n1"))
	e.CreateService(withRestart(orchestratortest.Replicated("web", 1), &shoalpb.RestartPolicy{Condition: shoalpb.RestartPolicy_CONDITION_NONE}))
	first := e.WaitTasks("web", "1 task", runnableCount(1))[0]
	e.Assign(first.Id, "n1")
	e.Report(map[string]shoalpb.TaskState{first.Id: running})
	e.SetAvailability("n1", shoalpb.NodeAvailability_NODE_AVAILABILITY_DRAIN)
	tasks := e.WaitTasks("web", "a replacement", func(tasks []*shoalpb.Task) bool { return len(tasks) == 2 && len(orchestratortest.Runnable(tasks)) == 1 })
	r := bySlot(t, tasks)[1]
	if r == nil || r.Id == first.Id || r.DesiredState != running || r.NodeId != "" {
		t.Fatalf("replacement %v, want slot 1, desired RUNNING, no node", r)
	}
}

func TestEvictedTaskReplacedAtOnce(t *testing.T) {
	e := newEnv(t)
	e.AddNodes(orchestratortest.Node("n1"))
	e.CreateService(withRestart(orchestratortest.Replicated("web", 1), &shoalpb.RestartPolicy{Condition: shoalpb.RestartPolicy_CONDITION_NONE}))
	first := e.WaitTasks("web", "1 task", runnableCount(1))[0]
	e.Assign(first.Id, "n1")
	e.Report(map[string]shoalpb.TaskState{first.Id: running})
	// Another writer (the constraint enforcer) stops the healthy task.
	e.Propose(orchestrator.DesiredStateAction(first.Id, shutdown, e.Clock.Now()))
	tasks := e.WaitTasks("web", "a replacement", runnableCount(1))
	if r := bySlot(t, tasks)[1]; r.Id == first.Id || r.DesiredState != running {
		t.Fatalf("replacement %v, want a new task desired RUNNING", r)
	}
}

func TestLeaderChangeResumesDelayedStartAndKeepsDecisions(t *testing.T) {
	e := orchestratortest.NewEnv(t)
	o1, err := replicated.New(e.Config())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = o1.Run(ctx); close(done) }()
	svc := orchestratortest.Replicated("web", 2)
	svc.Spec.Task.Restart = &shoalpb.RestartPolicy{Condition: shoalpb.RestartPolicy_CONDITION_ON_FAILURE}
	e.CreateService(svc)
	slots := bySlot(t, e.WaitTasks("web", "2 tasks", runnableCount(2)))
	e.Report(map[string]shoalpb.TaskState{slots[1].Id: failed, slots[2].Id: complete})
	e.WaitTasks("web", "slot 1 replaced in READY, slot 2 left empty", func(tasks []*shoalpb.Task) bool {
		s := bySlot(t, tasks)
		return len(tasks) == 3 && s[1] != nil && s[1].DesiredState == ready && s[2] == nil
	})
	cancel()
	<-done

	// A new leader, 3 s later: the replacement still waits 2 s, and slot
	// 2, whose task completed under on-failure, stays empty.
	e.Clock.Advance(3 * time.Second)
	start(t, e)
	barrier(e)
	tasks := e.Tasks("web")
	if s := bySlot(t, tasks); len(tasks) != 3 || s[1].DesiredState != ready || s[2] != nil {
		t.Fatalf("after the leader change:\n%s", orchestratortest.Dump(tasks))
	}
	e.Clock.Advance(2 * time.Second)
	e.WaitTasks("web", "slot 1 raised to RUNNING", func(tasks []*shoalpb.Task) bool {
		s := bySlot(t, tasks)[1]
		return s != nil && s.DesiredState == running
	})
}

func TestRestoreRereadsEverything(t *testing.T) {
	e := newEnv(t)
	barrier(e)
	// Build a snapshot elsewhere holding a service with no tasks.
	other := store.New()
	if _, err := (&store.LocalProposer{Store: other}).Propose(context.Background(), &shoalpb.Command{Actions: []*shoalpb.StoreAction{
		{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Service{Service: orchestratortest.Replicated("restored", 2)}},
	}}); err != nil {
		t.Fatal(err)
	}
	write, err := other.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := write(&buf); err != nil {
		t.Fatal(err)
	}
	if err := e.Store.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	e.WaitTasks("restored", "2 tasks of the restored service", runnableCount(2))
}

func TestFailedWriteIsRetried(t *testing.T) {
	e := newEnv(t)
	barrier(e)
	e.Proposer.FailNext(1, errors.New("leadership lost"))
	// Bypass the failing proposer for the test's own write.
	if _, err := e.Proposer.Inner.Propose(context.Background(), &shoalpb.Command{Actions: []*shoalpb.StoreAction{
		{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Service{Service: orchestratortest.Replicated("web", 3)}},
	}}); err != nil {
		t.Fatal(err)
	}
	e.WaitTasks("web", "3 tasks despite a failed write", runnableCount(3))
	if e.Proposer.Failures() != 1 {
		t.Fatalf("%d failed writes, want 1", e.Proposer.Failures())
	}
}

func TestManyReplicasInFewCommands(t *testing.T) {
	e := newEnv(t)
	barrier(e)
	e.Proposer.Reset()
	e.CreateService(orchestratortest.Replicated("big", 500))
	e.WaitTasks("big", "500 tasks", runnableCount(500))
	cmds := e.Proposer.Commands()
	// One command is the test's own service creation.
	if len(cmds) > 6 {
		t.Fatalf("%d commands (%v) for 500 tasks, want at most 5 from the orchestrator", len(cmds)-1, cmds)
	}
	if len(bySlot(t, e.Tasks("big"))) != 500 {
		t.Fatal("slots are not 1..500")
	}
}

func TestLargeServiceSplitsCommands(t *testing.T) {
	e := newEnv(t)
	barrier(e)
	e.Proposer.Reset()
	e.CreateService(orchestratortest.Replicated("huge", 2500))
	e.WaitTasks("huge", "2500 tasks", runnableCount(2500))
	cmds := e.Proposer.Commands()[1:]
	total := 0
	for _, n := range cmds {
		if n > orchestrator.MaxCommandActions {
			t.Fatalf("a command of %d actions, over the cap of %d", n, orchestrator.MaxCommandActions)
		}
		total += n
	}
	if len(cmds) != 3 || total != 2500 {
		t.Fatalf("commands %v, want 2500 creations in 3", cmds)
	}
}
