package main

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/internal/compose"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

const (
	idApiSvc = "api0api0api0api0api0api0a"
	idDbSvc  = "db00db00db00db00db00db00d"
)

func writeCompose(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "docker-compose.yml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func stackSvc(id, name string, version uint64) *shoalpb.Service {
	return &shoalpb.Service{Id: id, Meta: &shoalpb.Meta{Version: version}, Spec: &shoalpb.ServiceSpec{
		Name: name, Labels: map[string]string{compose.LabelNamespace: "app"},
		Task: &shoalpb.TaskSpec{Container: &shoalpb.ContainerSpec{Image: "busybox"}},
		Mode: &shoalpb.ServiceSpec_Replicated{Replicated: &shoalpb.ReplicatedService{Replicas: 1}},
	}}
}

// twoStates answers method with before on its first call and after on
// every later one.
func (f *fakeDaemon) twoStates(method string, before, after proto.Message) {
	var n atomic.Int32
	f.on(method, func(proto.Message) (proto.Message, error) {
		if n.Add(1) == 1 {
			return before, nil
		}
		return after, nil
	})
}

func TestStackDeploy(t *testing.T) {
	old := composeEnv
	composeEnv = func() []string { return []string{"TAG=1.2"} }
	t.Cleanup(func() { composeEnv = old })
	file := writeCompose(t, `
services:
  api:
    image: api:${TAG}
    privileged: true
    depends_on:
      db: {condition: service_healthy}
  db:
    image: postgres
`)
	f := startFake(t)
	// db existed (version 5) and changes; api is new; the default network
	// is made.
	f.twoStates("ListServices",
		&shoalpb.ListServicesResponse{Services: []*shoalpb.Service{stackSvc(idDbSvc, "app_db", 5)}},
		&shoalpb.ListServicesResponse{Services: []*shoalpb.Service{stackSvc(idApiSvc, "app_api", 9), stackSvc(idDbSvc, "app_db", 9)}})
	f.twoStates("ListNetworks",
		&shoalpb.ListNetworksResponse{},
		&shoalpb.ListNetworksResponse{Networks: []*shoalpb.Network{{Id: "n1", Spec: &shoalpb.NetworkSpec{Name: "app_default"}}}})
	f.reply("DeployStack", &shoalpb.DeployStackResponse{Stack: &shoalpb.Stack{Name: "app", Current: 4, Revisions: []*shoalpb.StackRevision{{Number: 4, Source: "deploy"}}}})

	stdout, stderr, code := f.cli(t, "stack", "deploy", "-c", file, "--prune", "app")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := "Creating network app_default\n" +
		"Creating service app_api\n" +
		"Updating service app_db (id: " + idDbSvc + ")\n" +
		"Stack app is at revision 4 (deploy)\n"
	if stdout != want {
		t.Errorf("stdout\n got %q\nwant %q", stdout, want)
	}
	if stderr != "Ignoring unsupported options: privileged\n\n" {
		t.Errorf("stderr %q", stderr)
	}
	reqs := f.requests("DeployStack")
	if len(reqs) != 1 {
		t.Fatalf("%d DeployStack requests", len(reqs))
	}
	req := reqs[0].(*shoalpb.DeployStackRequest)
	if !req.Prune || req.Spec.Name != "app" || len(req.Spec.Services) != 2 || len(req.Spec.Networks) != 1 {
		t.Fatalf("request %v", req)
	}
	api := req.Spec.Services[0]
	if api.Name != "app_api" || api.Task.Container.Image != "api:1.2" || api.DependsOn[0].Service != "app_db" ||
		api.DependsOn[0].Condition != shoalpb.ServiceDependency_CONDITION_HEALTHY || api.Labels[compose.LabelNamespace] != "app" {
		t.Errorf("api spec %v", api)
	}
	wantRequests(t, f, "ListServices",
		&shoalpb.ListServicesRequest{Filters: map[string]*shoalpb.FilterValues{"label": {Values: []string{"com.docker.stack.namespace=app"}}}},
		&shoalpb.ListServicesRequest{Filters: map[string]*shoalpb.FilterValues{"label": {Values: []string{"com.docker.stack.namespace=app"}}}})
}

func TestStackDeployRefusesBadFilesBeforeSending(t *testing.T) {
	f := startFake(t)
	file := writeCompose(t, "services:\n  web:\n    image: nginx\n    deploy:\n      replicas: lots\n")
	_, stderr, code := f.cli(t, "stack", "deploy", "-c", file, "app")
	if code == 0 || !strings.Contains(stderr, file+`: services.web.deploy.replicas must be a number (got "lots")`) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	_, stderr, code = f.cli(t, "stack", "deploy", "app")
	if code == 0 || !strings.Contains(stderr, "Please specify a Compose file") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	_, stderr, code = f.cli(t, "stack", "deploy", "-c", file, "bad/name")
	if code == 0 || !strings.Contains(stderr, `invalid stack name "bad/name"`) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	_, stderr, code = f.cli(t, "stack", "deploy", "-c", file, "--resolve-image", "sometimes", "app")
	if code == 0 || !strings.Contains(stderr, `invalid resolve-image value "sometimes"`) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if m := f.methods(); len(m) != 0 {
		t.Fatalf("the daemon was called: %v", m)
	}
}

