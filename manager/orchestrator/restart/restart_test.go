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
