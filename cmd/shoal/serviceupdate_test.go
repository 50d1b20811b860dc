package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// storedWeb is the service the fake daemon holds for service update.
func storedWeb() *shoalpb.Service {
	return &shoalpb.Service{
		Id:   idWeb,
		Meta: &shoalpb.Meta{Version: 41},
		Spec: &shoalpb.ServiceSpec{
			Name:   "web",
			Labels: map[string]string{"tier": "front", "old": "x"},
			Mode:   &shoalpb.ServiceSpec_Replicated{Replicated: &shoalpb.ReplicatedService{Replicas: 2}},
			Task: &shoalpb.TaskSpec{
				Container: &shoalpb.ContainerSpec{
					Image:  "nginx:1",
					Args:   []string{"-g", "daemon off;"},
					Env:    []string{"A=1", "B=2"},
					Labels: map[string]string{"c": "d"},
					Mounts: []*shoalpb.Mount{
						{Type: shoalpb.Mount_TYPE_VOLUME, Source: "data", Target: "/data"},
						{Type: shoalpb.Mount_TYPE_TMPFS, Target: "/tmp"},
					},
					Healthcheck: &shoalpb.HealthConfig{Test: []string{"CMD-SHELL", "true"}, Retries: 3},
				},
				Placement: &shoalpb.Placement{
					Constraints: []string{"node.role==worker", "node.labels.zone==a"},
					Preferences: []*shoalpb.PlacementPreference{{SpreadDescriptor: "node.labels.zone"}},
				},
				Restart: &shoalpb.RestartPolicy{Condition: shoalpb.RestartPolicy_CONDITION_ON_FAILURE, MaxAttempts: 3},
			},
			Update: &shoalpb.UpdateConfig{Parallelism: 2, DelayNs: int64(time.Second)},
		},
		SpecVersion: 4,
	}
}

// updateRequest runs service update -d against a daemon holding storedWeb
// and returns the request it sent.
func updateRequest(t *testing.T, args ...string) *shoalpb.UpdateServiceRequest {
	t.Helper()
	f := startFake(t)
	f.reply("GetService", &shoalpb.GetServiceResponse{Service: storedWeb()})
	f.reply("UpdateService", &shoalpb.UpdateServiceResponse{Service: storedWeb()})
	stdout, stderr, code := f.cli(t, append(append([]string{"service", "update", "-d"}, args...), "web")...)
	wantOutput(t, stdout, stderr, code, "web\n")
	reqs := f.requests("UpdateService")
	if len(reqs) != 1 {
		t.Fatalf("%d UpdateService requests", len(reqs))
	}
	return reqs[0].(*shoalpb.UpdateServiceRequest)
}

