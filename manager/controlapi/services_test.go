package controlapi_test

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// newServiceEnv is newEnv with a counter for IDs: svc00…0001, svc00…0002, …
func newServiceEnv(t *testing.T) *env {
	e := newEnv(t)
	var n atomic.Uint64
	e.srv.NewID = func() string { return fmt.Sprintf("svc%022d", n.Add(1)) }
	return e
}

func idN(n int) string { return fmt.Sprintf("svc%022d", n) }

func spec(name, image string) *shoalpb.ServiceSpec {
	return &shoalpb.ServiceSpec{Name: name, Task: &shoalpb.TaskSpec{Container: &shoalpb.ContainerSpec{Image: image}}}
}

func replicated(s *shoalpb.ServiceSpec, n uint64) *shoalpb.ServiceSpec {
	s.Mode = &shoalpb.ServiceSpec_Replicated{Replicated: &shoalpb.ReplicatedService{Replicas: n}}
	return s
}

func global(s *shoalpb.ServiceSpec) *shoalpb.ServiceSpec {
	s.Mode = &shoalpb.ServiceSpec_Global{Global: &shoalpb.GlobalService{}}
	return s
}

func (e *env) create(s *shoalpb.ServiceSpec) *shoalpb.Service {
	e.t.Helper()
	resp, err := e.srv.CreateService(e.ctx, &shoalpb.CreateServiceRequest{Spec: s})
	if err != nil {
		e.t.Fatalf("CreateService(%s): %v", s.GetName(), err)
	}
	return resp.Service
}

func (e *env) services() []*shoalpb.Service {
	var out []*shoalpb.Service
	e.st.View(func(tx store.ReadTx) { out = tx.Services() })
	return out
}

func TestCreateService(t *testing.T) {
	e := newServiceEnv(t)
	svc := e.create(spec("web", "nginx:alpine"))
	want := &shoalpb.Service{
		Id:          idN(1),
		Meta:        &shoalpb.Meta{Version: e.st.AppliedIndex(), CreatedAt: fixed.UnixNano(), UpdatedAt: fixed.UnixNano()},
		Spec:        replicated(spec("web", "nginx:alpine"), 1),
		SpecVersion: 1,
	}
	if !proto.Equal(svc, want) {
		t.Fatalf("created\n got %v\nwant %v", svc, want)
	}
	if len(svc.Id) != 25 {
		t.Errorf("ID %q is not 25 characters", svc.Id)
	}
	for _, ref := range []string{idN(1), "svc0000", "web", "WEB"} {
		got, err := e.srv.GetService(e.ctx, &shoalpb.GetServiceRequest{ServiceRef: ref})
		if err != nil || !proto.Equal(got.Service, want) {
			t.Errorf("GetService(%q) = %v, %v", ref, got, err)
		}
	}
	_, err := e.srv.GetService(e.ctx, &shoalpb.GetServiceRequest{ServiceRef: "nope"})
	wantCode(t, err, codes.NotFound, "nope")

	// A replicated service keeps an explicit zero replicas.
	zero := e.create(replicated(spec("idle", "busybox"), 0))
	if zero.Spec.GetReplicated().GetReplicas() != 0 {
		t.Errorf("replicas = %d, want 0", zero.Spec.GetReplicated().GetReplicas())
	}
}

func TestGetServiceInsertDefaults(t *testing.T) {
	e := newServiceEnv(t)
	e.create(spec("web", "nginx"))
	job := spec("batch", "busybox")
	job.Mode = &shoalpb.ServiceSpec_ReplicatedJob{ReplicatedJob: &shoalpb.ReplicatedJob{TotalCompletions: 4}}
	e.create(job)

	resp, err := e.srv.GetService(e.ctx, &shoalpb.GetServiceRequest{ServiceRef: "web", InsertDefaults: true})
	if err != nil {
		t.Fatal(err)
	}
	task := resp.Service.Spec.Task
	if got := task.Container.GetStopGracePeriodNs(); got != int64(10*time.Second) {
		t.Errorf("stop grace = %d", got)
	}
	if r := task.Restart; r.GetCondition() != shoalpb.RestartPolicy_CONDITION_ANY || r.GetDelayNs() != int64(5*time.Second) {
		t.Errorf("restart = %v", r)
	}
	// The stored service is untouched.
	plain, _ := e.srv.GetService(e.ctx, &shoalpb.GetServiceRequest{ServiceRef: "web"})
	if plain.Service.Spec.Task.Restart != nil || plain.Service.Spec.Task.Container.StopGracePeriodNs != nil {
		t.Errorf("defaults leaked into the store: %v", plain.Service.Spec.Task)
	}

	resp, err = e.srv.GetService(e.ctx, &shoalpb.GetServiceRequest{ServiceRef: "batch", InsertDefaults: true})
	if err != nil {
		t.Fatal(err)
	}
	if j := resp.Service.Spec.GetReplicatedJob(); j.MaxConcurrent != 4 || j.TotalCompletions != 4 {
		t.Errorf("job counts = %v, want 4/4", j)
	}
	if c := resp.Service.Spec.Task.Restart.GetCondition(); c != shoalpb.RestartPolicy_CONDITION_ON_FAILURE {
		t.Errorf("job restart condition = %v, want on-failure", c)
	}
	if resp.Service.JobStatus == nil || resp.Service.JobStatus.LastExecution != fixed.UnixNano() {
		t.Errorf("job status = %v", resp.Service.JobStatus)
	}
}

