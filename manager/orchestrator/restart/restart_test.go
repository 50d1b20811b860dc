package restart

import (
	"testing"
	"time"

	"github.com/shoal-project/shoal/manager/orchestrator"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

var t0 = time.Unix(1000, 0)

func svcWith(p *shoalpb.RestartPolicy, job bool) *shoalpb.Service {
	spec := &shoalpb.ServiceSpec{Task: &shoalpb.TaskSpec{Restart: p}, Mode: &shoalpb.ServiceSpec_Replicated{Replicated: &shoalpb.ReplicatedService{Replicas: 1}}}
	if job {
		spec.Mode = &shoalpb.ServiceSpec_ReplicatedJob{ReplicatedJob: &shoalpb.ReplicatedJob{}}
	}
	return &shoalpb.Service{Id: "s", SpecVersion: 1, Spec: spec}
}

// ended returns a task of svc in slot 1 made at t0+at that stopped in state.
func ended(svc *shoalpb.Service, id string, at time.Duration, state shoalpb.TaskState) *shoalpb.Task {
	return &shoalpb.Task{
		Id: id, ServiceId: svc.Id, Slot: 1, SpecVersion: svc.SpecVersion, Spec: svc.Spec.Task,
		Meta:         &shoalpb.Meta{CreatedAt: t0.Add(at).UnixNano()},
		DesiredState: shoalpb.TaskState_TASK_STATE_SHUTDOWN,
		Status:       &shoalpb.TaskStatus{State: state},
	}
}

var key = SlotKey{ServiceID: "s", Slot: 1}

func i64(v int64) *int64 { return &v }

func TestDecideConditions(t *testing.T) {
	const (
		complete = shoalpb.TaskState_TASK_STATE_COMPLETE
		failed   = shoalpb.TaskState_TASK_STATE_FAILED
		shutdown = shoalpb.TaskState_TASK_STATE_SHUTDOWN
		running  = shoalpb.TaskState_TASK_STATE_RUNNING
	)
	onFailure := &shoalpb.RestartPolicy{Condition: shoalpb.RestartPolicy_CONDITION_ON_FAILURE}
	none := &shoalpb.RestartPolicy{Condition: shoalpb.RestartPolicy_CONDITION_NONE}
	for _, tc := range []struct {
		name   string
		policy *shoalpb.RestartPolicy
		job    bool
		state  shoalpb.TaskState
		cause  Cause
		want   Action
		delay  time.Duration
	}{
		{"any restarts a completed task after 5 s", nil, false, complete, CauseExited, Restart, DefaultDelay},
		{"any with a delay", &shoalpb.RestartPolicy{DelayNs: i64(int64(time.Second))}, false, failed, CauseExited, Restart, time.Second},
		{"on-failure skips a completed task", onFailure, false, complete, CauseExited, Hold, 0},
		{"on-failure skips a task that shut down", onFailure, false, shutdown, CauseExited, Hold, 0},
		{"on-failure restarts a failed task", onFailure, false, failed, CauseExited, Restart, DefaultDelay},
		{"on-failure restarts after a lost node, at once", onFailure, false, running, CauseNodeLost, Restart, 0},
		{"none never restarts", none, false, failed, CauseExited, Hold, 0},
		{"none leaves a lost node's task", none, false, running, CauseNodeLost, Hold, 0},
		{"an evicted task is replaced at once whatever the policy", none, false, running, CauseEvicted, Fill, 0},
		{"jobs default to on-failure", nil, true, shutdown, CauseExited, Hold, 0},
		{"jobs retry failures", nil, true, failed, CauseExited, Restart, DefaultDelay},
		{"a completed job task is done even under any", &shoalpb.RestartPolicy{}, true, complete, CauseExited, Hold, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := svcWith(tc.policy, tc.job)
			d := New().Decide(svc, key, []*shoalpb.Task{ended(svc, "a", 0, tc.state)}, tc.cause, t0)
			if d.Action != tc.want || d.Delay != tc.delay {
				t.Fatalf("Decide = %+v, want action %v delay %v", d, tc.want, tc.delay)
			}
		})
	}
}

