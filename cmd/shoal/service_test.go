package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Fixture services and tasks, as the daemon would return them.
const (
	idAgent = "a9enta9enta9enta9enta9ent"
	idBatch = "b4tchb4tchb4tchb4tchb4tch"
	idSweep = "swe3pswe3pswe3pswe3pswe3p"
)

var fixtureNow = time.Date(2026, time.March, 14, 9, 30, 0, 0, time.UTC)

func ago(d time.Duration) int64 { return fixtureNow.Add(-d).UnixNano() }

func fixtureServices() *shoalpb.ListServicesResponse {
	task := func(image string) *shoalpb.TaskSpec {
		return &shoalpb.TaskSpec{Container: &shoalpb.ContainerSpec{Image: image}}
	}
	web := &shoalpb.Service{Id: idWeb, Spec: &shoalpb.ServiceSpec{
		Name: "web", Task: task("nginx:1.27@sha256:" + strings.Repeat("f", 64)),
		Mode: &shoalpb.ServiceSpec_Replicated{Replicated: &shoalpb.ReplicatedService{Replicas: 3}},
	}}
	web.Spec.Task.Placement = &shoalpb.Placement{MaxReplicas: 2}
	return &shoalpb.ListServicesResponse{
		Services: []*shoalpb.Service{
			{Id: idAgent, Spec: &shoalpb.ServiceSpec{Name: "agent", Task: task("agent:2"), Mode: &shoalpb.ServiceSpec_Global{Global: &shoalpb.GlobalService{}}}},
			{Id: idBatch, Spec: &shoalpb.ServiceSpec{Name: "batch", Task: task("busybox"), Mode: &shoalpb.ServiceSpec_ReplicatedJob{ReplicatedJob: &shoalpb.ReplicatedJob{MaxConcurrent: 2, TotalCompletions: 5}}}},
			{Id: idSweep, Spec: &shoalpb.ServiceSpec{Name: "sweep", Task: task("busybox"), Mode: &shoalpb.ServiceSpec_GlobalJob{GlobalJob: &shoalpb.GlobalJob{}}}},
			web,
		},
		Statuses: map[string]*shoalpb.ServiceStatus{
			idAgent: {RunningTasks: 2, DesiredTasks: 3},
			idBatch: {RunningTasks: 2, DesiredTasks: 2, CompletedTasks: 1},
			idSweep: {RunningTasks: 0, DesiredTasks: 1, CompletedTasks: 2},
			idWeb:   {RunningTasks: 3, DesiredTasks: 3},
		},
	}
}

func TestServiceLs(t *testing.T) {
	f := startFake(t)
	f.reply("ListServices", fixtureServices())
	stdout, stderr, code := f.cli(t, "service", "ls", "-f", "mode=global", "-f", "name=a")
	want := "ID             NAME    MODE             REPLICAS               IMAGE        PORTS\n" +
		"a9enta9enta9   agent   global           2/3                    agent:2      \n" +
		"b4tchb4tchb4   batch   replicated job   2/2 (1/5 completed)    busybox      \n" +
		"swe3pswe3psw   sweep   global job       0/1 (2/3 completed)    busybox      \n" +
		"w3bw3bw3bw3b   web     replicated       3/3 (max 2 per node)   nginx:1.27   \n"
	wantOutput(t, stdout, stderr, code, want)
	wantRequests(t, f, "ListServices", &shoalpb.ListServicesRequest{Filters: map[string]*shoalpb.FilterValues{
		"mode": {Values: []string{"global"}}, "name": {Values: []string{"a"}},
	}})

	stdout, stderr, code = f.cli(t, "service", "ls", "-q")
	wantOutput(t, stdout, stderr, code, "a9enta9enta9\nb4tchb4tchb4\nswe3pswe3psw\nw3bw3bw3bw3b\n")

	stdout, stderr, code = f.cli(t, "service", "ls", "--format", "{{.Name}}:{{.Mode}}:{{.Replicas}}:{{.Image}}")
	wantOutput(t, stdout, stderr, code, "agent:global:2/3:agent:2\nbatch:replicated job:2/2 (1/5 completed):busybox\n"+
		"sweep:global job:0/1 (2/3 completed):busybox\nweb:replicated:3/3 (max 2 per node):nginx:1.27\n")
}

