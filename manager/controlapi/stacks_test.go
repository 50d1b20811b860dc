package controlapi_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/manager/controlapi"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// countingProposer counts the commands proposed through it.
type countingProposer struct {
	inner store.Proposer
	n     atomic.Int32
}

func (p *countingProposer) Propose(ctx context.Context, cmd *shoalpb.Command) (uint64, error) {
	p.n.Add(1)
	return p.inner.Propose(ctx, cmd)
}

// newStackEnv is a cluster with an address pool and an ingress network,
// whose server makes IDs stk00…01, stk00…02, … and counts its writes.
func newStackEnv(t *testing.T) (*env, *countingProposer) {
	e := newNetworkEnv(t, "198.19.0.0/16", 24)
	var n atomic.Uint64
	e.srv.NewID = func() string { return fmt.Sprintf("stk%022d", n.Add(1)) }
	cp := &countingProposer{inner: e.prop}
	e.srv.Proposer = cp
	return e, cp
}

// stackService is a service of stack "app" on its default network.
func stackService(name, image string) *shoalpb.ServiceSpec {
	s := replicated(spec("app_"+name, image), 1)
	s.Task.Networks = []*shoalpb.NetworkAttachmentConfig{{Target: "app_default", Aliases: []string{name}}}
	return s
}

func appStack(services ...*shoalpb.ServiceSpec) *shoalpb.StackSpec {
	return &shoalpb.StackSpec{
		Name:     "app",
		Services: services,
		Networks: []*shoalpb.NetworkSpec{{Name: "app_default", Driver: "overlay"}},
		Compose:  []byte("services: {}\n"),
	}
}

func (e *env) deploy(spec *shoalpb.StackSpec, prune bool) *shoalpb.Stack {
	e.t.Helper()
	resp, err := e.srv.DeployStack(e.ctx, &shoalpb.DeployStackRequest{Spec: spec, Prune: prune})
	if err != nil {
		e.t.Fatalf("DeployStack(%s): %v", spec.GetName(), err)
	}
	return resp.Stack
}

func (e *env) service(name string) *shoalpb.Service {
	var svc *shoalpb.Service
	e.st.View(func(tx store.ReadTx) { svc = tx.ServiceByName(name) })
	return svc
}

func (e *env) stack(name string) *shoalpb.Stack {
	var st *shoalpb.Stack
	e.st.View(func(tx store.ReadTx) { st = tx.StackByName(name) })
	return st
}

// snapshot is everything a stack deploy may write.
type snapshot struct {
	services []*shoalpb.Service
	networks []*shoalpb.Network
	stacks   []*shoalpb.Stack
}

func (e *env) snapshot() snapshot {
	var s snapshot
	e.st.View(func(tx store.ReadTx) { s = snapshot{tx.Services(), tx.Networks(), tx.Stacks()} })
	return s
}

func (e *env) unchangedSince(before snapshot) {
	e.t.Helper()
	after := e.snapshot()
	eq := func(what string, a, b []proto.Message) {
		if len(a) != len(b) {
			e.t.Fatalf("%s: %d before, %d after", what, len(a), len(b))
		}
		for i := range a {
			if !proto.Equal(a[i], b[i]) {
				e.t.Fatalf("%s changed:\nbefore %v\nafter  %v", what, a[i], b[i])
			}
		}
	}
	eq("services", msgs(before.services), msgs(after.services))
	eq("networks", msgs(before.networks), msgs(after.networks))
	eq("stacks", msgs(before.stacks), msgs(after.stacks))
}

func msgs[T proto.Message](in []T) []proto.Message {
	out := make([]proto.Message, len(in))
	for i, m := range in {
		out[i] = m
	}
	return out
}