func TestCreateServiceRejectsBadSpecs(t *testing.T) {
	e := newServiceEnv(t)
	e.create(spec("taken", "nginx"))
	d := func(v time.Duration) *int64 { return proto.Int64(int64(v)) }
	with := func(mod func(s *shoalpb.ServiceSpec)) *shoalpb.ServiceSpec {
		s := spec("ok", "nginx")
		s.Task.Placement = nil
		mod(s)
		return s
	}
	mount := func(m *shoalpb.Mount) *shoalpb.ServiceSpec {
		return with(func(s *shoalpb.ServiceSpec) { s.Task.Container.Mounts = []*shoalpb.Mount{m} })
	}
	vol, bind, tmpfs := shoalpb.Mount_TYPE_VOLUME, shoalpb.Mount_TYPE_BIND, shoalpb.Mount_TYPE_TMPFS
	for _, tc := range []struct {
		name  string
		spec  *shoalpb.ServiceSpec
		code  codes.Code
		parts []string
	}{
		{"no spec", nil, codes.InvalidArgument, []string{"spec is required"}},
		{"no name", spec("", "nginx"), codes.InvalidArgument, []string{"name is required"}},
		{"name with a space", spec("my web", "nginx"), codes.InvalidArgument, []string{`"my web"`}},
		{"name starting with a dash", spec("-web", "nginx"), codes.InvalidArgument, []string{`"-web"`}},
		{"name ending with a dot", spec("web.", "nginx"), codes.InvalidArgument, []string{`"web."`}},
		{"name too long", spec(strings.Repeat("a", 64), "nginx"), codes.InvalidArgument, []string{strings.Repeat("a", 64), "63"}},
		{"duplicate name, other case", spec("TAKEN", "nginx"), codes.AlreadyExists, []string{"service with name TAKEN already exists"}},
		{"no image", spec("web", ""), codes.InvalidArgument, []string{"image is required"}},
		{"no task", &shoalpb.ServiceSpec{Name: "web"}, codes.InvalidArgument, []string{"image is required"}},
		{"image with space", spec("web", "ng inx"), codes.InvalidArgument, []string{`"ng inx"`}},
		{"empty label key", with(func(s *shoalpb.ServiceSpec) { s.Labels = map[string]string{"": "v"} }), codes.InvalidArgument, []string{`"=v"`}},
		{"max replicas with global", with(func(s *shoalpb.ServiceSpec) {
			global(s)
			s.Task.Placement = &shoalpb.Placement{MaxReplicas: 2}
		}), codes.InvalidArgument, []string{"max replicas per node 2", "global"}},
		{"job restarting on any", with(func(s *shoalpb.ServiceSpec) {
			s.Mode = &shoalpb.ServiceSpec_GlobalJob{GlobalJob: &shoalpb.GlobalJob{}}
			s.Task.Restart = &shoalpb.RestartPolicy{Condition: shoalpb.RestartPolicy_CONDITION_ANY}
		}), codes.InvalidArgument, []string{`"any"`, "global-job"}},
		{"bad constraint", with(func(s *shoalpb.ServiceSpec) {
			s.Task.Placement = &shoalpb.Placement{Constraints: []string{"node.role==manager", "node.labels.zone=a"}}
		}), codes.InvalidArgument, []string{`"node.labels.zone=a"`}},
		{"bad role constraint", with(func(s *shoalpb.ServiceSpec) {
			s.Task.Placement = &shoalpb.Placement{Constraints: []string{"node.role==boss"}}
		}), codes.InvalidArgument, []string{"boss"}},
		{"empty spread", with(func(s *shoalpb.ServiceSpec) {
			s.Task.Placement = &shoalpb.Placement{Preferences: []*shoalpb.PlacementPreference{{}}}
		}), codes.InvalidArgument, []string{"spread="}},
		{"tiny cpu reservation", with(func(s *shoalpb.ServiceSpec) {
			s.Task.Resources = &shoalpb.ResourceRequirements{Reservations: &shoalpb.Resources{NanoCpus: 999_999}}
		}), codes.InvalidArgument, []string{"0.000999999"}},
		{"negative cpu limit", with(func(s *shoalpb.ServiceSpec) {
			s.Task.Resources = &shoalpb.ResourceRequirements{Limits: &shoalpb.Resources{NanoCpus: -5e8}}
		}), codes.InvalidArgument, []string{"-0.5"}},
		{"tiny memory limit", with(func(s *shoalpb.ServiceSpec) {
			s.Task.Resources = &shoalpb.ResourceRequirements{Limits: &shoalpb.Resources{MemoryBytes: 4<<20 - 1}}
		}), codes.InvalidArgument, []string{"4194303"}},
		{"memory limit below reservation", with(func(s *shoalpb.ServiceSpec) {
			s.Task.Resources = &shoalpb.ResourceRequirements{Limits: &shoalpb.Resources{MemoryBytes: 8 << 20}, Reservations: &shoalpb.Resources{MemoryBytes: 16 << 20}}
		}), codes.InvalidArgument, []string{"8388608", "16777216"}},
		{"cpu limit below reservation", with(func(s *shoalpb.ServiceSpec) {
			s.Task.Resources = &shoalpb.ResourceRequirements{Limits: &shoalpb.Resources{NanoCpus: 5e8}, Reservations: &shoalpb.Resources{NanoCpus: 2e9}}
		}), codes.InvalidArgument, []string{"0.5", "2"}},
		{"negative restart delay", with(func(s *shoalpb.ServiceSpec) {
			s.Task.Restart = &shoalpb.RestartPolicy{DelayNs: d(-time.Second)}
		}), codes.InvalidArgument, []string{"-1s"}},
		{"negative restart window", with(func(s *shoalpb.ServiceSpec) {
			s.Task.Restart = &shoalpb.RestartPolicy{WindowNs: int64(-time.Minute)}
		}), codes.InvalidArgument, []string{"-1m0s"}},
		{"health interval below 1ms", with(func(s *shoalpb.ServiceSpec) {
			s.Task.Container.Healthcheck = &shoalpb.HealthConfig{IntervalNs: int64(time.Microsecond)}
		}), codes.InvalidArgument, []string{"interval 1µs"}},
		{"negative health timeout", with(func(s *shoalpb.ServiceSpec) {
			s.Task.Container.Healthcheck = &shoalpb.HealthConfig{TimeoutNs: -1}
		}), codes.InvalidArgument, []string{"timeout -1ns"}},
		{"negative health retries", with(func(s *shoalpb.ServiceSpec) {
			s.Task.Container.Healthcheck = &shoalpb.HealthConfig{Retries: -3}
		}), codes.InvalidArgument, []string{"retries -3"}},
		{"bad health test", with(func(s *shoalpb.ServiceSpec) {
			s.Task.Container.Healthcheck = &shoalpb.HealthConfig{Test: []string{"curl", "x"}}
		}), codes.InvalidArgument, []string{`"curl"`}},
		{"negative stop grace", with(func(s *shoalpb.ServiceSpec) {
			s.Task.Container.StopGracePeriodNs = d(-time.Second)
		}), codes.InvalidArgument, []string{"-1s"}},
		{"env without key", with(func(s *shoalpb.ServiceSpec) {
			s.Task.Container.Env = []string{"A=1", "=oops"}
		}), codes.InvalidArgument, []string{`"=oops"`}},
		{"relative bind source", mount(&shoalpb.Mount{Type: bind, Source: "data", Target: "/data"}), codes.InvalidArgument, []string{`"data"`}},
		{"bind without source", mount(&shoalpb.Mount{Type: bind, Target: "/data"}), codes.InvalidArgument, []string{`"/data"`, "source is required"}},
		{"bad volume name", mount(&shoalpb.Mount{Type: vol, Source: "my vol", Target: "/data"}), codes.InvalidArgument, []string{`"my vol"`}},
		{"tmpfs with source", mount(&shoalpb.Mount{Type: tmpfs, Source: "/x", Target: "/tmp"}), codes.InvalidArgument, []string{`"/x"`}},
		{"relative target", mount(&shoalpb.Mount{Type: vol, Target: "data"}), codes.InvalidArgument, []string{`"data"`}},
		{"no target", mount(&shoalpb.Mount{Type: vol, Source: "v1"}), codes.InvalidArgument, []string{"target is required"}},
		{"bad propagation", mount(&shoalpb.Mount{Type: bind, Source: "/a", Target: "/a", BindPropagation: "sideways"}), codes.InvalidArgument, []string{`"sideways"`}},
		{"volume option on bind", mount(&shoalpb.Mount{Type: bind, Source: "/a", Target: "/a", VolumeNocopy: true}), codes.InvalidArgument, []string{`"/a"`, "volume options"}},
		{"duplicate target", with(func(s *shoalpb.ServiceSpec) {
			s.Task.Container.Mounts = []*shoalpb.Mount{{Type: vol, Target: "/data"}, {Type: tmpfs, Target: "/data/"}}
		}), codes.InvalidArgument, []string{`"/data/"`, "duplicate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.st.AppliedIndex()
			resp, err := e.srv.CreateService(e.ctx, &shoalpb.CreateServiceRequest{Spec: tc.spec})
			wantCode(t, err, tc.code, tc.parts...)
			if resp != nil {
				t.Errorf("response %v alongside an error", resp)
			}
			if after := e.st.AppliedIndex(); after != before {
				t.Errorf("applied index moved from %d to %d: something was written", before, after)
			}
			if n := len(e.services()); n != 1 {
				t.Errorf("%d services stored, want 1", n)
			}
		})
	}
}