func TestReplicasTextDefaultsJobTotal(t *testing.T) {
	spec := &shoalpb.ServiceSpec{Mode: &shoalpb.ServiceSpec_ReplicatedJob{ReplicatedJob: &shoalpb.ReplicatedJob{MaxConcurrent: 3}}}
	if got := replicasText(spec, &shoalpb.ServiceStatus{RunningTasks: 1, DesiredTasks: 3}); got != "1/3 (0/3 completed)" {
		t.Errorf("got %q", got)
	}
	plain := &shoalpb.ServiceSpec{Mode: &shoalpb.ServiceSpec_Replicated{Replicated: &shoalpb.ReplicatedService{Replicas: 2}}}
	if got := replicasText(plain, nil); got != "0/0" {
		t.Errorf("no status: %q", got)
	}
}

func TestReplicasTextHeldBack(t *testing.T) {
	wait := func(service string, c shoalpb.ServiceDependency_Condition) *shoalpb.ServiceDependencyWait {
		return &shoalpb.ServiceDependencyWait{Service: service, Condition: c}
	}
	healthy := wait("app_db", shoalpb.ServiceDependency_CONDITION_HEALTHY)
	started := wait("app_cache", shoalpb.ServiceDependency_CONDITION_STARTED)
	completed := wait("app_migrate", shoalpb.ServiceDependency_CONDITION_COMPLETED_SUCCESSFULLY)
	missing := &shoalpb.ServiceDependencyWait{Service: "app_gone", Missing: true}
	replicas := func(n, max uint64) *shoalpb.ServiceSpec {
		return &shoalpb.ServiceSpec{
			Mode: &shoalpb.ServiceSpec_Replicated{Replicated: &shoalpb.ReplicatedService{Replicas: n}},
			Task: &shoalpb.TaskSpec{Placement: &shoalpb.Placement{MaxReplicas: max}},
		}
	}
	job := &shoalpb.ServiceSpec{Mode: &shoalpb.ServiceSpec_ReplicatedJob{ReplicatedJob: &shoalpb.ReplicatedJob{TotalCompletions: 2}}}
	global := &shoalpb.ServiceSpec{Mode: &shoalpb.ServiceSpec_Global{Global: &shoalpb.GlobalService{}}}
	for _, tc := range []struct {
		spec *shoalpb.ServiceSpec
		st   *shoalpb.ServiceStatus
		want string
	}{
		{replicas(3, 0), &shoalpb.ServiceStatus{DesiredTasks: 3, WaitingFor: []*shoalpb.ServiceDependencyWait{healthy}}, "0/3 (waiting for app_db to be healthy)"},
		{replicas(3, 0), &shoalpb.ServiceStatus{DesiredTasks: 3, WaitingFor: []*shoalpb.ServiceDependencyWait{started}}, "0/3 (waiting for app_cache to start)"},
		{replicas(3, 0), &shoalpb.ServiceStatus{DesiredTasks: 3, WaitingFor: []*shoalpb.ServiceDependencyWait{completed}}, "0/3 (waiting for app_migrate to complete)"},
		{replicas(3, 0), &shoalpb.ServiceStatus{DesiredTasks: 3, WaitingFor: []*shoalpb.ServiceDependencyWait{healthy, started, completed, missing}},
			"0/3 (waiting for app_db to be healthy, app_cache to start, app_migrate to complete, app_gone to be created)"},
		{replicas(3, 2), &shoalpb.ServiceStatus{DesiredTasks: 3, WaitingFor: []*shoalpb.ServiceDependencyWait{healthy}}, "0/3 (max 2 per node) (waiting for app_db to be healthy)"},
		{job, &shoalpb.ServiceStatus{WaitingFor: []*shoalpb.ServiceDependencyWait{completed}}, "0/0 (0/2 completed) (waiting for app_migrate to complete)"},
		{global, &shoalpb.ServiceStatus{WaitingFor: []*shoalpb.ServiceDependencyWait{started}}, "0/0 (waiting for app_cache to start)"},
		{replicas(3, 0), &shoalpb.ServiceStatus{RunningTasks: 3, DesiredTasks: 3}, "3/3"},
	} {
		if got := replicasText(tc.spec, tc.st); got != tc.want {
			t.Errorf("replicasText(%v, %v) = %q, want %q", tc.spec.GetMode(), tc.st, got, tc.want)
		}
	}
}

