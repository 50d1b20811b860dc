package main

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// fastWait makes the wait poll every millisecond on a clock that moves
// 250 ms each time it is read, so that the stable and give-up periods pass
// after a known number of polls and no test sleeps.
func fastWait(t *testing.T) {
	t.Helper()
	saved := serviceWait
	t.Cleanup(func() { serviceWait = saved })
	var mu sync.Mutex
	clock := fixtureNow
	serviceWait = waitSettings{
		poll:   time.Millisecond,
		stable: time.Second,
		giveUp: 30 * time.Second,
		now: func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			clock = clock.Add(250 * time.Millisecond)
			return clock
		},
	}
}

// step is what the fake daemon reports at one poll.
type step struct {
	status *shoalpb.ServiceStatus
	tasks  []*shoalpb.Task
}

// scriptCluster answers CreateService, then ListServices and ListTasks
// with one step of the script per poll, repeating the last step.
func scriptCluster(f *fakeDaemon, svc *shoalpb.Service, steps []step) {
	var mu sync.Mutex
	i := 0
	f.reply("CreateService", &shoalpb.CreateServiceResponse{Service: svc})
	f.on("ListServices", func(proto.Message) (proto.Message, error) {
		mu.Lock()
		defer mu.Unlock()
		return &shoalpb.ListServicesResponse{Services: []*shoalpb.Service{svc}, Statuses: map[string]*shoalpb.ServiceStatus{svc.Id: steps[i].status}}, nil
	})
	f.on("ListTasks", func(proto.Message) (proto.Message, error) {
		mu.Lock()
		defer mu.Unlock()
		resp := &shoalpb.ListTasksResponse{Tasks: steps[i].tasks, NodeNames: map[string]string{idAlpha: "alpha"}}
		if i < len(steps)-1 {
			i++
		}
		return resp, nil
	})
}

func wtask(id string, slot uint64, state shoalpb.TaskState, created int64, err string) *shoalpb.Task {
	return &shoalpb.Task{
		Id: id, ServiceId: idWeb, ServiceName: "web", Slot: slot, Meta: &shoalpb.Meta{CreatedAt: created},
		DesiredState: shoalpb.TaskState_TASK_STATE_RUNNING, Status: &shoalpb.TaskStatus{State: state, Err: err},
	}
}

func webService(replicas uint64) *shoalpb.Service {
	return &shoalpb.Service{Id: idWeb, Spec: &shoalpb.ServiceSpec{Name: "web",
		Mode: &shoalpb.ServiceSpec_Replicated{Replicated: &shoalpb.ReplicatedService{Replicas: replicas}}}}
}

func TestServiceCreateWaitsForConvergence(t *testing.T) {
	fastWait(t)
	f := startFake(t)
	const (
		pending   = shoalpb.TaskState_TASK_STATE_PENDING
		preparing = shoalpb.TaskState_TASK_STATE_PREPARING
		running   = shoalpb.TaskState_TASK_STATE_RUNNING
		failed    = shoalpb.TaskState_TASK_STATE_FAILED
	)
	st := func(r uint64) *shoalpb.ServiceStatus { return &shoalpb.ServiceStatus{RunningTasks: r, DesiredTasks: 2} }
	converged := step{st(2), []*shoalpb.Task{wtask("a", 1, running, 1, ""), wtask("b", 2, running, 1, "")}}
	steps := []step{
		{st(0), nil},
		{st(0), []*shoalpb.Task{wtask("a", 1, pending, 1, ""), wtask("b", 2, pending, 1, "")}},
		{st(1), []*shoalpb.Task{wtask("a", 1, running, 1, ""), wtask("b", 2, preparing, 1, "")}},
		converged,
		// Slot 2 fails during the verification and is replaced.
		{st(1), []*shoalpb.Task{wtask("a", 1, running, 1, ""), wtask("b", 2, failed, 1, "task: non-zero exit (1)"), wtask("c", 2, pending, 2, "")}},
		{st(2), []*shoalpb.Task{wtask("a", 1, running, 1, ""), wtask("b", 2, failed, 1, "task: non-zero exit (1)"), wtask("c", 2, running, 2, "")}},
	}
	scriptCluster(f, webService(2), steps)
	stdout, stderr, code := f.cli(t, "service", "create", "--name", "web", "--replicas", "2", "nginx")
	wantOutput(t, stdout, stderr, code, idWeb+"\n"+
		"overall progress: 0 out of 2 tasks\n"+
		"1/2: new\n"+
		"2/2: new\n"+
		"1/2: pending\n"+
		"2/2: pending\n"+
		"overall progress: 1 out of 2 tasks\n"+
		"1/2: running\n"+
		"2/2: preparing\n"+
		"overall progress: 2 out of 2 tasks\n"+
		"2/2: running\n"+
		"verify: Waiting 1 second to verify that tasks are stable...\n"+
		"overall progress: 1 out of 2 tasks\n"+
		"2/2: pending\n"+
		"verify: Service is no longer converged\n"+
		"overall progress: 2 out of 2 tasks\n"+
		"2/2: running\n"+
		"verify: Waiting 1 second to verify that tasks are stable...\n"+
		"verify: Service converged\n")
	// Stable for 1 s at 250 ms a poll: the last step is read 5 times.
	if n := len(f.requests("ListTasks")); n != len(steps)+4 {
		t.Errorf("%d polls, want %d", n, len(steps)+4)
	}
	wantFirst := &shoalpb.ListServicesRequest{Filters: map[string]*shoalpb.FilterValues{"id": {Values: []string{idWeb}}}}
	if got := f.requests("ListServices")[0]; !proto.Equal(got, wantFirst) {
		t.Errorf("ListServices request %v, want %v", got, wantFirst)
	}
	wantTasks := &shoalpb.ListTasksRequest{Filters: map[string]*shoalpb.FilterValues{"service": {Values: []string{idWeb}}}}
	if got := f.requests("ListTasks")[0]; !proto.Equal(got, wantTasks) {
		t.Errorf("ListTasks request %v, want %v", got, wantTasks)
	}
}

