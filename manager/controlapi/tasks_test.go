package controlapi_test

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

const (
	stRunning  = shoalpb.TaskState_TASK_STATE_RUNNING
	stPending  = shoalpb.TaskState_TASK_STATE_PENDING
	stComplete = shoalpb.TaskState_TASK_STATE_COMPLETE
	stShutdown = shoalpb.TaskState_TASK_STATE_SHUTDOWN
	stFailed   = shoalpb.TaskState_TASK_STATE_FAILED
	stReady    = shoalpb.TaskState_TASK_STATE_READY
	stAccepted = shoalpb.TaskState_TASK_STATE_ACCEPTED
)

// task makes a task of svc; age orders tasks of one slot (older first).
func task(id string, svc *shoalpb.Service, slot uint64, node string, desired, observed shoalpb.TaskState, age time.Duration) *shoalpb.Task {
	at := fixed.Add(-age).UnixNano()
	return &shoalpb.Task{
		Id:           id,
		Meta:         &shoalpb.Meta{CreatedAt: at, UpdatedAt: at},
		ServiceId:    svc.Id,
		ServiceName:  svc.Spec.Name,
		Slot:         slot,
		NodeId:       node,
		Spec:         svc.Spec.Task,
		SpecVersion:  svc.SpecVersion,
		DesiredState: desired,
		Status:       &shoalpb.TaskStatus{State: observed, Timestamp: at},
		JobIteration: svc.GetJobStatus().GetJobIteration(),
	}
}

func (e *env) addTasks(tasks ...*shoalpb.Task) {
	e.t.Helper()
	for _, t := range tasks {
		e.propose(&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Task{Task: t}})
	}
}

func taskIDs(tasks []*shoalpb.Task) []string {
	out := []string{}
	for _, t := range tasks {
		out = append(out, t.Id)
	}
	return out
}

// taskFixture: web (replicated ×3) with a replaced task in slot 1, a
// global agent on two nodes, a replicated job half done, and a global job.
func taskFixture(t *testing.T) (*env, map[string]*shoalpb.Service) {
	e := newServiceEnv(t)
	e.addNodes(worker("n1", shoalpb.NodeState_NODE_STATE_READY), worker("n2", shoalpb.NodeState_NODE_STATE_READY))
	web := replicated(spec("web", "nginx"), 3)
	web.Labels = map[string]string{"tier": "front"}
	agent := global(spec("agent", "agent"))
	batch := spec("batch", "busybox")
	batch.Mode = &shoalpb.ServiceSpec_ReplicatedJob{ReplicatedJob: &shoalpb.ReplicatedJob{MaxConcurrent: 2, TotalCompletions: 4}}
	sweep := spec("sweep", "busybox")
	sweep.Mode = &shoalpb.ServiceSpec_GlobalJob{GlobalJob: &shoalpb.GlobalJob{}}
	svcs := map[string]*shoalpb.Service{}
	for _, s := range []*shoalpb.ServiceSpec{web, agent, batch, sweep} {
		svcs[s.Name] = e.create(s)
	}
	w, a, b, g := svcs["web"], svcs["agent"], svcs["batch"], svcs["sweep"]
	e.addTasks(
		task("w1old", w, 1, "n1", stShutdown, stFailed, time.Minute),
		task("w1", w, 1, "n2", stRunning, stRunning, time.Second),
		task("w2", w, 2, "n1", stRunning, stRunning, 2*time.Second),
		task("w3", w, 3, "", stRunning, stPending, 3*time.Second),
		task("a1", a, 0, "n1", stRunning, stRunning, time.Second),
		task("a2", a, 0, "n2", stReady, stFailed, time.Second),
		task("a2old", a, 0, "n2", stShutdown, stShutdown, time.Hour),
		task("b1", b, 1, "n1", stRunning, stComplete, time.Minute),
		task("b2", b, 2, "n2", stRunning, stComplete, time.Minute),
		task("b3", b, 3, "n1", stRunning, stRunning, time.Second),
		task("b4", b, 4, "n2", stRunning, stPending, time.Second),
		task("g1", g, 0, "n1", stRunning, stComplete, time.Second),
		task("g2", g, 0, "n2", stRunning, stRunning, time.Second),
		task("acc", w, 4, "n1", stAccepted, stPending, time.Second),
	)
	// A task of an older job iteration does not count.
	old := task("b0", b, 1, "n1", stRunning, stComplete, time.Hour)
	old.JobIteration = 99
	e.addTasks(old)
	return e, svcs
}