func TestServiceUpdateAppliesFlags(t *testing.T) {
	req := updateRequest(t,
		"--image", "nginx:2", "--args", "-c 'echo hi'",
		"--env-add", "B=3", "--env-add", "C=4", "--env-rm", "A",
		"--label-add", "new=1", "--label-rm", "old", "--container-label-add", "e=f", "--container-label-rm", "c",
		"--constraint-rm", "node.labels.zone==a", "--constraint-add", "node.labels.ssd==true",
		"--placement-pref-rm", "spread=node.labels.zone", "--placement-pref-add", "spread=node.labels.rack",
		"--replicas", "5",
		"--mount-rm", "/tmp", "--mount-add", "type=bind,source=/srv,target=/data",
		"--reserve-memory", "64m", "--limit-cpu", "0.5",
		"--health-interval", "5s",
		"--restart-delay", "2s",
		"--stop-grace-period", "1s", "--stop-signal", "SIGINT",
		"--update-parallelism", "3", "--update-order", "start-first", "--update-failure-action", "rollback",
		"--update-monitor", "1s", "--update-max-failure-ratio", "0.25", "--update-timeout", "30s",
		"--rollback-parallelism", "0", "--rollback-monitor", "2s",
		"--force")
	if req.ServiceRef != idWeb || req.Version != 41 || req.Rollback {
		t.Errorf("request ref %q version %d rollback %v", req.ServiceRef, req.Version, req.Rollback)
	}
	want := storedWeb().Spec
	want.Labels = map[string]string{"tier": "front", "new": "1"}
	want.GetReplicated().Replicas = 5
	c := want.Task.Container
	c.Image = "nginx:2"
	c.Args = []string{"-c", "echo hi"}
	c.Env = []string{"B=3", "C=4"}
	c.Labels = map[string]string{"e": "f"}
	c.Mounts = []*shoalpb.Mount{{Type: shoalpb.Mount_TYPE_BIND, Source: "/srv", Target: "/data"}}
	c.Healthcheck.IntervalNs = int64(5 * time.Second)
	c.StopGracePeriodNs = proto.Int64(int64(time.Second))
	c.StopSignal = "SIGINT"
	want.Task.Placement = &shoalpb.Placement{
		Constraints: []string{"node.role==worker", "node.labels.ssd==true"},
		Preferences: []*shoalpb.PlacementPreference{{SpreadDescriptor: "node.labels.rack"}},
	}
	want.Task.Resources = &shoalpb.ResourceRequirements{
		Reservations: &shoalpb.Resources{MemoryBytes: 64 << 20},
		Limits:       &shoalpb.Resources{NanoCpus: 5e8},
	}
	want.Task.Restart.DelayNs = proto.Int64(int64(2 * time.Second))
	want.Task.ForceUpdate = 1
	want.Update = &shoalpb.UpdateConfig{
		Parallelism: 3, DelayNs: int64(time.Second), Order: shoalpb.UpdateConfig_ORDER_START_FIRST,
		FailureAction: shoalpb.UpdateConfig_FAILURE_ACTION_ROLLBACK, MonitorNs: proto.Int64(int64(time.Second)),
		MaxFailureRatio: 0.25, TaskTimeoutNs: proto.Int64(int64(30 * time.Second)),
	}
	// No rollback config before: docker's defaults, then the flags.
	want.Rollback = &shoalpb.UpdateConfig{Parallelism: 0, MonitorNs: proto.Int64(int64(2 * time.Second))}
	wantSpec(t, req.Spec, want)
}

func TestServiceUpdateWithoutFlagsResendsTheSpec(t *testing.T) {
	// As docker's: it resumes a paused update.
	req := updateRequest(t)
	wantSpec(t, req.Spec, storedWeb().Spec)
}

func TestServiceUpdateNoHealthcheckAndHealthCmd(t *testing.T) {
	req := updateRequest(t, "--no-healthcheck")
	if hc := req.Spec.Task.Container.Healthcheck; !proto.Equal(hc, &shoalpb.HealthConfig{Test: []string{"NONE"}}) {
		t.Errorf("healthcheck %v", hc)
	}
	req = updateRequest(t, "--health-cmd", "wget -q localhost", "--health-retries", "5")
	want := &shoalpb.HealthConfig{Test: []string{"CMD-SHELL", "wget -q localhost"}, Retries: 5}
	if hc := req.Spec.Task.Container.Healthcheck; !proto.Equal(hc, want) {
		t.Errorf("healthcheck %v, want %v", hc, want)
	}
}

func TestServiceCreateUpdateConfigFlags(t *testing.T) {
	got := createSpec(t, "--name", "web", "--update-delay", "10s", "--update-failure-action", "continue",
		"--rollback-order", "start-first", "--rollback-max-failure-ratio", "0.5", "nginx")
	wantU := &shoalpb.UpdateConfig{Parallelism: 1, DelayNs: int64(10 * time.Second), FailureAction: shoalpb.UpdateConfig_FAILURE_ACTION_CONTINUE}
	wantR := &shoalpb.UpdateConfig{Parallelism: 1, Order: shoalpb.UpdateConfig_ORDER_START_FIRST, MaxFailureRatio: 0.5}
	if !proto.Equal(got.Update, wantU) || !proto.Equal(got.Rollback, wantR) {
		t.Errorf("update %v rollback %v; want %v and %v", got.Update, got.Rollback, wantU, wantR)
	}
	// Without the flags, the cluster's defaults apply.
	got = createSpec(t, "--name", "web", "nginx")
	if got.Update != nil || got.Rollback != nil {
		t.Errorf("configs without flags: %v %v", got.Update, got.Rollback)
	}
}