func TestDecideFillsNewAndOutdatedSlots(t *testing.T) {
	svc := svcWith(&shoalpb.RestartPolicy{Condition: shoalpb.RestartPolicy_CONDITION_NONE}, false)
	s := New()
	if d := s.Decide(svc, key, nil, CauseNone, t0); d.Action != Fill {
		t.Fatalf("empty slot: %+v", d)
	}
	old := ended(svc, "a", 0, shoalpb.TaskState_TASK_STATE_FAILED)
	old.SpecVersion = 0
	if d := s.Decide(svc, key, []*shoalpb.Task{old}, CauseExited, t0); d.Action != Fill {
		t.Fatalf("slot whose task predates the spec: %+v", d)
	}
}

func TestMaxAttemptsSeededFromHistoryAndResetBySpecChange(t *testing.T) {
	svc := svcWith(&shoalpb.RestartPolicy{MaxAttempts: 2, WindowNs: int64(time.Minute)}, false)
	failed := shoalpb.TaskState_TASK_STATE_FAILED
	// Two failures already restarted, by a previous leader, 10 s apart.
	history := []*shoalpb.Task{ended(svc, "a", 0, failed), ended(svc, "b", 10*time.Second, failed), ended(svc, "c", 20*time.Second, failed)}
	s := New()
	if d := s.Decide(svc, key, history, CauseExited, t0.Add(30*time.Second)); d.Action != Hold {
		t.Fatalf("third failure within the window: %+v, want Hold", d)
	}
	// The decision holds while the spec stays...
	if d := s.Decide(svc, key, history, CauseExited, t0.Add(10*time.Minute)); d.Action != Hold {
		t.Fatalf("after giving up: %+v, want Hold", d)
	}
	// ... and a new spec starts afresh.
	svc.SpecVersion = 2
	for _, h := range history {
		h.SpecVersion = 2
	}
	s2 := New()
	if d := s2.Decide(svc, key, history, CauseExited, t0.Add(10*time.Minute)); d.Action != Restart {
		t.Fatalf("restarts outside the window: %+v, want Restart", d)
	}
}

func TestApplyCountsAndDelaysOnCommit(t *testing.T) {
	svc := svcWith(&shoalpb.RestartPolicy{MaxAttempts: 1}, false)
	s := New()
	history := []*shoalpb.Task{ended(svc, "a", 0, shoalpb.TaskState_TASK_STATE_FAILED)}
	d := s.Decide(svc, key, history, CauseExited, t0)
	if d.Action != Restart {
		t.Fatalf("first failure: %+v", d)
	}
	repl := orchestrator.NewTask(svc, 1, "", "b", t0)
	b := orchestrator.NewBatch(0, 0)
	s.Apply(b, svc, key, d, repl, t0)
	if repl.DesiredState != shoalpb.TaskState_TASK_STATE_READY {
		t.Fatalf("replacement desired %v, want READY", repl.DesiredState)
	}
	if !s.Wake().IsZero() {
		t.Fatal("delayed start timed before the command was applied")
	}
	st := store.New()
	if err := b.Commit(t.Context(), &store.LocalProposer{Store: st}); err != nil {
		t.Fatal(err)
	}
	if got := s.Wake(); !got.Equal(t0.Add(DefaultDelay)) {
		t.Fatalf("Wake = %v, want %v", got, t0.Add(DefaultDelay))
	}
	// The restart counted: a second failure is not restarted.
	history = append(history, ended(svc, "b", 0, shoalpb.TaskState_TASK_STATE_FAILED))
	if d := s.Decide(svc, key, history, CauseExited, t0.Add(time.Hour)); d.Action != Hold {
		t.Fatalf("second failure with max_attempts 1 and no window: %+v", d)
	}

	// Not yet due: nothing queued. Due: raised to RUNNING.
	b = orchestrator.NewBatch(0, 0)
	st.View(func(tx store.ReadTx) { s.StartDue(b, tx, t0.Add(time.Second)) })
	if b.Len() != 0 {
		t.Fatal("raised before the delay")
	}
	st.View(func(tx store.ReadTx) { s.StartDue(b, tx, t0.Add(DefaultDelay)) })
	if err := b.Commit(t.Context(), &store.LocalProposer{Store: st}); err != nil {
		t.Fatal(err)
	}
	st.View(func(tx store.ReadTx) {
		if got := tx.Task("b").GetDesiredState(); got != shoalpb.TaskState_TASK_STATE_RUNNING {
			t.Fatalf("desired %v after the delay", got)
		}
	})
	if !s.Wake().IsZero() {
		t.Fatal("started task still timed")
	}
}