func TestCreateServiceAcceptsValidSpec(t *testing.T) {
	e := newServiceEnv(t)
	s := replicated(spec("full", "registry.local:5000/app@sha256:"+strings.Repeat("a", 64)), 3)
	s.Labels = map[string]string{"tier": "web", "flag": ""}
	c := s.Task.Container
	c.Env = []string{"A=1", "B", "C="}
	c.Healthcheck = &shoalpb.HealthConfig{Test: []string{"CMD-SHELL", "true"}, IntervalNs: int64(time.Millisecond), Retries: 0}
	c.StopGracePeriodNs = proto.Int64(0)
	c.Mounts = []*shoalpb.Mount{
		{Type: shoalpb.Mount_TYPE_BIND, Source: "/srv", Target: "/srv", ReadOnly: true, BindPropagation: "rslave"},
		{Type: shoalpb.Mount_TYPE_VOLUME, Target: "/anon"},
		{Type: shoalpb.Mount_TYPE_VOLUME, Source: "data_1", Target: "/data", VolumeLabels: map[string]string{"a": "b"}},
		{Type: shoalpb.Mount_TYPE_TMPFS, Target: "/tmp", TmpfsSizeBytes: 1 << 20, TmpfsMode: 0o1777},
	}
	s.Task.Resources = &shoalpb.ResourceRequirements{
		Reservations: &shoalpb.Resources{NanoCpus: 1e6, MemoryBytes: 4 << 20},
		Limits:       &shoalpb.Resources{NanoCpus: 1e6, MemoryBytes: 4 << 20},
	}
	s.Task.Restart = &shoalpb.RestartPolicy{Condition: shoalpb.RestartPolicy_CONDITION_ON_FAILURE, DelayNs: proto.Int64(0), MaxAttempts: 3, WindowNs: int64(time.Minute)}
	s.Task.Placement = &shoalpb.Placement{
		Constraints: []string{"node.role==worker", "node.labels.zone != b"},
		Preferences: []*shoalpb.PlacementPreference{{SpreadDescriptor: "node.labels.zone"}},
		MaxReplicas: 2,
	}
	svc := e.create(s)
	if !proto.Equal(svc.Spec, s) {
		t.Errorf("stored spec differs:\n got %v\nwant %v", svc.Spec, s)
	}
}