// TestServiceUpdateRefusesBadValues checks that each bad value is named
// and that nothing is written.
func TestServiceUpdateRefusesBadValues(t *testing.T) {
	f := startFake(t)
	global := storedWeb()
	global.Spec.Mode = &shoalpb.ServiceSpec_Global{Global: &shoalpb.GlobalService{}}
	f.reply("GetService", &shoalpb.GetServiceResponse{Service: global})
	for _, c := range []struct {
		cmd  string
		args []string
		want string
	}{
		{"update", []string{"--update-parallelism", "-1"}, `invalid argument "-1" for "--update-parallelism" flag`},
		{"update", []string{"--update-failure-action", "explode"}, `invalid update failure action "explode": must be pause, continue or rollback`},
		{"update", []string{"--update-delay", "5parsecs"}, `invalid duration "5parsecs"`},
		{"update", []string{"--update-monitor", "-1s"}, `invalid duration "-1s": must not be negative`},
		{"update", []string{"--update-max-failure-ratio", "1.5"}, `invalid failure ratio "1.5"`},
		{"update", []string{"--update-max-failure-ratio", "NaN"}, `invalid failure ratio "NaN"`},
		{"update", []string{"--update-order", "sideways"}, `invalid update order "sideways"`},
		{"update", []string{"--update-timeout", "forever"}, `invalid duration "forever"`},
		{"update", []string{"--rollback-failure-action", "rollback"}, `invalid rollback failure action "rollback": must be pause or continue`},
		{"update", []string{"--rollback-delay", "1 s"}, `invalid duration "1 s"`},
		{"update", []string{"--env-rm", ""}, `invalid environment variable ""`},
		{"update", []string{"--mount-add", "type=nfs,target=/x"}, `invalid mount type "nfs"`},
		{"update", []string{"--constraint-add", "node.labels.zone=a"}, `invalid constraint "node.labels.zone=a"`},
		{"update", []string{"--rollback", "--image", "nginx:3"}, "other flags may not be combined with --rollback (--image)"},
		{"create", []string{"--name", "web", "--update-parallelism", "-1"}, `invalid argument "-1" for "--update-parallelism" flag`},
		{"create", []string{"--name", "web", "--update-failure-action", "explode"}, `invalid update failure action "explode"`},
		{"create", []string{"--name", "web", "--update-delay", "5parsecs"}, `invalid duration "5parsecs"`},
		{"create", []string{"--name", "web", "--mode", "replicated-job", "--update-parallelism", "2"}, "jobs have no update or rollback config"},
	} {
		args := append(append([]string{"service", c.cmd}, c.args...), "web")
		if c.cmd == "create" {
			args[len(args)-1] = "nginx"
		}
		stdout, stderr, code := f.cli(t, args...)
		first, _, _ := strings.Cut(stderr, "\n")
		if code != 1 || stdout != "" || !strings.Contains(first, c.want) {
			t.Errorf("%s %q: exit %d, stdout %q, stderr %q; want %q", c.cmd, c.args, code, stdout, stderr, c.want)
		}
	}
	if m := f.methods(); len(m) != 0 {
		t.Errorf("the daemon was called: %v", m)
	}
	// Checked against the service read: nothing is written.
	stdout, stderr, code := f.cli(t, "service", "update", "--replicas", "3", "web")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "--replicas 3: replicas can only be used with replicated or replicated-job mode") {
		t.Errorf("--replicas on a global service: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if reqs := f.requests("UpdateService"); len(reqs) != 0 {
		t.Errorf("%d UpdateService requests", len(reqs))
	}
}