func TestListServicesStatuses(t *testing.T) {
	e, svcs := taskFixture(t)
	resp, err := e.srv.ListServices(e.ctx, &shoalpb.ListServicesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.Services {
		names = append(names, s.Spec.Name)
	}
	if want := []string{"agent", "batch", "sweep", "web"}; !slices.Equal(names, want) {
		t.Errorf("order %v, want %v", names, want)
	}
	want := map[string]*shoalpb.ServiceStatus{
		// w1, w2 running; desired is the replica count.
		"web": {RunningTasks: 2, DesiredTasks: 3},
		// a1 running; a1 and a2 (waiting to restart) are runnable.
		"agent": {RunningTasks: 1, DesiredTasks: 2},
		// b3 running; b3, b4 still to finish; b1, b2 completed.
		"batch": {RunningTasks: 1, DesiredTasks: 2, CompletedTasks: 2},
		"sweep": {RunningTasks: 1, DesiredTasks: 1, CompletedTasks: 1},
	}
	for name, w := range want {
		if got := resp.Statuses[svcs[name].Id]; !proto.Equal(got, w) {
			t.Errorf("%s: status %v, want %v", name, got, w)
		}
	}
}

func TestListServicesFilters(t *testing.T) {
	e, svcs := taskFixture(t)
	for _, tc := range []struct {
		name    string
		filters map[string]*shoalpb.FilterValues
		want    []string
	}{
		{"name prefix", filters("name", "we"), []string{"web"}},
		{"name prefix, several", filters("name", "b", "name", "s"), []string{"batch", "sweep"}},
		{"id", filters("id", svcs["agent"].Id), []string{"agent"}},
		{"mode global", filters("mode", "global"), []string{"agent"}},
		{"mode jobs", filters("mode", "replicated-job", "mode", "global-job"), []string{"batch", "sweep"}},
		{"label key", filters("label", "tier"), []string{"web"}},
		{"label key=value mismatch", filters("label", "tier=back"), nil},
		{"keys are anded", filters("mode", "replicated", "name", "a"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e.srv.ListServices(e.ctx, &shoalpb.ListServicesRequest{Filters: tc.filters})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range resp.Services {
				got = append(got, s.Spec.Name)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			if len(resp.Statuses) != len(resp.Services) {
				t.Errorf("%d statuses for %d services", len(resp.Statuses), len(resp.Services))
			}
		})
	}
	_, err := e.srv.ListServices(e.ctx, &shoalpb.ListServicesRequest{Filters: filters("colour", "x")})
	wantCode(t, err, codes.InvalidArgument, "colour")
	_, err = e.srv.ListServices(e.ctx, &shoalpb.ListServicesRequest{Filters: filters("mode", "job")})
	wantCode(t, err, codes.InvalidArgument, "mode=job")
}

func TestListTasks(t *testing.T) {
	e, svcs := taskFixture(t)
	for _, tc := range []struct {
		name    string
		filters map[string]*shoalpb.FilterValues
		want    []string
	}{
		{"service by name, sorted by slot then age", filters("service", "web"), []string{"w1old", "w1", "w2", "w3", "acc"}},
		{"service by ID", filters("service", svcs["agent"].Id), []string{"a1", "a2old", "a2"}},
		{"unknown service", filters("service", "nope"), []string{}},
		{"node by hostname", filters("service", "web", "node", "host-n2"), []string{"w1"}},
		{"node by ID", filters("node", "n2", "service", "agent"), []string{"a2old", "a2"}},
		{"desired running", filters("service", "web", "desired-state", "running"), []string{"w1", "w2", "w3", "acc"}},
		{"desired shutdown", filters("desired-state", "shutdown"), []string{"a2old", "w1old"}},
		{"desired accepted", filters("desired-state", "Accepted"), []string{"acc"}},
		{"name prefix", filters("name", "web.1."), []string{"w1old", "w1"}},
		{"global name uses the node", filters("name", "agent.n1"), []string{"a1"}},
		{"id prefix", filters("id", "w1"), []string{"w1old", "w1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e.srv.ListTasks(e.ctx, &shoalpb.ListTasksRequest{Filters: tc.filters})
			if err != nil {
				t.Fatal(err)
			}
			if got := taskIDs(resp.Tasks); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}

	resp, err := e.srv.ListTasks(e.ctx, &shoalpb.ListTasksRequest{Filters: filters("service", "web")})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"n1": "host-n1", "n2": "host-n2"}; len(resp.NodeNames) != 2 || resp.NodeNames["n1"] != want["n1"] || resp.NodeNames["n2"] != want["n2"] {
		t.Errorf("node names %v, want %v", resp.NodeNames, want)
	}
	all, err := e.srv.ListTasks(e.ctx, &shoalpb.ListTasksRequest{})
	if err != nil || len(all.Tasks) != 15 {
		t.Fatalf("all tasks: %d, %v", len(all.Tasks), err)
	}

	for _, tc := range []struct {
		filters map[string]*shoalpb.FilterValues
		parts   []string
	}{
		{filters("slot", "1"), []string{"invalid filter 'slot'"}},
		{filters("desired-state", "paused"), []string{"desired-state=paused"}},
		{filters("service", "svc"), []string{"service=svc"}},
	} {
		_, err := e.srv.ListTasks(e.ctx, &shoalpb.ListTasksRequest{Filters: tc.filters})
		wantCode(t, err, codes.InvalidArgument, tc.parts...)
	}
}

// A service held back for its depends_on reports, in ListServices and
// GetService, the dependencies it waits for; nothing once they are ready
// or once it has tasks.
func TestServiceStatusWaitingFor(t *testing.T) {
	e := newServiceEnv(t)
	db := e.create(replicated(spec("app_db", "postgres"), 1))
	migrateSpec := spec("app_migrate", "migrate")
	migrateSpec.Mode = &shoalpb.ServiceSpec_ReplicatedJob{ReplicatedJob: &shoalpb.ReplicatedJob{TotalCompletions: 1}}
	migrate := e.create(migrateSpec)
	webSpec := replicated(spec("app_web", "nginx"), 3)
	webSpec.DependsOn = []*shoalpb.ServiceDependency{
		{Service: "app_db", Condition: shoalpb.ServiceDependency_CONDITION_HEALTHY},
		{Service: "app_cache"},
		{Service: "app_migrate", Condition: shoalpb.ServiceDependency_CONDITION_COMPLETED_SUCCESSFULLY},
	}
	web := e.create(webSpec)
	wait := func(service string, c shoalpb.ServiceDependency_Condition, missing bool) *shoalpb.ServiceDependencyWait {
		return &shoalpb.ServiceDependencyWait{Service: service, Condition: c, Missing: missing}
	}
	check := func(step string, want ...*shoalpb.ServiceDependencyWait) {
		t.Helper()
		wantSt := &shoalpb.ServiceStatus{DesiredTasks: 3, WaitingFor: want}
		resp, err := e.srv.ListServices(e.ctx, &shoalpb.ListServicesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Statuses[web.Id]; !proto.Equal(got, wantSt) {
			t.Errorf("%s: ListServices status %v, want %v", step, got, wantSt)
		}
		for _, other := range []*shoalpb.Service{db, migrate} {
			if got := resp.Statuses[other.Id].GetWaitingFor(); len(got) != 0 {
				t.Errorf("%s: %s, which depends on nothing, waits for %v", step, other.Spec.Name, got)
			}
		}
		got, err := e.srv.GetService(e.ctx, &shoalpb.GetServiceRequest{ServiceRef: "app_web", InsertDefaults: true})
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got.Status, wantSt) {
			t.Errorf("%s: GetService status %v, want %v", step, got.Status, wantSt)
		}
	}
	check("nothing runs",
		wait("app_db", shoalpb.ServiceDependency_CONDITION_HEALTHY, false),
		wait("app_cache", shoalpb.ServiceDependency_CONDITION_STARTED, true),
		wait("app_migrate", shoalpb.ServiceDependency_CONDITION_COMPLETED_SUCCESSFULLY, false))

	e.addNodes(worker("n1", shoalpb.NodeState_NODE_STATE_READY))
	e.addTasks(task("db1", db, 1, "n1", stRunning, stRunning, time.Second), task("m1", migrate, 1, "n1", stRunning, stRunning, time.Second))
	cache := e.create(replicated(spec("app_cache", "redis"), 1))
	check("db runs, migrate runs, cache made",
		wait("app_cache", shoalpb.ServiceDependency_CONDITION_STARTED, false),
		wait("app_migrate", shoalpb.ServiceDependency_CONDITION_COMPLETED_SUCCESSFULLY, false))

	e.addTasks(task("c1", cache, 1, "n1", stRunning, stRunning, time.Second))
	var m1 *shoalpb.Task
	e.st.View(func(tx store.ReadTx) { m1 = proto.Clone(tx.Task("m1")).(*shoalpb.Task) })
	m1.Status.State = stComplete
	e.propose(&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_UPDATE, Target: &shoalpb.StoreAction_Task{Task: m1}})
	check("every dependency ready")

	// Once it has tasks it is never held back, even when a dependency
	// stops.
	e.propose(&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_REMOVE, Target: &shoalpb.StoreAction_Task{Task: &shoalpb.Task{Id: "c1"}}})
	check("cache stopped", wait("app_cache", shoalpb.ServiceDependency_CONDITION_STARTED, false))
	e.addTasks(task("w1", web, 1, "", stRunning, stPending, time.Second))
	check("web has a task")
}
