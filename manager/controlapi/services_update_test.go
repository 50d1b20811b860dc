package controlapi_test

import (
	"math"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/manager/controlapi"
	"github.com/shoal-project/shoal/manager/orchestrator/update"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

func (e *env) update(ref string, s *shoalpb.ServiceSpec) (*shoalpb.Service, error) {
	cur, err := e.srv.GetService(e.ctx, &shoalpb.GetServiceRequest{ServiceRef: ref})
	if err != nil {
		return nil, err
	}
	resp, err := e.srv.UpdateService(e.ctx, &shoalpb.UpdateServiceRequest{ServiceRef: ref, Version: cur.Service.Meta.Version, Spec: s})
	return resp.GetService(), err
}

func (e *env) rollback(ref string) (*shoalpb.Service, error) {
	cur, err := e.srv.GetService(e.ctx, &shoalpb.GetServiceRequest{ServiceRef: ref})
	if err != nil {
		return nil, err
	}
	resp, err := e.srv.UpdateService(e.ctx, &shoalpb.UpdateServiceRequest{ServiceRef: ref, Version: cur.Service.Meta.Version, Rollback: true})
	return resp.GetService(), err
}

func TestUpdateServiceStartsAnUpdateOnlyOnTaskChange(t *testing.T) {
	e := newServiceEnv(t)
	e.create(replicated(spec("web", "nginx:1"), 2))

	scaled, err := e.update("web", replicated(spec("web", "nginx:1"), 3))
	if err != nil {
		t.Fatal(err)
	}
	if scaled.UpdateStatus != nil || scaled.SpecVersion != 1 || scaled.PreviousSpecVersion != 1 {
		t.Errorf("scaling: status %v, spec version %d, previous %d", scaled.UpdateStatus, scaled.SpecVersion, scaled.PreviousSpecVersion)
	}
	upgraded, err := e.update("web", replicated(spec("web", "nginx:2"), 3))
	if err != nil {
		t.Fatal(err)
	}
	want := &shoalpb.UpdateStatus{State: shoalpb.UpdateStatus_STATE_UPDATING, StartedAt: fixed.UnixNano(), Message: "update in progress"}
	if !proto.Equal(upgraded.UpdateStatus, want) || upgraded.SpecVersion != 2 || upgraded.PreviousSpecVersion != 1 ||
		upgraded.PreviousSpec.Task.Container.Image != "nginx:1" {
		t.Errorf("image change: %v", upgraded)
	}

	// Once complete, a change of the replicas leaves the status alone...
	e.setStatus("web", &shoalpb.UpdateStatus{State: shoalpb.UpdateStatus_STATE_COMPLETED, Message: "update completed"})
	again, err := e.update("web", replicated(spec("web", "nginx:2"), 1))
	if err != nil {
		t.Fatal(err)
	}
	if again.UpdateStatus.GetState() != shoalpb.UpdateStatus_STATE_COMPLETED || again.SpecVersion != 2 {
		t.Errorf("after a scale of a completed update: %v", again)
	}
	// ... but any update resumes a paused one, as with docker.
	for _, paused := range []shoalpb.UpdateStatus_State{shoalpb.UpdateStatus_STATE_PAUSED, shoalpb.UpdateStatus_STATE_ROLLBACK_PAUSED} {
		e.setStatus("web", &shoalpb.UpdateStatus{State: paused, Message: "update paused due to failure or early termination of task x"})
		resumed, err := e.update("web", replicated(spec("web", "nginx:2"), 1))
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(resumed.UpdateStatus, want) || resumed.SpecVersion != 2 {
			t.Errorf("after an update of a %v service: %v", paused, resumed)
		}
	}
}

func (e *env) setStatus(ref string, st *shoalpb.UpdateStatus) {
	e.t.Helper()
	resp, err := e.srv.GetService(e.ctx, &shoalpb.GetServiceRequest{ServiceRef: ref})
	if err != nil {
		e.t.Fatal(err)
	}
	svc := proto.Clone(resp.Service).(*shoalpb.Service)
	svc.UpdateStatus = st
	if _, err := e.prop.Propose(e.ctx, &shoalpb.Command{Actions: []*shoalpb.StoreAction{{Kind: shoalpb.ActionKind_ACTION_KIND_UPDATE, Target: &shoalpb.StoreAction_Service{Service: svc}}}}); err != nil {
		e.t.Fatal(err)
	}
}

func TestRollbackService(t *testing.T) {
	e := newServiceEnv(t)
	e.create(replicated(spec("web", "nginx:1"), 2))
	before := e.st.AppliedIndex()
	_, err := e.rollback("web")
	wantCode(t, err, codes.FailedPrecondition, "service web has no previous spec")
	if e.st.AppliedIndex() != before {
		t.Error("a refused rollback wrote something")
	}

	v2 := replicated(spec("web", "nginx:2"), 3)
	if _, err := e.update("web", v2); err != nil {
		t.Fatal(err)
	}
	back, err := e.rollback("web")
	if err != nil {
		t.Fatal(err)
	}
	if back.Spec.Task.Container.Image != "nginx:1" || back.Spec.GetReplicated().Replicas != 2 ||
		!proto.Equal(back.PreviousSpec, v2) || back.SpecVersion != 3 || back.PreviousSpecVersion != 2 {
		t.Errorf("after a rollback: %v", back)
	}
	want := &shoalpb.UpdateStatus{State: shoalpb.UpdateStatus_STATE_ROLLBACK_STARTED, StartedAt: fixed.UnixNano(), Message: "manually requested rollback"}
	if !proto.Equal(back.UpdateStatus, want) {
		t.Errorf("status %v, want %v", back.UpdateStatus, want)
	}
	// A second rollback undoes the first.
	forth, err := e.rollback("web")
	if err != nil {
		t.Fatal(err)
	}
	if forth.Spec.Task.Container.Image != "nginx:2" || forth.SpecVersion != 4 || forth.PreviousSpec.Task.Container.Image != "nginx:1" {
		t.Errorf("after a second rollback: %v", forth)
	}

	// A rollback request carries no spec, and checks the version.
	cur, _ := e.srv.GetService(e.ctx, &shoalpb.GetServiceRequest{ServiceRef: "web"})
	_, err = e.srv.UpdateService(e.ctx, &shoalpb.UpdateServiceRequest{ServiceRef: "web", Version: cur.Service.Meta.Version, Rollback: true, Spec: v2})
	wantCode(t, err, codes.InvalidArgument, "takes no new one")
	_, err = e.srv.UpdateService(e.ctx, &shoalpb.UpdateServiceRequest{ServiceRef: "web", Version: cur.Service.Meta.Version - 1, Rollback: true})
	wantCode(t, err, codes.Aborted, "update out of sequence")
}

func TestUpdateConfigValidation(t *testing.T) {
	e := newServiceEnv(t)
	e.create(replicated(spec("web", "nginx:1"), 1))
	d := func(v time.Duration) *int64 { return proto.Int64(int64(v)) }
	withUpdate := func(u, r *shoalpb.UpdateConfig) *shoalpb.ServiceSpec {
		s := replicated(spec("web", "nginx:1"), 1)
		s.Update, s.Rollback = u, r
		return s
	}
	job := spec("web", "nginx:1")
	job.Mode = &shoalpb.ServiceSpec_ReplicatedJob{ReplicatedJob: &shoalpb.ReplicatedJob{}}
	job.Update = &shoalpb.UpdateConfig{}
	for _, tc := range []struct {
		name  string
		spec  *shoalpb.ServiceSpec
		parts []string
	}{
		{"negative delay", withUpdate(&shoalpb.UpdateConfig{DelayNs: -int64(time.Second)}, nil), []string{"invalid update delay -1s"}},
		{"negative monitor", withUpdate(nil, &shoalpb.UpdateConfig{MonitorNs: d(-time.Millisecond)}), []string{"invalid rollback monitor -1ms"}},
		{"negative timeout", withUpdate(&shoalpb.UpdateConfig{TaskTimeoutNs: d(-time.Minute)}, nil), []string{"invalid update timeout -1m0s"}},
		{"ratio above 1", withUpdate(&shoalpb.UpdateConfig{MaxFailureRatio: 1.5}, nil), []string{"invalid update max failure ratio 1.5", "between 0 and 1"}},
		{"negative ratio", withUpdate(nil, &shoalpb.UpdateConfig{MaxFailureRatio: -0.1}), []string{"invalid rollback max failure ratio -0.1"}},
		{"NaN ratio", withUpdate(&shoalpb.UpdateConfig{MaxFailureRatio: float32(math.NaN())}, nil), []string{"invalid update max failure ratio NaN"}},
		{"unknown action", withUpdate(&shoalpb.UpdateConfig{FailureAction: 7}, nil), []string{"invalid update failure action 7"}},
		{"unknown order", withUpdate(&shoalpb.UpdateConfig{Order: 9}, nil), []string{"invalid update order 9"}},
		{"rollback of a rollback", withUpdate(nil, &shoalpb.UpdateConfig{FailureAction: shoalpb.UpdateConfig_FAILURE_ACTION_ROLLBACK}), []string{"invalid rollback failure action rollback"}},
		{"job with an update config", job, []string{"jobs may not have an update or rollback config"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.st.AppliedIndex()
			_, err := e.update("web", tc.spec)
			wantCode(t, err, codes.InvalidArgument, tc.parts...)
			if tc.spec.GetReplicatedJob() == nil {
				tc.spec.Name = "other"
				_, err = e.srv.CreateService(e.ctx, &shoalpb.CreateServiceRequest{Spec: tc.spec})
				wantCode(t, err, codes.InvalidArgument, tc.parts...)
			}
			if e.st.AppliedIndex() != before {
				t.Error("something was written")
			}
		})
	}
	ok := withUpdate(&shoalpb.UpdateConfig{Parallelism: 0, DelayNs: int64(time.Second), MonitorNs: d(0), MaxFailureRatio: 1,
		FailureAction: shoalpb.UpdateConfig_FAILURE_ACTION_ROLLBACK, Order: shoalpb.UpdateConfig_ORDER_START_FIRST, TaskTimeoutNs: d(0)},
		&shoalpb.UpdateConfig{FailureAction: shoalpb.UpdateConfig_FAILURE_ACTION_CONTINUE})
	if _, err := e.update("web", ok); err != nil {
		t.Fatalf("valid configs refused: %v", err)
	}
}

func TestInsertDefaultsShowsUpdateConfigs(t *testing.T) {
	if controlapi.DefaultUpdateMonitor != update.DefaultMonitor || controlapi.DefaultUpdateTaskTimeout != update.DefaultTaskTimeout ||
		controlapi.DefaultUpdateParallelism != update.DefaultParallelism {
		t.Fatal("the control API shows other defaults than the updater applies")
	}
	e := newServiceEnv(t)
	s := replicated(spec("web", "nginx:1"), 1)
	s.Rollback = &shoalpb.UpdateConfig{Parallelism: 0, MonitorNs: proto.Int64(int64(time.Second))}
	e.create(s)
	resp, err := e.srv.GetService(e.ctx, &shoalpb.GetServiceRequest{ServiceRef: "web", InsertDefaults: true})
	if err != nil {
		t.Fatal(err)
	}
	wantUpdate := &shoalpb.UpdateConfig{Parallelism: 1, MonitorNs: proto.Int64(int64(5 * time.Second)), TaskTimeoutNs: proto.Int64(int64(2 * time.Minute))}
	wantRollback := &shoalpb.UpdateConfig{Parallelism: 0, MonitorNs: proto.Int64(int64(time.Second)), TaskTimeoutNs: proto.Int64(int64(2 * time.Minute))}
	if got := resp.Service.Spec.Update; !proto.Equal(got, wantUpdate) {
		t.Errorf("update config %v, want %v", got, wantUpdate)
	}
	if got := resp.Service.Spec.Rollback; !proto.Equal(got, wantRollback) {
		t.Errorf("rollback config %v, want %v", got, wantRollback)
	}
	plain, _ := e.srv.GetService(e.ctx, &shoalpb.GetServiceRequest{ServiceRef: "web"})
	if plain.Service.Spec.Update != nil || plain.Service.Spec.Rollback.TaskTimeoutNs != nil {
		t.Errorf("defaults leaked into the store: %v", plain.Service.Spec)
	}
}

// TestUpdateServiceEndpointChanges: ports published in host mode are bound
// by the tasks themselves, so changing them (or the endpoint mode) makes
// new tasks, as a change of the task spec does; the same ports again do
// not.
func TestUpdateServiceEndpointChanges(t *testing.T) {
	e := newServiceEnv(t)
	e.create(replicated(spec("web", "nginx:1"), 2))
	withPorts := func(mode shoalpb.EndpointSpec_Mode, published ...uint32) *shoalpb.ServiceSpec {
		s := replicated(spec("web", "nginx:1"), 2)
		s.Endpoint = &shoalpb.EndpointSpec{Mode: mode}
		for _, p := range published {
			s.Endpoint.Ports = append(s.Endpoint.Ports, &shoalpb.PortConfig{
				Protocol: shoalpb.PortConfig_PROTOCOL_TCP, TargetPort: 80, PublishedPort: p, PublishMode: shoalpb.PortConfig_PUBLISH_MODE_HOST,
			})
		}
		return s
	}
	for i, step := range []struct {
		spec    *shoalpb.ServiceSpec
		version uint64
	}{
		{withPorts(shoalpb.EndpointSpec_MODE_VIP, 8080), 2},
		{withPorts(shoalpb.EndpointSpec_MODE_VIP, 8080), 2},
		{withPorts(shoalpb.EndpointSpec_MODE_VIP, 8081), 3},
		{withPorts(shoalpb.EndpointSpec_MODE_DNSRR, 8081), 4},
	} {
		got, err := e.update("web", step.spec)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got.SpecVersion != step.version {
			t.Errorf("step %d: spec version %d, want %d", i, got.SpecVersion, step.version)
		}
	}
}