func TestServiceUpdateRetriesAfterAConcurrentWrite(t *testing.T) {
	f := startFake(t)
	var mu sync.Mutex
	version := uint64(41)
	f.on("GetService", func(proto.Message) (proto.Message, error) {
		mu.Lock()
		defer mu.Unlock()
		svc := storedWeb()
		svc.Meta.Version = version
		return &shoalpb.GetServiceResponse{Service: svc}, nil
	})
	f.on("UpdateService", func(req proto.Message) (proto.Message, error) {
		mu.Lock()
		defer mu.Unlock()
		if req.(*shoalpb.UpdateServiceRequest).Version != 42 {
			version = 42 // the updater wrote its progress meanwhile
			return nil, status.Error(codes.Aborted, "update out of sequence")
		}
		return &shoalpb.UpdateServiceResponse{Service: storedWeb()}, nil
	})
	stdout, stderr, code := f.cli(t, "service", "update", "-d", "--image", "nginx:2", "web")
	wantOutput(t, stdout, stderr, code, "web\n")
	reqs := f.requests("UpdateService")
	if len(reqs) != 2 || reqs[1].(*shoalpb.UpdateServiceRequest).Spec.Task.Container.Image != "nginx:2" {
		t.Errorf("requests %v", reqs)
	}
}