func TestDeployStackCreatesEverythingInOneWrite(t *testing.T) {
	e, writes := newStackEnv(t)
	st := e.deploy(appStack(stackService("web", "nginx:1"), stackService("db", "postgres:16")), false)
	if n := writes.n.Load(); n != 1 {
		t.Fatalf("%d writes, want one", n)
	}
	if st.Name != "app" || st.Current != 1 || len(st.Revisions) != 1 {
		t.Fatalf("stack %v", st)
	}
	rev := st.Revisions[0]
	if rev.Number != 1 || rev.Source != "deploy" || rev.CreatedAt != fixed.UnixNano() || string(rev.Spec.Compose) != "services: {}\n" {
		t.Fatalf("revision %v", rev)
	}
	// The revision keeps the spec as deployed: networks by name.
	if got := rev.Spec.Services[0].Task.Networks[0].Target; got != "app_default" {
		t.Errorf("revision's network target %q, want the name", got)
	}
	var net *shoalpb.Network
	e.st.View(func(tx store.ReadTx) { net = tx.NetworkByName("app_default") })
	if net == nil || net.Vni == 0 || net.GetIpam().GetSubnet() == "" || net.Spec.Labels[controlapi.StackNamespaceLabel] != "app" {
		t.Fatalf("stack network %v", net)
	}
	for _, name := range []string{"app_web", "app_db"} {
		svc := e.service(name)
		if svc == nil {
			t.Fatalf("service %s not created", name)
		}
		if svc.SpecVersion != 1 || svc.Spec.Labels[controlapi.StackNamespaceLabel] != "app" {
			t.Errorf("service %s: spec version %d, labels %v", name, svc.SpecVersion, svc.Spec.Labels)
		}
		if got := svc.Spec.Task.Networks[0].Target; got != net.Id {
			t.Errorf("service %s joins %q, want the network's ID %s", name, got, net.Id)
		}
	}
}

func TestDeployStackUpdatesOnlyWhatChanged(t *testing.T) {
	e, writes := newStackEnv(t)
	e.deploy(appStack(stackService("web", "nginx:1"), stackService("db", "postgres:16"), stackService("cache", "redis:7")), false)
	web, db, cache := e.service("app_web"), e.service("app_db"), e.service("app_cache")

	cacheSpec := stackService("cache", "redis:7")
	cacheSpec.Labels = map[string]string{"tier": "cache"}
	st := e.deploy(appStack(stackService("web", "nginx:2"), stackService("db", "postgres:16"), cacheSpec), false)
	if n := writes.n.Load(); n != 2 {
		t.Fatalf("%d writes, want one per deploy", n)
	}
	if st.Current != 2 || len(st.Revisions) != 2 || st.Revisions[1].Number != 2 {
		t.Fatalf("stack %v", st)
	}
	// Unchanged: the very same stored object.
	if got := e.service("app_db"); !proto.Equal(got, db) {
		t.Errorf("unchanged service was rewritten:\nbefore %v\nafter  %v", db, got)
	}
	// A task change bumps the spec version, as UpdateService does.
	got := e.service("app_web")
	if got.SpecVersion != web.SpecVersion+1 || got.Spec.Task.Container.Image != "nginx:2" || got.PreviousSpec.Task.Container.Image != "nginx:1" {
		t.Errorf("web after update: spec version %d (was %d), spec %v, previous %v", got.SpecVersion, web.SpecVersion, got.Spec, got.PreviousSpec)
	}
	// A label change is an update that leaves the tasks alone.
	got = e.service("app_cache")
	if got.Meta.Version == cache.Meta.Version || got.SpecVersion != cache.SpecVersion || got.Spec.Labels["tier"] != "cache" {
		t.Errorf("cache after a label change: version %d (was %d), spec version %d (was %d), labels %v",
			got.Meta.Version, cache.Meta.Version, got.SpecVersion, cache.SpecVersion, got.Spec.Labels)
	}
	// The network made by the first deploy is reused.
	if n := len(e.networks()); n != 2 {
		t.Errorf("%d networks, want ingress and app_default", n)
	}
}