func TestServiceCreateGivesUpOnTaskError(t *testing.T) {
	fastWait(t)
	f := startFake(t)
	const msg = "no suitable node (scheduling constraints not satisfied on 3 nodes)"
	scriptCluster(f, webService(1), []step{
		{&shoalpb.ServiceStatus{DesiredTasks: 1}, []*shoalpb.Task{wtask("a", 1, shoalpb.TaskState_TASK_STATE_PENDING, 1, msg)}},
	})
	stdout, stderr, code := f.cli(t, "service", "create", "--name", "web", "nginx")
	if code != 1 || stdout != idWeb+"\noverall progress: 0 out of 1 tasks\n1/1: "+msg+"\n" ||
		stderr != "service web has not converged after 30s: web.1: "+msg+"\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	// 30 s at 250 ms a poll.
	if n := len(f.requests("ListTasks")); n != 120 {
		t.Errorf("%d polls, want 120", n)
	}
}

func TestServiceCreateQuietAndDetach(t *testing.T) {
	fastWait(t)
	f := startFake(t)
	scriptCluster(f, webService(1), []step{
		{&shoalpb.ServiceStatus{RunningTasks: 1, DesiredTasks: 1}, []*shoalpb.Task{wtask("a", 1, shoalpb.TaskState_TASK_STATE_RUNNING, 1, "")}},
	})
	stdout, stderr, code := f.cli(t, "service", "create", "-q", "--name", "web", "nginx")
	wantOutput(t, stdout, stderr, code, idWeb+"\n")
	if n := len(f.requests("ListTasks")); n != 5 {
		t.Errorf("quiet still waits: %d polls, want 5", n)
	}
	stdout, stderr, code = f.cli(t, "service", "create", "-d", "--name", "web", "nginx")
	wantOutput(t, stdout, stderr, code, idWeb+"\n")
	if n := len(f.requests("ListTasks")); n != 5 {
		t.Errorf("detach polled: %d polls", n)
	}
}

func TestServiceScaleWaits(t *testing.T) {
	fastWait(t)
	f := startFake(t)
	svc := webService(1)
	svc.Meta = &shoalpb.Meta{Version: 4}
	scriptCluster(f, svc, []step{
		{&shoalpb.ServiceStatus{RunningTasks: 1, DesiredTasks: 1}, []*shoalpb.Task{wtask("a", 1, shoalpb.TaskState_TASK_STATE_RUNNING, 1, "")}},
	})
	f.reply("GetService", &shoalpb.GetServiceResponse{Service: svc})
	f.reply("UpdateService", &shoalpb.UpdateServiceResponse{})
	stdout, stderr, code := f.cli(t, "service", "scale", "web=1")
	wantOutput(t, stdout, stderr, code, "web scaled to 1\noverall progress: 1 out of 1 tasks\n1/1: running\n"+
		"verify: Waiting 1 second to verify that tasks are stable...\nverify: Service converged\n")
}