func TestCreateServiceWithoutIDGenerator(t *testing.T) {
	e := newEnv(t)
	before := e.st.AppliedIndex()
	_, err := e.srv.CreateService(e.ctx, &shoalpb.CreateServiceRequest{Spec: spec("web", "nginx")})
	wantCode(t, err, codes.Internal, "NewID")
	if e.st.AppliedIndex() != before {
		t.Error("something was written")
	}
}

func TestUpdateService(t *testing.T) {
	e := newServiceEnv(t)
	svc := e.create(replicated(spec("web", "nginx:1"), 1))

	update := func(ref string, version uint64, s *shoalpb.ServiceSpec) (*shoalpb.Service, error) {
		resp, err := e.srv.UpdateService(e.ctx, &shoalpb.UpdateServiceRequest{ServiceRef: ref, Version: version, Spec: s})
		return resp.GetService(), err
	}

	// Scaling changes the mode only: the tasks' spec version stays.
	scaled, err := update("web", svc.Meta.Version, replicated(spec("web", "nginx:1"), 3))
	if err != nil {
		t.Fatal(err)
	}
	if scaled.SpecVersion != 1 || scaled.Spec.GetReplicated().GetReplicas() != 3 ||
		!proto.Equal(scaled.PreviousSpec, svc.Spec) || scaled.Meta.Version <= svc.Meta.Version ||
		scaled.Meta.CreatedAt != svc.Meta.CreatedAt {
		t.Errorf("after scale: %v", scaled)
	}

	// A new image is a new task spec.
	upgraded, err := update(svc.Id, scaled.Meta.Version, replicated(spec("web", "nginx:2"), 3))
	if err != nil {
		t.Fatal(err)
	}
	if upgraded.SpecVersion != 2 || !proto.Equal(upgraded.PreviousSpec, scaled.Spec) {
		t.Errorf("after image change: spec version %d, previous %v", upgraded.SpecVersion, upgraded.PreviousSpec)
	}

	for _, tc := range []struct {
		name    string
		version uint64
		spec    *shoalpb.ServiceSpec
		code    codes.Code
		parts   []string
	}{
		{"stale version", scaled.Meta.Version, replicated(spec("web", "nginx:3"), 1), codes.Aborted, []string{"update out of sequence"}},
		{"rename", upgraded.Meta.Version, replicated(spec("www", "nginx:3"), 1), codes.InvalidArgument, []string{`"www"`, "renaming"}},
		{"mode change", upgraded.Meta.Version, global(spec("web", "nginx:3")), codes.InvalidArgument, []string{"global", "replicated"}},
		{"invalid spec", upgraded.Meta.Version, replicated(spec("web", ""), 1), codes.InvalidArgument, []string{"image is required"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.st.AppliedIndex()
			_, err := update("web", tc.version, tc.spec)
			wantCode(t, err, tc.code, tc.parts...)
			if e.st.AppliedIndex() != before {
				t.Error("something was written")
			}
		})
	}
	_, err = update("nope", 1, replicated(spec("nope", "x"), 1))
	wantCode(t, err, codes.NotFound, "nope")
}