func TestDeployStackWithAnInvalidServiceWritesNothing(t *testing.T) {
	e, writes := newStackEnv(t)
	bad := stackService("bad", "busybox")
	bad.Task.Placement = &shoalpb.Placement{Constraints: []string{"node.labels.zone=>a"}}
	before := e.snapshot()
	_, err := e.srv.DeployStack(e.ctx, &shoalpb.DeployStackRequest{Spec: appStack(stackService("web", "nginx:1"), bad)})
	wantCode(t, err, codes.InvalidArgument, "service app_bad", "node.labels.zone=>a")
	e.unchangedSince(before)

	// On top of a deployed stack, too: neither the good service's change
	// nor the revision is written.
	e.deploy(appStack(stackService("web", "nginx:1")), false)
	before = e.snapshot()
	noImage := stackService("job", "")
	_, err = e.srv.DeployStack(e.ctx, &shoalpb.DeployStackRequest{Spec: appStack(stackService("web", "nginx:2"), noImage)})
	wantCode(t, err, codes.InvalidArgument, "service app_job", "image is required")
	e.unchangedSince(before)
	if n := writes.n.Load(); n != 1 {
		t.Fatalf("%d writes, want only the valid deploy's", n)
	}
}

func TestDeployStackRefusesBadSpecs(t *testing.T) {
	e, _ := newStackEnv(t)
	e.create(replicated(spec("plain", "busybox"), 1))
	e.createNetwork(&shoalpb.NetworkSpec{Name: "app_taken"})
	dep := func(s *shoalpb.ServiceSpec, on string, c shoalpb.ServiceDependency_Condition) *shoalpb.ServiceSpec {
		s.DependsOn = append(s.DependsOn, &shoalpb.ServiceDependency{Service: on, Condition: c})
		return s
	}
	otherLabel := stackService("web", "nginx")
	otherLabel.Labels = map[string]string{controlapi.StackNamespaceLabel: "other"}
	for _, tc := range []struct {
		name  string
		spec  *shoalpb.StackSpec
		code  codes.Code
		parts []string
	}{
		{"bad stack name", &shoalpb.StackSpec{Name: "-app", Services: []*shoalpb.ServiceSpec{stackService("web", "nginx")}},
			codes.InvalidArgument, []string{`invalid stack name "-app"`}},
		{"no services", &shoalpb.StackSpec{Name: "app"}, codes.InvalidArgument, []string{"stack app has no services"}},
		{"service outside the namespace", appStack(replicated(spec("web", "nginx"), 1)),
			codes.InvalidArgument, []string{`invalid service name "web"`, "app_<name>"}},
		{"label of another stack", appStack(otherLabel), codes.InvalidArgument, []string{"app_web", "other"}},
		{"duplicate service", appStack(stackService("web", "a"), stackService("WEB", "b")), codes.InvalidArgument, []string{"app_WEB", "twice"}},
		{"name of a plain service", &shoalpb.StackSpec{Name: "plain", Services: []*shoalpb.ServiceSpec{replicated(spec("plain_x", "busybox"), 1)}},
			codes.OK, nil},
		{"network of no stack", &shoalpb.StackSpec{Name: "app", Services: []*shoalpb.ServiceSpec{stackService("web", "nginx")},
			Networks: []*shoalpb.NetworkSpec{{Name: "app_default"}, {Name: "app_taken"}}},
			codes.AlreadyExists, []string{"network app_taken", "not part of stack app"}},
		{"unknown network", func() *shoalpb.StackSpec {
			s := stackService("web", "nginx")
			s.Task.Networks = append(s.Task.Networks, &shoalpb.NetworkAttachmentConfig{Target: "nowhere"})
			return appStack(s)
		}(), codes.InvalidArgument, []string{"service app_web", "network nowhere not found"}},
		{"missing dependency", appStack(dep(stackService("web", "nginx"), "app_db", shoalpb.ServiceDependency_CONDITION_STARTED)),
			codes.InvalidArgument, []string{"service app_web", "depends on service app_db, which does not exist"}},
		{"dependency cycle", appStack(
			dep(stackService("a", "x"), "app_b", shoalpb.ServiceDependency_CONDITION_STARTED),
			dep(stackService("b", "x"), "app_a", shoalpb.ServiceDependency_CONDITION_HEALTHY)),
			codes.InvalidArgument, []string{"cycle (app_a -> app_b -> app_a)"}},
		{"completion of a service", appStack(dep(stackService("web", "nginx"), "plain", shoalpb.ServiceDependency_CONDITION_COMPLETED_SUCCESSFULLY)),
			codes.InvalidArgument, []string{"complete successfully", "plain is a replicated service"}},
		{"port published twice", func() *shoalpb.StackSpec {
			a, b := stackService("a", "x"), stackService("b", "x")
			a.Endpoint = &shoalpb.EndpointSpec{Ports: []*shoalpb.PortConfig{{TargetPort: 80, PublishedPort: 8080}}}
			b.Endpoint = &shoalpb.EndpointSpec{Ports: []*shoalpb.PortConfig{{TargetPort: 81, PublishedPort: 8080}}}
			return appStack(a, b)
		}(), codes.InvalidArgument, []string{"services app_a and app_b both publish port 8080/tcp"}},
		{"self dependency", appStack(dep(stackService("web", "nginx"), "app_web", shoalpb.ServiceDependency_CONDITION_STARTED)),
			codes.InvalidArgument, []string{"service app_web", "cannot depend on itself"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.snapshot()
			_, err := e.srv.DeployStack(e.ctx, &shoalpb.DeployStackRequest{Spec: tc.spec})
			if tc.code == codes.OK {
				// A stack named like a plain service is fine: names
				// only clash between services.
				if err != nil {
					t.Fatalf("deploy: %v", err)
				}
				return
			}
			wantCode(t, err, tc.code, tc.parts...)
			e.unchangedSince(before)
		})
	}
	// A stack service may not take a plain service's name.
	e.create(replicated(spec("app_web", "busybox"), 1))
	before := e.snapshot()
	_, err := e.srv.DeployStack(e.ctx, &shoalpb.DeployStackRequest{Spec: appStack(stackService("web", "nginx"))})
	wantCode(t, err, codes.AlreadyExists, "service app_web already exists and is not part of stack app")
	e.unchangedSince(before)
	// A dependency on a service outside the stack is fine.
	e.deploy(appStack(dep(stackService("api", "x"), "plain", shoalpb.ServiceDependency_CONDITION_STARTED)), false)
}