func TestTrackResumesFromCreation(t *testing.T) {
	svc := svcWith(&shoalpb.RestartPolicy{DelayNs: i64(int64(3 * time.Second))}, false)
	task := orchestrator.NewTask(svc, 1, "", "r", t0)
	task.DesiredState = shoalpb.TaskState_TASK_STATE_READY
	s := New()
	s.Track(task)
	if got := s.Wake(); !got.Equal(t0.Add(3 * time.Second)) {
		t.Fatalf("Wake = %v, want creation + 3 s", got)
	}
	s.Forget("s")
	if !s.Wake().IsZero() {
		t.Fatal("Forget kept the delayed start")
	}
}

func TestCauses(t *testing.T) {
	ready := &shoalpb.Node{Id: "n", Status: &shoalpb.NodeStatus{State: shoalpb.NodeState_NODE_STATE_READY}}
	down := &shoalpb.Node{Id: "n", Status: &shoalpb.NodeStatus{State: shoalpb.NodeState_NODE_STATE_DOWN}}
	drained := &shoalpb.Node{Id: "n", Status: ready.Status, Spec: &shoalpb.NodeSpec{Availability: shoalpb.NodeAvailability_NODE_AVAILABILITY_DRAIN}}
	task := func(node string, state shoalpb.TaskState) *shoalpb.Task {
		return &shoalpb.Task{NodeId: node, Status: &shoalpb.TaskStatus{State: state}}
	}
	run, failed, sd := shoalpb.TaskState_TASK_STATE_RUNNING, shoalpb.TaskState_TASK_STATE_FAILED, shoalpb.TaskState_TASK_STATE_SHUTDOWN
	checks := []struct {
		t    *shoalpb.Task
		n    *shoalpb.Node
		want Cause
	}{
		{task("n", run), ready, CauseNone},
		{task("", shoalpb.TaskState_TASK_STATE_PENDING), nil, CauseNone},
		{task("n", failed), ready, CauseExited},
		{task("n", run), down, CauseNodeLost},
		{task("n", run), nil, CauseNodeLost},
		{task("n", run), drained, CauseEvicted},
	}
	for i, c := range checks {
		if got := Check(c.t, c.n); got != c.want {
			t.Errorf("Check %d = %v, want %v", i, got, c.want)
		}
	}
	stopped := []struct {
		t    *shoalpb.Task
		n    *shoalpb.Node
		want Cause
	}{
		{task("n", failed), ready, CauseExited},
		{task("n", run), down, CauseNodeLost},
		{task("n", sd), down, CauseEvicted},
		{task("n", run), ready, CauseEvicted},
	}
	for i, c := range stopped {
		if got := StoppedCause(c.t, c.n); got != c.want {
			t.Errorf("StoppedCause %d = %v, want %v", i, got, c.want)
		}
	}
}

func taskAt(id string, version uint64, created time.Duration, node string, state, desired shoalpb.TaskState) *shoalpb.Task {
	return &shoalpb.Task{
		Id: id, ServiceId: "s", Slot: 1, SpecVersion: version, NodeId: node,
		Meta:         &shoalpb.Meta{CreatedAt: t0.Add(created).UnixNano()},
		DesiredState: desired,
		Status:       &shoalpb.TaskStatus{State: state},
	}
}

func TestReplaced(t *testing.T) {
	const (
		run      = shoalpb.TaskState_TASK_STATE_RUNNING
		ready    = shoalpb.TaskState_TASK_STATE_READY
		pending  = shoalpb.TaskState_TASK_STATE_PENDING
		shutdown = shoalpb.TaskState_TASK_STATE_SHUTDOWN
		failed   = shoalpb.TaskState_TASK_STATE_FAILED
	)
	old := taskAt("old", 1, 0, "n", run, shutdown)
	repl := taskAt("new", 2, time.Second, "", pending, ready)
	if got := Replaced(repl, []*shoalpb.Task{old, repl}); got != old {
		t.Fatalf("Replaced = %v, want the older-spec task", got)
	}
	if !WaitingReplacement(repl, []*shoalpb.Task{old, repl}) {
		t.Fatal("a READY replacement is not the updater's to start")
	}
	// Made in the same instant: the spec version orders them.
	same := taskAt("a-new", 2, 0, "", pending, ready)
	if got := Replaced(same, []*shoalpb.Task{old, same}); got != old {
		t.Fatalf("Replaced (same instant) = %v", got)
	}
	// Whether the old task still holds a container.
	if !HoldsContainer(old) {
		t.Fatal("a running task holds no container")
	}
	if HoldsContainer(taskAt("old", 1, 0, "n", shutdown, shutdown)) || HoldsContainer(taskAt("old", 1, 0, "", pending, shutdown)) {
		t.Fatal("a stopped or never placed task holds a container")
	}
	// Once started it waits no more.
	started := taskAt("new", 2, time.Second, "n", ready, run)
	if WaitingReplacement(started, []*shoalpb.Task{old, started}) {
		t.Fatal("a started replacement still waits")
	}
	// A delayed restart follows a task of its own spec: not a replacement.
	crashed := taskAt("crashed", 2, 0, "n", failed, shutdown)
	restart := taskAt("restart", 2, time.Second, "", pending, ready)
	if Replaced(restart, []*shoalpb.Task{old, crashed, restart}) != nil || WaitingReplacement(restart, []*shoalpb.Task{old, crashed, restart}) {
		t.Fatal("a restart counts as a replacement")
	}
}