func TestUpdateJobStartsNewIteration(t *testing.T) {
	e := newServiceEnv(t)
	s := spec("batch", "busybox")
	s.Mode = &shoalpb.ServiceSpec_ReplicatedJob{ReplicatedJob: &shoalpb.ReplicatedJob{TotalCompletions: 2}}
	job := e.create(s)
	s2 := proto.Clone(s).(*shoalpb.ServiceSpec)
	s2.GetReplicatedJob().TotalCompletions = 5
	resp, err := e.srv.UpdateService(e.ctx, &shoalpb.UpdateServiceRequest{ServiceRef: job.Id, Version: job.Meta.Version, Spec: s2})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Service.JobStatus.GetJobIteration(); got != job.JobStatus.GetJobIteration()+1 {
		t.Errorf("job iteration %d, want %d", got, job.JobStatus.GetJobIteration()+1)
	}
}

func TestRemoveService(t *testing.T) {
	e := newServiceEnv(t)
	e.create(spec("web", "nginx"))
	e.create(spec("db", "postgres"))
	if _, err := e.srv.RemoveService(e.ctx, &shoalpb.RemoveServiceRequest{ServiceRef: "WEB"}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range e.services() {
		names = append(names, s.Spec.Name)
	}
	if !slices.Equal(names, []string{"db"}) {
		t.Errorf("services left: %v", names)
	}
	_, err := e.srv.RemoveService(e.ctx, &shoalpb.RemoveServiceRequest{ServiceRef: "web"})
	wantCode(t, err, codes.NotFound, "web")
	// The name is free again.
	e.create(spec("web", "nginx"))
}