func TestStackDeployShowsDaemonErrors(t *testing.T) {
	f := startFake(t)
	f.reply("ListServices", &shoalpb.ListServicesResponse{})
	f.reply("ListNetworks", &shoalpb.ListNetworksResponse{})
	f.on("DeployStack", func(proto.Message) (proto.Message, error) {
		return nil, status.Error(codes.InvalidArgument, "service app_web: invalid image")
	})
	file := writeCompose(t, "services:\n  web:\n    image: nginx\n")
	stdout, stderr, code := f.cli(t, "stack", "deploy", "-c", file, "app")
	if code == 0 || stdout != "" || !strings.Contains(stderr, "Error response from daemon: service app_web: invalid image") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestStackLs(t *testing.T) {
	f := startFake(t)
	f.reply("ListStacks", &shoalpb.ListStacksResponse{
		Stacks:        []*shoalpb.Stack{{Name: "app"}, {Name: "monitoring"}},
		ServiceCounts: map[string]uint64{"app": 2, "monitoring": 11},
	})
	stdout, stderr, code := f.cli(t, "stack", "ls")
	wantOutput(t, stdout, stderr, code, "NAME         SERVICES\napp          2\nmonitoring   11\n")
	stdout, stderr, code = f.cli(t, "stack", "ls", "--format", "{{.Name}}={{.Services}}")
	wantOutput(t, stdout, stderr, code, "app=2\nmonitoring=11\n")
}

func TestStackServicesAndPs(t *testing.T) {
	f := startFake(t)
	svcs := &shoalpb.ListServicesResponse{
		Services: []*shoalpb.Service{stackSvc(idApiSvc, "app_api", 1)},
		Statuses: map[string]*shoalpb.ServiceStatus{idApiSvc: {RunningTasks: 1, DesiredTasks: 1}},
	}
	f.reply("ListServices", svcs)
	stdout, stderr, code := f.cli(t, "stack", "services", "app")
	wantOutput(t, stdout, stderr, code, "ID             NAME      MODE         REPLICAS   IMAGE     PORTS\n"+
		"api0api0api0   app_api   replicated   1/1        busybox   \n")
	stdout, stderr, code = f.cli(t, "stack", "services", "-f", "mode=replicated", "-q", "app")
	wantOutput(t, stdout, stderr, code, "api0api0api0\n")
	wantRequests(t, f, "ListServices",
		&shoalpb.ListServicesRequest{Filters: map[string]*shoalpb.FilterValues{"label": {Values: []string{"com.docker.stack.namespace=app"}}}},
		&shoalpb.ListServicesRequest{Filters: map[string]*shoalpb.FilterValues{
			"label": {Values: []string{"com.docker.stack.namespace=app"}}, "mode": {Values: []string{"replicated"}},
		}})

	// A service held back for its depends_on says what it waits for.
	held := &shoalpb.ListServicesResponse{
		Services: []*shoalpb.Service{stackSvc(idApiSvc, "app_api", 1), stackSvc(idDbSvc, "app_db", 1)},
		Statuses: map[string]*shoalpb.ServiceStatus{
			idApiSvc: {DesiredTasks: 3, WaitingFor: []*shoalpb.ServiceDependencyWait{
				{Service: "app_db", Condition: shoalpb.ServiceDependency_CONDITION_HEALTHY},
				{Service: "app_migrate", Condition: shoalpb.ServiceDependency_CONDITION_COMPLETED_SUCCESSFULLY},
			}},
			idDbSvc: {DesiredTasks: 1},
		},
	}
	held.Services[0].Spec.GetReplicated().Replicas = 3
	f.reply("ListServices", held)
	stdout, stderr, code = f.cli(t, "stack", "services", "app")
	wantOutput(t, stdout, stderr, code, "ID             NAME      MODE         REPLICAS                                                          IMAGE     PORTS\n"+
		"api0api0api0   app_api   replicated   0/3 (waiting for app_db to be healthy, app_migrate to complete)   busybox   \n"+
		"db00db00db00   app_db    replicated   0/1                                                               busybox   \n")
	stdout, stderr, code = f.cli(t, "stack", "services", "--format", "{{.Name}}: {{.Replicas}}", "app")
	wantOutput(t, stdout, stderr, code, "app_api: 0/3 (waiting for app_db to be healthy, app_migrate to complete)\napp_db: 0/1\n")
	f.reply("ListServices", svcs)

	f.reply("ListTasks", &shoalpb.ListTasksResponse{Tasks: []*shoalpb.Task{{
		Id: "t1t1t1t1t1t1t1t1t1t1t1t1t", ServiceId: idApiSvc, ServiceName: "app_api", Slot: 1, NodeId: "node1",
		Spec: svcs.Services[0].Spec.Task, DesiredState: shoalpb.TaskState_TASK_STATE_RUNNING,
		Status: &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_RUNNING},
	}}, NodeNames: map[string]string{"node1": "h1"}})
	stdout, stderr, code = f.cli(t, "stack", "ps", "--format", "{{.Name}} {{.Node}} {{.CurrentState}}", "app")
	wantOutput(t, stdout, stderr, code, "app_api.1 h1 Running\n")
	wantRequests(t, f, "ListTasks", &shoalpb.ListTasksRequest{Filters: map[string]*shoalpb.FilterValues{"service": {Values: []string{idApiSvc}}}})

	f.reply("ListServices", &shoalpb.ListServicesResponse{})
	stdout, stderr, code = f.cli(t, "stack", "ps", "nothing")
	if code != 0 || stdout != "" || stderr != "Nothing found in stack: nothing\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestStackRm(t *testing.T) {
	f := startFake(t)
	f.reply("ListServices", &shoalpb.ListServicesResponse{Services: []*shoalpb.Service{stackSvc(idDbSvc, "app_db", 1), stackSvc(idApiSvc, "app_api", 1)}})
	f.reply("ListNetworks", &shoalpb.ListNetworksResponse{Networks: []*shoalpb.Network{{Id: "n1", Spec: &shoalpb.NetworkSpec{Name: "app_default"}}}})
	f.on("RemoveStack", func(req proto.Message) (proto.Message, error) {
		if req.(*shoalpb.RemoveStackRequest).Name == "gone" {
			return nil, status.Error(codes.NotFound, "stack gone not found")
		}
		return &shoalpb.RemoveStackResponse{}, nil
	})
	stdout, stderr, code := f.cli(t, "stack", "rm", "app", "gone")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if want := "Removing service app_api\nRemoving service app_db\nRemoving network app_default\n"; stdout != want {
		t.Errorf("stdout\n got %q\nwant %q", stdout, want)
	}
	if stderr != "Nothing found in stack: gone\n" {
		t.Errorf("stderr %q", stderr)
	}
}