func TestServiceRollbackCommand(t *testing.T) {
	for _, args := range [][]string{{"service", "rollback", "-d", "web"}, {"service", "update", "--rollback", "-d", "web"}} {
		f := startFake(t)
		f.reply("GetService", &shoalpb.GetServiceResponse{Service: storedWeb()})
		f.reply("UpdateService", &shoalpb.UpdateServiceResponse{Service: storedWeb()})
		stdout, stderr, code := f.cli(t, args...)
		wantOutput(t, stdout, stderr, code, "web\n")
		wantRequests(t, f, "UpdateService", &shoalpb.UpdateServiceRequest{ServiceRef: idWeb, Version: 41, Rollback: true})
	}
	f := startFake(t)
	f.reply("GetService", &shoalpb.GetServiceResponse{Service: storedWeb()})
	f.on("UpdateService", func(proto.Message) (proto.Message, error) {
		return nil, status.Error(codes.FailedPrecondition, "service web has no previous spec")
	})
	_, stderr, code := f.cli(t, "service", "rollback", "web")
	if code != 1 || !strings.Contains(stderr, "service web has no previous spec") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// updateStep is what the fake daemon reports at one poll of an update.
type updateStep struct {
	state   shoalpb.UpdateStatus_State
	message string
	version uint64 // the service's spec version
	running uint64
	tasks   []*shoalpb.Task
}

// scriptUpdate answers GetService and UpdateService, then ListServices and
// ListTasks with one step per poll, repeating the last one.
func scriptUpdate(f *fakeDaemon, replicas uint64, steps []updateStep) {
	var mu sync.Mutex
	i := 0
	svcAt := func(s updateStep) *shoalpb.Service {
		svc := webService(replicas)
		svc.Meta = &shoalpb.Meta{Version: 7}
		svc.SpecVersion = s.version
		svc.Spec.Task = &shoalpb.TaskSpec{Container: &shoalpb.ContainerSpec{Image: fmt.Sprintf("web:%d", s.version)}}
		svc.UpdateStatus = &shoalpb.UpdateStatus{State: s.state, Message: s.message}
		return svc
	}
	f.reply("GetService", &shoalpb.GetServiceResponse{Service: svcAt(updateStep{version: 1})})
	f.reply("UpdateService", &shoalpb.UpdateServiceResponse{Service: svcAt(steps[0])})
	f.on("ListServices", func(proto.Message) (proto.Message, error) {
		mu.Lock()
		defer mu.Unlock()
		s := steps[i]
		return &shoalpb.ListServicesResponse{Services: []*shoalpb.Service{svcAt(s)},
			Statuses: map[string]*shoalpb.ServiceStatus{idWeb: {RunningTasks: s.running, DesiredTasks: replicas}}}, nil
	})
	f.on("ListTasks", func(proto.Message) (proto.Message, error) {
		mu.Lock()
		defer mu.Unlock()
		resp := &shoalpb.ListTasksResponse{Tasks: steps[i].tasks}
		if i < len(steps)-1 {
			i++
		}
		return resp, nil
	})
}

func vtask(id string, slot, version uint64, state shoalpb.TaskState, desired shoalpb.TaskState, created int64) *shoalpb.Task {
	t := wtask(id, slot, state, created, "")
	t.SpecVersion = version
	t.Spec = &shoalpb.TaskSpec{Container: &shoalpb.ContainerSpec{Image: fmt.Sprintf("web:%d", version)}}
	t.DesiredState = desired
	return t
}

func TestServiceUpdateShowsProgress(t *testing.T) {
	fastWait(t)
	f := startFake(t)
	const (
		run      = shoalpb.TaskState_TASK_STATE_RUNNING
		shutdown = shoalpb.TaskState_TASK_STATE_SHUTDOWN
		ready    = shoalpb.TaskState_TASK_STATE_READY
		starting = shoalpb.TaskState_TASK_STATE_STARTING
		updating = shoalpb.UpdateStatus_STATE_UPDATING
	)
	old1, old2 := vtask("o1", 1, 1, run, run, 1), vtask("o2", 2, 1, run, run, 1)
	scriptUpdate(f, 2, []updateStep{
		{updating, "update in progress", 2, 2, []*shoalpb.Task{old1, old2}},
		{updating, "update in progress", 2, 1, []*shoalpb.Task{vtask("o1", 1, 1, run, shutdown, 1), vtask("n1", 1, 2, ready, ready, 2), old2}},
		{updating, "update in progress", 2, 2, []*shoalpb.Task{vtask("o1", 1, 1, shutdown, shutdown, 1), vtask("n1", 1, 2, run, run, 2), old2}},
		{updating, "update in progress", 2, 1, []*shoalpb.Task{vtask("n1", 1, 2, run, run, 2), vtask("o2", 2, 1, run, shutdown, 1), vtask("n2", 2, 2, starting, run, 2)}},
		{shoalpb.UpdateStatus_STATE_COMPLETED, "update completed", 2, 2, []*shoalpb.Task{vtask("n1", 1, 2, run, run, 2), vtask("n2", 2, 2, run, run, 2)}},
	})
	stdout, stderr, code := f.cli(t, "service", "update", "--image", "nginx:2", "web")
	wantOutput(t, stdout, stderr, code, "web\n"+
		"overall progress: 0 out of 2 tasks\n"+
		"1/2: new\n"+
		"2/2: new\n"+
		"1/2: ready\n"+
		"overall progress: 1 out of 2 tasks\n"+
		"1/2: running\n"+
		"2/2: starting\n"+
		"overall progress: 2 out of 2 tasks\n"+
		"2/2: running\n"+
		"verify: Waiting 1 second to verify that tasks are stable...\n"+
		"verify: Service converged\n")
}

func TestServiceUpdatePausedExitsWithTheMessage(t *testing.T) {
	fastWait(t)
	f := startFake(t)
	const msg = "update paused due to failure or early termination of task n1"
	scriptUpdate(f, 1, []updateStep{
		{shoalpb.UpdateStatus_STATE_UPDATING, "update in progress", 2, 1, nil},
		{shoalpb.UpdateStatus_STATE_PAUSED, msg, 2, 1, nil},
	})
	stdout, stderr, code := f.cli(t, "service", "update", "-q", "--image", "bad", "web")
	if code != 1 || stdout != "web\n" || !strings.Contains(stderr, "service update paused: "+msg) {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestServiceUpdateRolledBack(t *testing.T) {
	fastWait(t)
	f := startFake(t)
	const (
		run = shoalpb.TaskState_TASK_STATE_RUNNING
		msg = "update rolled back due to failure or early termination of task n1"
	)
	scriptUpdate(f, 1, []updateStep{
		{shoalpb.UpdateStatus_STATE_UPDATING, "update in progress", 2, 1, []*shoalpb.Task{vtask("o1", 1, 1, run, run, 1)}},
		{shoalpb.UpdateStatus_STATE_ROLLBACK_STARTED, msg, 3, 0, []*shoalpb.Task{vtask("o1", 1, 1, run, shoalpb.TaskState_TASK_STATE_SHUTDOWN, 1)}},
		{shoalpb.UpdateStatus_STATE_ROLLBACK_COMPLETED, "rollback completed", 3, 1, []*shoalpb.Task{vtask("r1", 1, 3, run, run, 3)}},
	})
	stdout, stderr, code := f.cli(t, "service", "update", "--image", "bad", "web")
	if code != 1 || !strings.Contains(stderr, "service rolled back: rollback completed") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"rollback: " + msg + "\n", "overall progress: rolling back update: 1 out of 1 tasks\n", "verify: Service converged\n"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout %q lacks %q", stdout, want)
		}
	}
}

func TestServiceRollbackShowsProgress(t *testing.T) {
	fastWait(t)
	f := startFake(t)
	run := shoalpb.TaskState_TASK_STATE_RUNNING
	scriptUpdate(f, 1, []updateStep{
		{shoalpb.UpdateStatus_STATE_ROLLBACK_STARTED, "manually requested rollback", 3, 0, nil},
		{shoalpb.UpdateStatus_STATE_ROLLBACK_COMPLETED, "rollback completed", 3, 1, []*shoalpb.Task{vtask("r1", 1, 3, run, run, 3)}},
	})
	stdout, stderr, code := f.cli(t, "service", "rollback", "web")
	wantOutput(t, stdout, stderr, code, "web\n"+
		"rollback: manually requested rollback\n"+
		"overall progress: rolling back update: 0 out of 1 tasks\n"+
		"1/1: new\n"+
		"overall progress: rolling back update: 1 out of 1 tasks\n"+
		"1/1: running\n"+
		"verify: Waiting 1 second to verify that tasks are stable...\n"+
		"verify: Service converged\n")
}

func TestServiceInspectUpdateStatusAndConfigs(t *testing.T) {
	saved := prettyNow
	prettyNow = func() time.Time { return fixtureNow }
	t.Cleanup(func() { prettyNow = saved })
	f := startFake(t)
	svc := storedWeb()
	svc.Spec.Update.MonitorNs = proto.Int64(int64(5 * time.Second))
	svc.Spec.Update.TaskTimeoutNs = proto.Int64(int64(2 * time.Minute))
	svc.Spec.Rollback = &shoalpb.UpdateConfig{Parallelism: 1, FailureAction: shoalpb.UpdateConfig_FAILURE_ACTION_CONTINUE, Order: shoalpb.UpdateConfig_ORDER_START_FIRST}
	svc.UpdateStatus = &shoalpb.UpdateStatus{State: shoalpb.UpdateStatus_STATE_ROLLBACK_PAUSED, StartedAt: ago(2 * time.Minute), Message: "rollback paused due to failure or early termination of task x"}
	f.reply("GetService", &shoalpb.GetServiceResponse{Service: svc})
	stdout, stderr, code := f.cli(t, "service", "inspect", "--format", "{{.UpdateStatus.State}} {{.Spec.UpdateConfig.Order}} {{.Spec.RollbackConfig.Order}} {{.Spec.UpdateConfig.Delay}}", "web")
	wantOutput(t, stdout, stderr, code, "rollback_paused stop-first start-first 1000000000\n")

	stdout, stderr, code = f.cli(t, "service", "inspect", "web")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatal(err)
	}
	us := got[0]["UpdateStatus"].(map[string]any)
	if us["State"] != "rollback_paused" || us["Message"] == "" || us["StartedAt"] == nil || us["CompletedAt"] != nil {
		t.Errorf("UpdateStatus %v", us)
	}
	uc := got[0]["Spec"].(map[string]any)["UpdateConfig"].(map[string]any)
	if uc["Parallelism"] != 2.0 || uc["Delay"] != 1e9 || uc["FailureAction"] != "pause" || uc["Monitor"] != 5e9 || uc["Order"] != "stop-first" || uc["TaskTimeout"] != 1.2e11 {
		t.Errorf("UpdateConfig %v", uc)
	}

	stdout, _, _ = f.cli(t, "service", "inspect", "--pretty", "web")
	kv := func(label string, value any) string { return fmt.Sprintf("%-24s%v\n", label+":", value) }
	for _, want := range []string{
		"UpdateStatus:\n" + kv(" State", "rollback_paused") + kv(" Started", "2 minutes ago") + kv(" Message", "rollback paused due to failure or early termination of task x"),
		"UpdateConfig:\n" + kv(" Parallelism", 2) + kv(" Delay", "1s") + kv(" On failure", "pause") + kv(" Monitoring Period", "5s") +
			kv(" Max failure ratio", 0) + kv(" Update order", "stop-first") + kv(" Task timeout", "2m0s"),
		"RollbackConfig:\n" + kv(" Parallelism", 1) + kv(" On failure", "continue") + kv(" Max failure ratio", 0) + kv(" Rollback order", "start-first"),
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--pretty lacks\n%s\nin\n%s", want, stdout)
		}
	}
}