func TestWaitFailsWhenServiceRemoved(t *testing.T) {
	fastWait(t)
	f := startFake(t)
	f.reply("CreateService", &shoalpb.CreateServiceResponse{Service: webService(1)})
	f.reply("ListServices", &shoalpb.ListServicesResponse{})
	_, stderr, code := f.cli(t, "service", "create", "--name", "web", "nginx")
	if code != 1 || stderr != "service "+idWeb+" was removed while waiting for it to converge\n" {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestEvaluateGlobalAndJobs(t *testing.T) {
	running, complete := shoalpb.TaskState_TASK_STATE_RUNNING, shoalpb.TaskState_TASK_STATE_COMPLETE
	g := &shoalpb.Service{Spec: &shoalpb.ServiceSpec{Name: "agent", Mode: &shoalpb.ServiceSpec_Global{Global: &shoalpb.GlobalService{}}}}
	shut := wtask("old", 0, shoalpb.TaskState_TASK_STATE_SHUTDOWN, 1, "")
	shut.NodeId, shut.DesiredState = idBravo, shoalpb.TaskState_TASK_STATE_SHUTDOWN
	a := wtask("a", 0, running, 1, "")
	a.NodeId = idAlpha
	c := evaluate(g, &shoalpb.ServiceStatus{RunningTasks: 1, DesiredTasks: 1}, []*shoalpb.Task{a, shut}, map[string]string{idAlpha: "alpha"})
	if !c.converged || len(c.view.slots) != 1 || c.view.slots[0].label != "alpha" || c.view.slots[0].frac != 1 {
		t.Errorf("global: %+v", c)
	}

	job := &shoalpb.Service{
		Spec:      &shoalpb.ServiceSpec{Name: "batch", Mode: &shoalpb.ServiceSpec_ReplicatedJob{ReplicatedJob: &shoalpb.ReplicatedJob{MaxConcurrent: 1, TotalCompletions: 2}}},
		JobStatus: &shoalpb.JobStatus{JobIteration: 3},
	}
	t1, t2, stale := wtask("1", 1, complete, 1, ""), wtask("2", 2, running, 1, ""), wtask("s", 2, complete, 0, "")
	t1.JobIteration, t2.JobIteration, stale.JobIteration = 3, 3, 2
	c = evaluate(job, &shoalpb.ServiceStatus{RunningTasks: 1, DesiredTasks: 1, CompletedTasks: 1}, []*shoalpb.Task{t1, t2, stale}, nil)
	if c.converged || !c.job || strings.Join(c.view.header, "|") != "job progress: 1 out of 2 complete|active tasks: 1 out of 1 tasks" ||
		c.view.slots[0].state != "complete" || c.view.slots[1].state != "running" {
		t.Errorf("job in progress: %+v", c)
	}
	c = evaluate(job, &shoalpb.ServiceStatus{CompletedTasks: 2}, nil, nil)
	if !c.converged {
		t.Errorf("finished job not converged: %+v", c)
	}
	gj := &shoalpb.Service{Spec: &shoalpb.ServiceSpec{Name: "sweep", Mode: &shoalpb.ServiceSpec_GlobalJob{GlobalJob: &shoalpb.GlobalJob{}}}}
	if c := evaluate(gj, &shoalpb.ServiceStatus{DesiredTasks: 1, CompletedTasks: 1}, nil, nil); c.converged || c.view.header[0] != "job progress: 1 out of 2 complete" {
		t.Errorf("global job: %+v", c)
	}
}

func TestTTYDisplayRedrawsInPlace(t *testing.T) {
	var buf bytes.Buffer
	d := &ttyDisplay{w: &buf}
	view := progressView{
		header: []string{"overall progress: 1 out of 2 tasks"},
		slots: []slotLine{
			{label: "1/2", state: "running", frac: 1},
			{label: "2/2", state: "preparing", frac: 4.0 / 7},
		},
	}
	d.update(view)
	first := buf.String()
	want := "\r\x1b[J" +
		"overall progress: 1 out of 2 tasks\n" +
		"1/2: running   [==================================================>]\n" +
		"2/2: preparing [=============================>                     ]\n"
	if first != want {
		t.Errorf("first draw\n got %q\nwant %q", first, want)
	}
	buf.Reset()
	view.slots[1] = slotLine{label: "2/2", err: "no suitable node"}
	d.update(view)
	d.message("verify: Service converged")
	if got := buf.String(); !strings.HasPrefix(got, "\x1b[3A\r\x1b[J") || !strings.Contains(got, "2/2: no suitable node\n") ||
		!strings.HasSuffix(got, "\x1b[3A\r\x1b[Joverall progress: 1 out of 2 tasks\n1/2: running   [==================================================>]\n2/2: no suitable node\nverify: Service converged\n") {
		t.Errorf("redraw %q", got)
	}
	if isTerminal(&buf) {
		t.Error("a buffer is not a terminal")
	}
	if got := progressBar(0); got != "["+">"+strings.Repeat(" ", 50)+"]" {
		t.Errorf("empty bar %q", got)
	}
}