func fixtureTasks() *shoalpb.ListTasksResponse {
	spec := &shoalpb.TaskSpec{Container: &shoalpb.ContainerSpec{Image: "nginx:1.27@sha256:abc"}}
	mk := func(id string, slot uint64, node string, desired, state shoalpb.TaskState, age time.Duration, err string) *shoalpb.Task {
		return &shoalpb.Task{
			Id: id, Meta: &shoalpb.Meta{CreatedAt: ago(age)}, ServiceId: idWeb, ServiceName: "web", Slot: slot, NodeId: node, Spec: spec,
			DesiredState: desired, Status: &shoalpb.TaskStatus{State: state, Timestamp: ago(age), Err: err},
		}
	}
	run, shut := shoalpb.TaskState_TASK_STATE_RUNNING, shoalpb.TaskState_TASK_STATE_SHUTDOWN
	return &shoalpb.ListTasksResponse{
		// The daemon's order (oldest first); the CLI shows newest first.
		Tasks: []*shoalpb.Task{
			mk("t1aaaaaaaaaaaaaaaaaaaaaaa", 1, idAlpha, shut, shoalpb.TaskState_TASK_STATE_FAILED, time.Hour, "task: non-zero exit (1): the container crashed hard"),
			mk("t1bbbbbbbbbbbbbbbbbbbbbbb", 1, idAlpha, shut, shut, 10*time.Minute, ""),
			mk("t1ccccccccccccccccccccccc", 1, idBravo, run, run, 5*time.Second, ""),
			mk("t2aaaaaaaaaaaaaaaaaaaaaaa", 2, "", run, shoalpb.TaskState_TASK_STATE_PENDING, 90*time.Second, "no suitable node"),
		},
		NodeNames: map[string]string{idAlpha: "alpha", idBravo: "bravo"},
	}
}

func renderTaskTable(t *testing.T, o *taskListOptions) string {
	t.Helper()
	tmpl, err := listFormat(o.format, defaultTaskTableFormat)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := renderTasks(&buf, o, tmpl, fixtureTasks(), fixtureNow); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestServicePsTable(t *testing.T) {
	want := "ID             NAME        IMAGE        NODE    DESIRED STATE   CURRENT STATE                ERROR                              PORTS\n" +
		"t1cccccccccc   web.1       nginx:1.27   bravo   Running         Running 5 seconds ago                                           \n" +
		"t1bbbbbbbbbb    \\_ web.1   nginx:1.27   alpha   Shutdown        Shutdown 10 minutes ago                                         \n" +
		"t1aaaaaaaaaa    \\_ web.1   nginx:1.27   alpha   Shutdown        Failed about an hour ago     \"task: non-zero exit (1): the …\"   \n" +
		"t2aaaaaaaaaa   web.2       nginx:1.27           Running         Pending about a minute ago   \"no suitable node\"                 \n"
	if got := renderTaskTable(t, &taskListOptions{}); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}

	got := renderTaskTable(t, &taskListOptions{noTrunc: true, format: "{{.ID}}|{{.Name}}|{{.Image}}|{{.Error}}"})
	want = "t1ccccccccccccccccccccccc|web.1.t1ccccccccccccccccccccccc|nginx:1.27@sha256:abc|\n" +
		"t1bbbbbbbbbbbbbbbbbbbbbbb|web.1.t1bbbbbbbbbbbbbbbbbbbbbbb|nginx:1.27@sha256:abc|\n" +
		"t1aaaaaaaaaaaaaaaaaaaaaaa|web.1.t1aaaaaaaaaaaaaaaaaaaaaaa|nginx:1.27@sha256:abc|\"task: non-zero exit (1): the container crashed hard\"\n" +
		"t2aaaaaaaaaaaaaaaaaaaaaaa|web.2.t2aaaaaaaaaaaaaaaaaaaaaaa|nginx:1.27@sha256:abc|\"no suitable node\"\n"
	if got != want {
		t.Errorf("no-trunc template:\ngot:\n%s\nwant:\n%s", got, want)
	}

	// Templates other than tables get plain names.
	got = renderTaskTable(t, &taskListOptions{format: "{{.Name}} {{.DesiredState}} {{.Node}}"})
	if want := "web.1 Running bravo\nweb.1 Shutdown alpha\nweb.1 Shutdown alpha\nweb.2 Running \n"; got != want {
		t.Errorf("template names:\n%s", got)
	}
	if got := renderTaskTable(t, &taskListOptions{quiet: true}); got != "t1cccccccccc\nt1bbbbbbbbbb\nt1aaaaaaaaaa\nt2aaaaaaaaaa\n" {
		t.Errorf("quiet:\n%s", got)
	}
}