func TestServiceLsMarksUpdates(t *testing.T) {
	f := startFake(t)
	var services []*shoalpb.Service
	statuses := map[string]*shoalpb.ServiceStatus{}
	for i, st := range []shoalpb.UpdateStatus_State{shoalpb.UpdateStatus_STATE_UPDATING, shoalpb.UpdateStatus_STATE_PAUSED, shoalpb.UpdateStatus_STATE_COMPLETED, shoalpb.UpdateStatus_STATE_ROLLBACK_STARTED} {
		svc := webService(3)
		svc.Id = strings.Repeat(string(rune('a'+i)), 25)
		svc.Spec.Name = updateStateWord(st)
		svc.UpdateStatus = &shoalpb.UpdateStatus{State: st}
		services = append(services, svc)
		statuses[svc.Id] = &shoalpb.ServiceStatus{RunningTasks: 3, DesiredTasks: 3}
	}
	f.reply("ListServices", &shoalpb.ListServicesResponse{Services: services, Statuses: statuses})
	stdout, stderr, code := f.cli(t, "service", "ls", "--format", "{{.Name}}: {{.Replicas}}")
	wantOutput(t, stdout, stderr, code, "updating: 3/3 (updating)\npaused: 3/3 (update paused)\ncompleted: 3/3\nrollback_started: 3/3 (rolling back)\n")
}

func TestServiceUpdateGivesUpWhenTasksFailAfterTheUpdate(t *testing.T) {
	fastWait(t)
	f := startFake(t)
	failedTask := vtask("n1", 1, 2, shoalpb.TaskState_TASK_STATE_FAILED, shoalpb.TaskState_TASK_STATE_RUNNING, 2)
	failedTask.Status.Err = "task: non-zero exit (1)"
	scriptUpdate(f, 1, []updateStep{
		{shoalpb.UpdateStatus_STATE_UPDATING, "update in progress", 2, 0, nil},
		// failure action continue: the update completes, the task fails.
		{shoalpb.UpdateStatus_STATE_COMPLETED, "update completed", 2, 0, []*shoalpb.Task{failedTask}},
	})
	stdout, stderr, code := f.cli(t, "service", "update", "-q", "--args", "false", "web")
	if code != 1 || stdout != "web\n" || !strings.Contains(stderr, "service web has not converged 30s after its update finished: web.1: task: non-zero exit (1)") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