func TestDeployStackPrune(t *testing.T) {
	e, writes := newStackEnv(t)
	e.deploy(appStack(stackService("web", "nginx"), stackService("db", "postgres")), false)

	// Without prune a service left out of the file stays, still part of
	// the stack.
	e.deploy(appStack(stackService("web", "nginx")), false)
	if e.service("app_db") == nil {
		t.Fatal("app_db removed without --prune")
	}
	resp, err := e.srv.ListStacks(e.ctx, &shoalpb.ListStacksRequest{})
	if err != nil || resp.ServiceCounts["app"] != 2 {
		t.Fatalf("ListStacks = %v, %v; want app with 2 services", resp, err)
	}

	w := writes.n.Load()
	st := e.deploy(appStack(stackService("web", "nginx")), true)
	if e.service("app_db") != nil {
		t.Fatal("app_db kept with --prune")
	}
	if e.service("app_web") == nil {
		t.Fatal("app_web removed by --prune")
	}
	if n := writes.n.Load() - w; n != 1 {
		t.Fatalf("prune took %d writes, want one", n)
	}
	if st.Current != 3 {
		t.Fatalf("current revision %d, want 3", st.Current)
	}
}

func TestDeployStackKeepsTheLastRevisions(t *testing.T) {
	e, _ := newStackEnv(t)
	var st *shoalpb.Stack
	for i := 1; i <= controlapi.MaxStackRevisions+3; i++ {
		st = e.deploy(appStack(stackService("web", fmt.Sprintf("nginx:%d", i))), false)
	}
	if n := len(st.Revisions); n != controlapi.MaxStackRevisions {
		t.Fatalf("%d revisions kept, want %d", n, controlapi.MaxStackRevisions)
	}
	if first, last := st.Revisions[0].Number, st.Revisions[len(st.Revisions)-1].Number; first != 4 || last != 13 || st.Current != 13 {
		t.Fatalf("revisions %d..%d, current %d; want 4..13, current 13", first, last, st.Current)
	}
}