func TestGlobalTaskNames(t *testing.T) {
	tasks := []*shoalpb.Task{
		{Id: "g1", ServiceName: "agent", NodeId: idBravo, Meta: &shoalpb.Meta{CreatedAt: 2}},
		{Id: "g2", ServiceName: "agent", NodeId: idAlpha, Meta: &shoalpb.Meta{CreatedAt: 1}},
		{Id: "g3", ServiceName: "agent", NodeId: idAlpha, Meta: &shoalpb.Meta{CreatedAt: 3}},
	}
	rows := taskRows(tasks, map[string]string{idAlpha: "alpha", idBravo: "bravo"}, false, true, fixtureNow)
	var names []string
	for _, r := range rows {
		names = append(names, r.(taskRow).ID+" "+r.(taskRow).Name)
	}
	want := []string{"g3 agent." + idAlpha, `g2  \_ agent.` + idAlpha, "g1 agent." + idBravo}
	if strings.Join(names, "\n") != strings.Join(want, "\n") {
		t.Errorf("got %q, want %q", names, want)
	}
}

func TestServicePsThroughDaemon(t *testing.T) {
	f := startFake(t)
	f.on("GetService", func(req proto.Message) (proto.Message, error) {
		if ref := req.(*shoalpb.GetServiceRequest).ServiceRef; ref != "web" {
			return nil, status.Errorf(codes.NotFound, "service %s not found", ref)
		}
		return &shoalpb.GetServiceResponse{Service: &shoalpb.Service{Id: idWeb}}, nil
	})
	f.reply("ListTasks", fixtureTasks())
	stdout, stderr, code := f.cli(t, "service", "ps", "-q", "-f", "desired-state=running", "web", "nope")
	if code != 1 || stderr != "no such service: nope\n" || stdout != "t1cccccccccc\nt1bbbbbbbbbb\nt1aaaaaaaaaa\nt2aaaaaaaaaa\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	wantRequests(t, f, "ListTasks", &shoalpb.ListTasksRequest{Filters: map[string]*shoalpb.FilterValues{
		"service": {Values: []string{idWeb}}, "desired-state": {Values: []string{"running"}},
	}})
}

func TestNodePs(t *testing.T) {
	f := startFake(t)
	clusterFixture(f)
	f.reply("ListTasks", fixtureTasks())
	stdout, stderr, code := f.cli(t, "node", "ps")
	if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "ID ") || !strings.Contains(stdout, ` \_ web.1`) {
		t.Errorf("exit %d, stderr %q, stdout:\n%s", code, stderr, stdout)
	}
	stdout, stderr, code = f.cli(t, "node", "ps", "--format", "{{.ID}}", idCharlie, "ghost")
	if code != 1 || stderr != "Error: No such node: ghost\n" || strings.Count(stdout, "\n") != 4 {
		t.Errorf("exit %d, stderr %q, stdout %q", code, stderr, stdout)
	}
	wantRequests(t, f, "ListTasks",
		&shoalpb.ListTasksRequest{Filters: map[string]*shoalpb.FilterValues{"node": {Values: []string{idAlpha}}}},
		&shoalpb.ListTasksRequest{Filters: map[string]*shoalpb.FilterValues{"node": {Values: []string{idCharlie}}}})
}