func TestSettleLeavesUpdatesToTheUpdater(t *testing.T) {
	const (
		run      = shoalpb.TaskState_TASK_STATE_RUNNING
		starting = shoalpb.TaskState_TASK_STATE_STARTING
		pending  = shoalpb.TaskState_TASK_STATE_PENDING
		ready    = shoalpb.TaskState_TASK_STATE_READY
		shutdown = shoalpb.TaskState_TASK_STATE_SHUTDOWN
	)
	none := func(*shoalpb.Task) Cause { return CauseNone }
	settle := func(tasks ...*shoalpb.Task) (*Supervisor, *shoalpb.Task, []string) {
		s := New()
		b := orchestrator.NewBatch(0, 0)
		keep := s.Settle(b, tasks, none, map[string]Cause{}, t0)
		st := store.New()
		for _, task := range tasks {
			b2 := orchestrator.NewBatch(0, 0)
			b2.CreateTask(task, nil)
			if err := b2.Commit(t.Context(), &store.LocalProposer{Store: st}); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Commit(t.Context(), &store.LocalProposer{Store: st}); err != nil {
			t.Fatal(err)
		}
		var shut []string
		st.View(func(tx store.ReadTx) {
			for _, task := range tasks {
				if tx.Task(task.Id).DesiredState == shutdown && task.DesiredState != shutdown {
					shut = append(shut, task.Id)
				}
			}
		})
		return s, keep, shut
	}
	// Start-first: the old task runs on while the new one starts...
	old := taskAt("old", 1, 0, "n", run, run)
	starter := taskAt("new", 2, time.Second, "n", starting, run)
	if _, keep, shut := settle(old, starter); keep.Id != "new" || len(shut) != 0 {
		t.Fatalf("start-first in progress: kept %s, shut down %v", keep.Id, shut)
	}
	// ... and goes once it runs.
	started := taskAt("new", 2, time.Second, "n", run, run)
	if _, keep, shut := settle(old, started); keep.Id != "new" || len(shut) != 1 || shut[0] != "old" {
		t.Fatalf("start-first done: kept %s, shut down %v", keep.Id, shut)
	}
	// Two tasks of one spec: one goes, as before.
	dup := taskAt("dup", 1, time.Second, "n", pending, run)
	if _, keep, shut := settle(old, dup); keep.Id != "old" || len(shut) != 1 || shut[0] != "dup" {
		t.Fatalf("duplicate: kept %s, shut down %v", keep.Id, shut)
	}
	// A stop-first replacement waiting for its old task is not timed.
	stopping := taskAt("old", 1, 0, "n", run, shutdown)
	waiting := taskAt("new", 2, time.Second, "n", ready, ready)
	if s, keep, _ := settle(stopping, waiting); keep.Id != "new" || !s.Wake().IsZero() {
		t.Fatalf("stop-first replacement: kept %s, wake %v (want none)", keep.Id, s.Wake())
	}
	// Nor once the old task stopped: the updater starts it when prepared.
	gone := taskAt("old", 1, 0, "n", shutdown, shutdown)
	if s, _, _ := settle(gone, waiting); !s.Wake().IsZero() {
		t.Fatal("a stop-first replacement is timed by the supervisor")
	}
	// A delayed restart is timed.
	crashed := taskAt("crashed", 1, 0, "n", shoalpb.TaskState_TASK_STATE_FAILED, shutdown)
	restart := taskAt("restart", 1, time.Second, "", pending, ready)
	if s, _, _ := settle(crashed, restart); s.Wake().IsZero() {
		t.Fatal("a delayed restart is not timed")
	}
}