func TestRollbackStack(t *testing.T) {
	e, _ := newStackEnv(t)
	e.deploy(appStack(stackService("web", "nginx:1")), false)
	e.deploy(appStack(stackService("web", "nginx:2"), stackService("worker", "busybox")), false)

	resp, err := e.srv.RollbackStack(e.ctx, &shoalpb.RollbackStackRequest{Name: "app"})
	if err != nil {
		t.Fatal(err)
	}
	st := resp.Stack
	if st.Current != 3 || st.Revisions[2].Source != "rollback to 1" {
		t.Fatalf("after rollback: current %d, revisions %v", st.Current, st.Revisions)
	}
	if img := e.service("app_web").Spec.Task.Container.Image; img != "nginx:1" {
		t.Errorf("web runs %s after rolling back to revision 1", img)
	}
	if e.service("app_worker") != nil {
		t.Error("a service revision 1 did not have survived the rollback")
	}

	resp, err = e.srv.RollbackStack(e.ctx, &shoalpb.RollbackStackRequest{Name: "app", ToRevision: 2})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Stack.Current != 4 || resp.Stack.Revisions[3].Source != "rollback to 2" || e.service("app_worker") == nil {
		t.Fatalf("rollback to 2: %v", resp.Stack)
	}

	before := e.snapshot()
	_, err = e.srv.RollbackStack(e.ctx, &shoalpb.RollbackStackRequest{Name: "app", ToRevision: 9})
	wantCode(t, err, codes.NotFound, "stack app has no revision 9", "revisions 1 to 4 are kept")
	_, err = e.srv.RollbackStack(e.ctx, &shoalpb.RollbackStackRequest{Name: "nope"})
	wantCode(t, err, codes.NotFound, "stack nope not found")
	e.unchangedSince(before)

	e.deploy(&shoalpb.StackSpec{Name: "solo", Services: []*shoalpb.ServiceSpec{replicated(spec("solo_x", "busybox"), 1)}}, false)
	_, err = e.srv.RollbackStack(e.ctx, &shoalpb.RollbackStackRequest{Name: "solo"})
	wantCode(t, err, codes.FailedPrecondition, "stack solo has no revision before revision 1")
}

func TestGetAndListStacks(t *testing.T) {
	e, _ := newStackEnv(t)
	e.deploy(appStack(stackService("web", "nginx"), stackService("db", "postgres")), false)
	e.deploy(&shoalpb.StackSpec{Name: "b", Services: []*shoalpb.ServiceSpec{replicated(spec("b_x", "busybox"), 1)}, Compose: []byte("big")}, false)
	e.create(replicated(spec("plain", "busybox"), 1))

	resp, err := e.srv.ListStacks(e.ctx, &shoalpb.ListStacksRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Stacks) != 2 || resp.Stacks[0].Name != "app" || resp.Stacks[1].Name != "b" {
		t.Fatalf("stacks %v", resp.Stacks)
	}
	if resp.ServiceCounts["app"] != 2 || resp.ServiceCounts["b"] != 1 || len(resp.ServiceCounts) != 2 {
		t.Fatalf("service counts %v", resp.ServiceCounts)
	}
	if c := resp.Stacks[1].Revisions[0].Spec.Compose; c != nil {
		t.Errorf("ListStacks carries the compose model %q", c)
	}
	got, err := e.srv.GetStack(e.ctx, &shoalpb.GetStackRequest{Name: "b"})
	if err != nil || string(got.Stack.Revisions[0].Spec.Compose) != "big" {
		t.Fatalf("GetStack(b) = %v, %v", got, err)
	}
	_, err = e.srv.GetStack(e.ctx, &shoalpb.GetStackRequest{Name: "nope"})
	wantCode(t, err, codes.NotFound, "stack nope not found")
}