func inspectFixture() *shoalpb.Service {
	return &shoalpb.Service{
		Id:   idWeb,
		Meta: &shoalpb.Meta{Version: 42, CreatedAt: ago(time.Hour), UpdatedAt: ago(time.Minute)},
		Spec: &shoalpb.ServiceSpec{
			Name:   "web",
			Labels: map[string]string{"tier": "front"},
			Mode:   &shoalpb.ServiceSpec_Replicated{Replicated: &shoalpb.ReplicatedService{Replicas: 3}},
			Task: &shoalpb.TaskSpec{
				Container: &shoalpb.ContainerSpec{
					Image: "nginx:1.27", Args: []string{"nginx", "-g", "daemon off;"}, Env: []string{"A=1"},
					Mounts: []*shoalpb.Mount{
						{Type: shoalpb.Mount_TYPE_BIND, Source: "/srv", Target: "/srv", ReadOnly: true, BindPropagation: "rslave"},
						{Type: shoalpb.Mount_TYPE_TMPFS, Target: "/tmp", TmpfsSizeBytes: 1 << 20},
					},
					StopGracePeriodNs: proto.Int64(int64(10 * time.Second)),
					Healthcheck:       &shoalpb.HealthConfig{Test: []string{"CMD-SHELL", "true"}, IntervalNs: int64(30 * time.Second), Retries: 3},
				},
				Resources: &shoalpb.ResourceRequirements{Limits: &shoalpb.Resources{NanoCpus: 5e8, MemoryBytes: 512 << 20}},
				Restart:   &shoalpb.RestartPolicy{DelayNs: proto.Int64(int64(5 * time.Second))},
				Placement: &shoalpb.Placement{Constraints: []string{"node.role==worker"}, Preferences: []*shoalpb.PlacementPreference{{SpreadDescriptor: "node.labels.zone"}}},
			},
		},
		PreviousSpec: &shoalpb.ServiceSpec{Name: "web", Mode: &shoalpb.ServiceSpec_Replicated{Replicated: &shoalpb.ReplicatedService{Replicas: 1}},
			Task: &shoalpb.TaskSpec{Container: &shoalpb.ContainerSpec{Image: "nginx:1.26"}}},
	}
}