func TestStackHistoryAndRollback(t *testing.T) {
	f := startFake(t)
	now := time.Now()
	rev := func(n uint64, age time.Duration, source string, services int) *shoalpb.StackRevision {
		r := &shoalpb.StackRevision{Number: n, CreatedAt: now.Add(-age).UnixNano(), Source: source, Spec: &shoalpb.StackSpec{}}
		for range services {
			r.Spec.Services = append(r.Spec.Services, &shoalpb.ServiceSpec{})
		}
		return r
	}
	f.reply("GetStack", &shoalpb.GetStackResponse{Stack: &shoalpb.Stack{Name: "app", Current: 3, Revisions: []*shoalpb.StackRevision{
		rev(1, 3*time.Hour, "deploy", 2), rev(2, 10*time.Minute, "deploy", 3), rev(3, 5*time.Minute+30*time.Second, "rollback to 1", 2),
	}}})
	stdout, stderr, code := f.cli(t, "stack", "history", "app")
	wantOutput(t, stdout, stderr, code, "REVISION   CREATED          SOURCE          SERVICES\n"+
		"3          5 minutes ago    rollback to 1   2\n"+
		"2          10 minutes ago   deploy          3\n"+
		"1          3 hours ago      deploy          2\n")

	f.reply("ListServices", &shoalpb.ListServicesResponse{})
	f.reply("ListNetworks", &shoalpb.ListNetworksResponse{})
	f.reply("RollbackStack", &shoalpb.RollbackStackResponse{Stack: &shoalpb.Stack{Name: "app", Current: 4, Revisions: []*shoalpb.StackRevision{{Number: 4, Source: "rollback to 2"}}}})
	stdout, stderr, code = f.cli(t, "stack", "rollback", "--to", "2", "app")
	wantOutput(t, stdout, stderr, code, "Stack app is at revision 4 (rollback to 2)\n")
	wantRequests(t, f, "RollbackStack", &shoalpb.RollbackStackRequest{Name: "app", ToRevision: 2})

	f.on("GetStack", func(proto.Message) (proto.Message, error) {
		return nil, status.Error(codes.NotFound, "stack nope not found")
	})
	_, stderr, code = f.cli(t, "stack", "history", "nope")
	if code == 0 || !strings.Contains(stderr, "No such stack: nope") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}