func TestRemoveStack(t *testing.T) {
	e, writes := newStackEnv(t)
	e.deploy(appStack(stackService("web", "nginx"), stackService("db", "postgres")), false)
	e.deploy(&shoalpb.StackSpec{Name: "other", Services: []*shoalpb.ServiceSpec{replicated(spec("other_x", "busybox"), 1)}}, false)
	w := writes.n.Load()
	if _, err := e.srv.RemoveStack(e.ctx, &shoalpb.RemoveStackRequest{Name: "app"}); err != nil {
		t.Fatal(err)
	}
	if n := writes.n.Load() - w; n != 1 {
		t.Fatalf("removal took %d writes, want one", n)
	}
	if e.stack("app") != nil || e.service("app_web") != nil || e.service("app_db") != nil {
		t.Fatal("stack app not removed whole")
	}
	for _, n := range e.networks() {
		if strings.HasPrefix(n.Spec.Name, "app_") {
			t.Fatalf("network %s of the removed stack is left", n.Spec.Name)
		}
	}
	if e.stack("other") == nil || e.service("other_x") == nil {
		t.Fatal("another stack was removed")
	}
	_, err := e.srv.RemoveStack(e.ctx, &shoalpb.RemoveStackRequest{Name: "app"})
	wantCode(t, err, codes.NotFound, "stack app not found")

	// A stack network another service joins keeps the whole stack.
	e.deploy(appStack(stackService("web", "nginx")), false)
	s := replicated(spec("outsider", "busybox"), 1)
	s.Task.Networks = []*shoalpb.NetworkAttachmentConfig{{Target: "app_default"}}
	e.create(s)
	before := e.snapshot()
	_, err = e.srv.RemoveStack(e.ctx, &shoalpb.RemoveStackRequest{Name: "app"})
	wantCode(t, err, codes.FailedPrecondition, "network app_default of stack app is in use by service outsider")
	e.unchangedSince(before)
}

func TestDeployStackRetriesAfterAConcurrentServiceWrite(t *testing.T) {
	e, _ := newStackEnv(t)
	e.deploy(appStack(stackService("web", "nginx:1")), false)
	// Someone else writes the service between the deploy's read and its
	// write (the allocator recording its endpoint, say): the deploy plans
	// again and keeps what that write did.
	var raced atomic.Bool
	e.srv.Proposer = proposerFunc(func(ctx context.Context, cmd *shoalpb.Command) (uint64, error) {
		if raced.CompareAndSwap(false, true) {
			svc := proto.Clone(e.service("app_web")).(*shoalpb.Service)
			svc.Endpoint = &shoalpb.Endpoint{VirtualIps: []*shoalpb.VirtualIP{{NetworkId: "n", Addr: "198.19.1.9/24"}}}
			if _, err := e.prop.Propose(ctx, &shoalpb.Command{Actions: []*shoalpb.StoreAction{{Kind: shoalpb.ActionKind_ACTION_KIND_UPDATE, Target: &shoalpb.StoreAction_Service{Service: svc}}}}); err != nil {
				return 0, err
			}
		}
		return e.prop.Propose(ctx, cmd)
	})
	st := e.deploy(appStack(stackService("web", "nginx:2")), false)
	svc := e.service("app_web")
	if st.Current != 2 || svc.Spec.Task.Container.Image != "nginx:2" || svc.GetEndpoint().GetVirtualIps()[0].GetAddr() != "198.19.1.9/24" {
		t.Fatalf("after a deploy that raced another write: stack %v, service %v", st, svc)
	}
}

type proposerFunc func(ctx context.Context, cmd *shoalpb.Command) (uint64, error)

func (f proposerFunc) Propose(ctx context.Context, cmd *shoalpb.Command) (uint64, error) {
	return f(ctx, cmd)
}