func TestServiceInspect(t *testing.T) {
	f := startFake(t)
	f.on("GetService", func(req proto.Message) (proto.Message, error) {
		r := req.(*shoalpb.GetServiceRequest)
		if r.ServiceRef != "web" {
			return nil, status.Errorf(codes.NotFound, "service %s not found", r.ServiceRef)
		}
		if !r.InsertDefaults {
			return nil, status.Error(codes.InvalidArgument, "inspect must ask for defaults")
		}
		return &shoalpb.GetServiceResponse{Service: inspectFixture()}, nil
	})
	stdout, stderr, code := f.cli(t, "service", "inspect", "web")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(stdout), &got); err != nil || len(got) != 1 {
		t.Fatalf("output is not a JSON array of one: %v\n%s", err, stdout)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(stdout)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"ID":"` + idWeb + `"`, `"Version":{"Index":42}`, `"CreatedAt":"2026-03-14T08:30:00Z"`, `"UpdatedAt":"2026-03-14T09:29:00Z"`,
		`"Mode":{"Replicated":{"Replicas":3}}`, `"Labels":{"tier":"front"}`,
		`"ContainerSpec":{"Image":"nginx:1.27","Args":["nginx","-g","daemon off;"],"Env":["A=1"],"Mounts":[` +
			`{"Type":"bind","Source":"/srv","Target":"/srv","ReadOnly":true,"BindOptions":{"Propagation":"rslave"}},` +
			`{"Type":"tmpfs","Target":"/tmp","TmpfsOptions":{"SizeBytes":1048576}}],` +
			`"StopGracePeriod":10000000000,"Healthcheck":{"Test":["CMD-SHELL","true"],"Interval":30000000000,"Retries":3}}`,
		`"Resources":{"Limits":{"NanoCPUs":500000000,"MemoryBytes":536870912}}`,
		`"RestartPolicy":{"Condition":"any","Delay":5000000000,"MaxAttempts":0}`,
		`"Placement":{"Constraints":["node.role==worker"],"Preferences":[{"Spread":{"SpreadDescriptor":"node.labels.zone"}}]}`,
		`"ForceUpdate":0`,
		`"PreviousSpec":{"Name":"web","Labels":{},"TaskTemplate":{"ContainerSpec":{"Image":"nginx:1.26"},"Resources":{},"Placement":{},"ForceUpdate":0},"Mode":{"Replicated":{"Replicas":1}}}`,
	} {
		if !strings.Contains(compact.String(), want) {
			t.Errorf("inspect output lacks %s:\n%s", want, stdout)
		}
	}

	stdout, stderr, code = f.cli(t, "service", "inspect", "-f", "{{.Spec.Name}} {{.Spec.Mode.Replicated.Replicas}} {{.Spec.TaskTemplate.ContainerSpec.Image}}", "web", "nope")
	if code != 1 || stdout != "web 3 nginx:1.27\n" || stderr != "Error: No such service: nope\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	stdout, stderr, code = f.cli(t, "service", "inspect", "--pretty", "web")
	wantOutput(t, stdout, stderr, code, "ID:                     "+idWeb+"\n"+
		"Name:                   web\n"+
		"Labels:\n"+
		" tier=front\n"+
		"Service Mode:           Replicated\n"+
		" Replicas:              3\n"+
		"Placement:\n"+
		" Constraints:           [node.role==worker]\n"+
		" Preferences:           spread=node.labels.zone\n"+
		"RestartPolicy:\n"+
		" Condition:             any\n"+
		" Delay:                 5s\n"+
		" Max Attempts:          0\n"+
		"ContainerSpec:\n"+
		" Image:                 nginx:1.27\n"+
		" Args:                  nginx -g daemon off;\n"+
		" Env:                   A=1\n"+
		" Stop Grace Period:     10s\n"+
		" Healthcheck:\n"+
		"  Test:                 CMD-SHELL true\n"+
		"  Interval:             30s\n"+
		"  Retries:              3\n"+
		"Mounts:\n"+
		" Target:                /srv\n"+
		"  Source:               /srv\n"+
		"  ReadOnly:             true\n"+
		"  Type:                 bind\n"+
		" Target:                /tmp\n"+
		"  Source:               \n"+
		"  ReadOnly:             false\n"+
		"  Type:                 tmpfs\n"+
		"Resources:\n"+
		" Limits:\n"+
		"  CPU:                  0.5\n"+
		"  Memory:               512MiB\n")

	// A service held back for its depends_on says so.
	f.on("GetService", func(proto.Message) (proto.Message, error) {
		svc := &shoalpb.Service{Id: idWeb, Spec: &shoalpb.ServiceSpec{Name: "app_web",
			Mode: &shoalpb.ServiceSpec_Replicated{Replicated: &shoalpb.ReplicatedService{Replicas: 3}},
			Task: &shoalpb.TaskSpec{Container: &shoalpb.ContainerSpec{Image: "nginx:1.27"}}}}
		return &shoalpb.GetServiceResponse{Service: svc, Status: &shoalpb.ServiceStatus{DesiredTasks: 3, WaitingFor: []*shoalpb.ServiceDependencyWait{
			{Service: "app_db", Condition: shoalpb.ServiceDependency_CONDITION_HEALTHY},
			{Service: "app_migrate", Condition: shoalpb.ServiceDependency_CONDITION_COMPLETED_SUCCESSFULLY},
		}}}, nil
	})
	stdout, stderr, code = f.cli(t, "service", "inspect", "--pretty", "app_web")
	wantOutput(t, stdout, stderr, code, "ID:                     "+idWeb+"\n"+
		"Name:                   app_web\n"+
		"Service Mode:           Replicated\n"+
		" Replicas:              3\n"+
		"Held Back:              waiting for app_db to be healthy, app_migrate to complete\n"+
		"Placement:\n"+
		"ContainerSpec:\n"+
		" Image:                 nginx:1.27\n")
	stdout, stderr, code = f.cli(t, "service", "inspect", "-f", "{{.Spec.Name}} {{.Spec.Mode.Replicated.Replicas}}", "app_web")
	wantOutput(t, stdout, stderr, code, "app_web 3\n")

	_, stderr, code = f.cli(t, "service", "inspect", "--pretty", "-f", "{{.ID}}", "web")
	if code != 1 || !strings.HasPrefix(stderr, "--format is incompatible with human friendly format") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestServiceRm(t *testing.T) {
	f := startFake(t)
	f.on("RemoveService", func(req proto.Message) (proto.Message, error) {
		if ref := req.(*shoalpb.RemoveServiceRequest).ServiceRef; ref == "nope" {
			return nil, status.Errorf(codes.NotFound, "service %s not found", ref)
		}
		return &shoalpb.RemoveServiceResponse{}, nil
	})
	stdout, stderr, code := f.cli(t, "service", "rm", "web", "nope", "db")
	if code != 1 || stdout != "web\ndb\n" || stderr != "Error: No such service: nope\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestServiceScale(t *testing.T) {
	f := startFake(t)
	services := map[string]*shoalpb.Service{
		"web":   {Id: idWeb, Meta: &shoalpb.Meta{Version: 7}, Spec: &shoalpb.ServiceSpec{Name: "web", Mode: &shoalpb.ServiceSpec_Replicated{Replicated: &shoalpb.ReplicatedService{Replicas: 1}}}},
		"batch": {Id: idBatch, Meta: &shoalpb.Meta{Version: 3}, Spec: &shoalpb.ServiceSpec{Name: "batch", Mode: &shoalpb.ServiceSpec_ReplicatedJob{ReplicatedJob: &shoalpb.ReplicatedJob{TotalCompletions: 1}}}},
		"agent": {Id: idAgent, Meta: &shoalpb.Meta{Version: 2}, Spec: &shoalpb.ServiceSpec{Name: "agent", Mode: &shoalpb.ServiceSpec_Global{Global: &shoalpb.GlobalService{}}}},
	}
	f.on("GetService", func(req proto.Message) (proto.Message, error) {
		ref := req.(*shoalpb.GetServiceRequest).ServiceRef
		s := services[ref]
		if s == nil {
			return nil, status.Errorf(codes.NotFound, "service %s not found", ref)
		}
		s = proto.Clone(s).(*shoalpb.Service)
		if ref == "web" {
			// Someone else writes web after every read: the first two
			// updates are out of sequence.
			services["web"].Meta.Version++
		}
		return &shoalpb.GetServiceResponse{Service: s}, nil
	})
	updates := 0
	f.on("UpdateService", func(req proto.Message) (proto.Message, error) {
		updates++
		if r := req.(*shoalpb.UpdateServiceRequest); r.ServiceRef == idWeb && updates < 3 {
			return nil, status.Error(codes.Aborted, "update out of sequence")
		}
		return &shoalpb.UpdateServiceResponse{}, nil
	})
	stdout, stderr, code := f.cli(t, "service", "scale", "-d", "web=5", "agent=2", "batch=4", "ghost=1")
	if code != 1 || stdout != "web scaled to 5\nbatch scaled to 4\n" ||
		stderr != "agent: scale can only be used with replicated or replicated-job mode\nError: No such service: ghost\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	ups := f.requests("UpdateService")
	if len(ups) != 4 {
		t.Fatalf("%d updates, want 3 for web and 1 for batch", len(ups))
	}
	for i, want := range []uint64{7, 8, 9} {
		r := ups[i].(*shoalpb.UpdateServiceRequest)
		if r.Version != want || r.Spec.GetReplicated().GetReplicas() != 5 {
			t.Errorf("web update %d: version %d replicas %d", i, r.Version, r.Spec.GetReplicated().GetReplicas())
		}
	}
	if r := ups[3].(*shoalpb.UpdateServiceRequest); r.ServiceRef != idBatch || r.Version != 3 || r.Spec.GetReplicatedJob().GetTotalCompletions() != 4 {
		t.Errorf("batch update %v", r)
	}

	// Three conflicts in a row give up with the daemon's error.
	updates = -10
	_, stderr, code = f.cli(t, "service", "scale", "-d", "web=2")
	if code != 1 || stderr != "Error response from daemon: update out of sequence\n" {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}

	for bad, want := range map[string]string{
		"web":    `invalid scale specifier "web"`,
		"=3":     `invalid scale specifier "=3"`,
		"web=-1": `invalid replicas value "-1" for service web`,
		"web=x":  `invalid replicas value "x" for service web`,
	} {
		_, stderr, code := f.cli(t, "service", "scale", bad)
		if first, _, _ := strings.Cut(stderr, "\n"); code != 1 || !strings.Contains(first, want) {
			t.Errorf("%q: exit %d, stderr %q", bad, code, stderr)
		}
	}
}
