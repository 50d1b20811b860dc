package controlapi_test

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/manager/allocator"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// newNetworkEnv is newServiceEnv on a cluster whose networks come from
// pool (in subnets of size), with its ingress network made as swarm init
// makes it.
func newNetworkEnv(t *testing.T, pool string, size uint32) *env {
	t.Helper()
	e := newEnv(t)
	var n atomic.Int32
	e.srv.NewID = func() string { return netID(int(n.Add(1))) }
	c := proto.Clone(e.cluster()).(*shoalpb.Cluster)
	c.NetworkConfig = &shoalpb.NetworkConfig{DefaultAddrPool: []string{pool}, SubnetSize: size}
	e.propose(&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_UPDATE, Target: &shoalpb.StoreAction_Cluster{Cluster: c}})
	cfg, err := allocator.ClusterNetworkConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	ingress, err := allocator.NewIngressNetwork("ingress-id-000000000000000", cfg, fixed.UnixNano())
	if err != nil {
		t.Fatal(err)
	}
	e.propose(&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Network{Network: ingress}})
	return e
}

// netID is the n-th ID the server makes in a network env: IDs with
// distinct first letters, so any prefix of one names it alone.
func netID(n int) string { return strings.Repeat(string(rune('a'+n-1)), 25) }

func (e *env) createNetwork(spec *shoalpb.NetworkSpec) *shoalpb.Network {
	e.t.Helper()
	resp, err := e.srv.CreateNetwork(e.ctx, &shoalpb.CreateNetworkRequest{Spec: spec})
	if err != nil {
		e.t.Fatalf("CreateNetwork(%s): %v", spec.GetName(), err)
	}
	return resp.Network
}

func (e *env) networks() []*shoalpb.Network {
	var out []*shoalpb.Network
	e.st.View(func(tx store.ReadTx) { out = tx.Networks() })
	return out
}

func netSpec(name string) *shoalpb.NetworkSpec { return &shoalpb.NetworkSpec{Name: name} }

func withSubnet(s *shoalpb.NetworkSpec, subnet, gateway, ipRange string) *shoalpb.NetworkSpec {
	s.Ipam = &shoalpb.IPAMConfig{Subnet: subnet, Gateway: gateway, IpRange: ipRange}
	return s
}

func TestCreateNetworkAllocatesVNIAndSubnet(t *testing.T) {
	e := newNetworkEnv(t, "198.19.0.0/16", 24)
	front := e.createNetwork(&shoalpb.NetworkSpec{Name: "front", Labels: map[string]string{"tier": "web"}, Attachable: true})
	want := &shoalpb.Network{
		Id:   netID(1),
		Meta: &shoalpb.Meta{Version: e.st.AppliedIndex(), CreatedAt: fixed.UnixNano(), UpdatedAt: fixed.UnixNano()},
		Spec: &shoalpb.NetworkSpec{Name: "front", Labels: map[string]string{"tier": "web"}, Attachable: true, Driver: "overlay"},
		Vni:  4097,
		Ipam: &shoalpb.IPAMConfig{Subnet: "198.19.1.0/24", Gateway: "198.19.1.1"},
	}
	if !proto.Equal(front, want) {
		t.Fatalf("created\n got %v\nwant %v", front, want)
	}
	// A user subnet is skipped by later carving; gateway and range kept.
	back := e.createNetwork(withSubnet(&shoalpb.NetworkSpec{Name: "back", Driver: "Overlay"}, "198.19.2.0/23", "198.19.3.254", "198.19.3.0/24"))
	if back.Vni != 4098 || !proto.Equal(back.Ipam, &shoalpb.IPAMConfig{Subnet: "198.19.2.0/23", Gateway: "198.19.3.254", IpRange: "198.19.3.0/24"}) ||
		!proto.Equal(back.Spec.Ipam, back.Ipam) || back.Spec.Driver != "overlay" {
		t.Fatalf("back = %v", back)
	}
	third := e.createNetwork(netSpec("third"))
	if third.Ipam.Subnet != "198.19.4.0/24" || third.Vni != 4099 || third.Spec.Ipam != nil {
		t.Fatalf("third = %v", third)
	}
	for _, ref := range []string{netID(1), "front", netID(1)[:6]} {
		got, err := e.srv.GetNetwork(e.ctx, &shoalpb.GetNetworkRequest{NetworkRef: ref})
		if err != nil || got.Network.Id != netID(1) {
			t.Errorf("GetNetwork(%q) = %v, %v", ref, got, err)
		}
	}
	_, err := e.srv.GetNetwork(e.ctx, &shoalpb.GetNetworkRequest{NetworkRef: "nope"})
	wantCode(t, err, codes.NotFound, "network nope not found")
}

func TestCreateNetworkRefusesBadSpecs(t *testing.T) {
	e := newNetworkEnv(t, "198.19.0.0/16", 24)
	e.createNetwork(withSubnet(netSpec("front"), "10.0.0.0/16", "", ""))
	before := e.st.AppliedIndex()
	for _, tc := range []struct {
		spec  *shoalpb.NetworkSpec
		code  codes.Code
		parts []string
	}{
		{nil, codes.InvalidArgument, []string{"network spec is required"}},
		{netSpec(""), codes.InvalidArgument, []string{"network name is required"}},
		{netSpec("bad name"), codes.InvalidArgument, []string{`invalid network name "bad name"`}},
		{netSpec("front"), codes.AlreadyExists, []string{"network with name front already exists"}},
		{&shoalpb.NetworkSpec{Name: "b", Driver: "bridge"}, codes.InvalidArgument, []string{`invalid network driver "bridge": only "overlay" networks are supported`}},
		{&shoalpb.NetworkSpec{Name: "b", Labels: map[string]string{" ": "x"}}, codes.InvalidArgument, []string{"invalid network label"}},
		{withSubnet(netSpec("b"), "10.0.1.0/24", "", ""), codes.InvalidArgument, []string{"subnet 10.0.1.0/24 overlaps network front (10.0.0.0/16)"}},
		{withSubnet(netSpec("b"), "10.0.0.0/8", "", ""), codes.InvalidArgument, []string{"subnet 10.0.0.0/8 overlaps network front (10.0.0.0/16)"}},
		{withSubnet(netSpec("b"), "198.19.0.0/24", "", ""), codes.InvalidArgument, []string{"overlaps network ingress (198.19.0.0/24)"}},
		{withSubnet(netSpec("b"), "10.1.0.300/24", "", ""), codes.InvalidArgument, []string{`invalid subnet "10.1.0.300/24"`}},
		{withSubnet(netSpec("b"), "10.1.0.1/24", "", ""), codes.InvalidArgument, []string{"host bits are set (did you mean 10.1.0.0/24?)"}},
		{withSubnet(netSpec("b"), "10.1.0.0/24", "10.2.0.1", ""), codes.InvalidArgument, []string{`invalid gateway "10.2.0.1": it is not in subnet 10.1.0.0/24`}},
		{withSubnet(netSpec("b"), "", "10.1.0.1", ""), codes.InvalidArgument, []string{`invalid gateway "10.1.0.1": a gateway needs a subnet`}},
		{withSubnet(netSpec("b"), "10.1.0.0/24", "", "10.1.1.0/25"), codes.InvalidArgument, []string{`invalid IP range "10.1.1.0/25": it is not within subnet 10.1.0.0/24`}},
		{&shoalpb.NetworkSpec{Name: "ing2", Ingress: true}, codes.InvalidArgument, []string{"the swarm already has an ingress network (ingress)"}},
	} {
		_, err := e.srv.CreateNetwork(e.ctx, &shoalpb.CreateNetworkRequest{Spec: tc.spec})
		wantCode(t, err, tc.code, tc.parts...)
	}
	if e.st.AppliedIndex() != before || len(e.networks()) != 2 {
		t.Errorf("a refused create wrote something: index %d -> %d, %d networks", before, e.st.AppliedIndex(), len(e.networks()))
	}
}

func TestCreateNetworkPoolExhausted(t *testing.T) {
	// The ingress network takes the first /24 of the /23, front the second.
	e := newNetworkEnv(t, "198.19.0.0/23", 24)
	if n := e.createNetwork(netSpec("front")); n.Ipam.Subnet != "198.19.1.0/24" {
		t.Fatalf("front = %v", n)
	}
	_, err := e.srv.CreateNetwork(e.ctx, &shoalpb.CreateNetworkRequest{Spec: netSpec("back")})
	wantCode(t, err, codes.ResourceExhausted, "no /24 subnet left in the default address pools (198.19.0.0/23): give network back a subnet")
	// A subnet outside the pool still works.
	e.createNetwork(withSubnet(netSpec("back"), "10.9.0.0/24", "", ""))
}

func TestAllocateNetworkWithPending(t *testing.T) {
	e := newNetworkEnv(t, "198.19.0.0/16", 24)
	var a, b *shoalpb.Network
	var errA, errB, errDup, errOverlap error
	e.st.View(func(tx store.ReadTx) {
		a, errA = e.srv.AllocateNetworkForTest(tx, netSpec("a"), nil)
		b, errB = e.srv.AllocateNetworkForTest(tx, netSpec("b"), []*shoalpb.Network{a})
		_, errDup = e.srv.AllocateNetworkForTest(tx, netSpec("a"), []*shoalpb.Network{a, b})
		_, errOverlap = e.srv.AllocateNetworkForTest(tx, withSubnet(netSpec("c"), "198.19.2.0/25", "", ""), []*shoalpb.Network{a, b})
	})
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	if a.Vni == b.Vni || a.Ipam.Subnet == b.Ipam.Subnet || a.Id == b.Id {
		t.Errorf("pending networks share allocations: %v / %v", a, b)
	}
	wantCode(t, errDup, codes.AlreadyExists, "network with name a already exists")
	wantCode(t, errOverlap, codes.InvalidArgument, "subnet 198.19.2.0/25 overlaps network b (198.19.2.0/24)")
	if len(e.networks()) != 1 {
		t.Errorf("allocateNetwork wrote networks")
	}
}

func TestConcurrentNetworkCreatesGetDistinctAllocations(t *testing.T) {
	e := newNetworkEnv(t, "198.19.0.0/16", 24)
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.srv.CreateNetwork(e.ctx, &shoalpb.CreateNetworkRequest{Spec: netSpec(fmt.Sprintf("net%d", i))})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	vnis := map[uint32]string{}
	var subnets []netip.Prefix
	for _, nw := range e.networks() {
		if other, dup := vnis[nw.Vni]; dup {
			t.Errorf("VNI %d of %s and %s", nw.Vni, nw.Spec.Name, other)
		}
		vnis[nw.Vni] = nw.Spec.Name
		p := netip.MustParsePrefix(nw.Ipam.Subnet)
		for _, q := range subnets {
			if p.Overlaps(q) {
				t.Errorf("subnet %s of %s overlaps %s", p, nw.Spec.Name, q)
			}
		}
		subnets = append(subnets, p)
	}
	if len(vnis) != n+1 {
		t.Errorf("%d networks, want %d", len(vnis), n+1)
	}
}

func TestListNetworksFilters(t *testing.T) {
	e := newNetworkEnv(t, "198.19.0.0/16", 24)
	e.createNetwork(&shoalpb.NetworkSpec{Name: "front-end", Labels: map[string]string{"tier": "web"}})
	e.createNetwork(&shoalpb.NetworkSpec{Name: "back", Labels: map[string]string{"tier": "db", "ssd": ""}})
	names := func(f map[string][]string) []string {
		t.Helper()
		req := &shoalpb.ListNetworksRequest{Filters: map[string]*shoalpb.FilterValues{}}
		for k, vs := range f {
			req.Filters[k] = &shoalpb.FilterValues{Values: vs}
		}
		resp, err := e.srv.ListNetworks(e.ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, n := range resp.Networks {
			out = append(out, n.Spec.Name)
		}
		return out
	}
	for _, tc := range []struct {
		f    map[string][]string
		want string
	}{
		{nil, "[back front-end ingress]"},
		{map[string][]string{"name": {"end"}}, "[front-end]"},
		{map[string][]string{"name": {"back", "ingr"}}, "[back ingress]"},
		{map[string][]string{"id": {netID(2)[:8]}}, "[back]"},
		{map[string][]string{"label": {"tier"}}, "[back front-end]"},
		{map[string][]string{"label": {"tier=db"}}, "[back]"},
		{map[string][]string{"label": {"tier"}, "name": {"front"}}, "[front-end]"},
		{map[string][]string{"driver": {"overlay"}, "scope": {"swarm"}}, "[back front-end ingress]"},
		{map[string][]string{"driver": {"bridge"}}, "[]"},
	} {
		if got := fmt.Sprint(names(tc.f)); got != tc.want {
			t.Errorf("filters %v: %s, want %s", tc.f, got, tc.want)
		}
	}
	_, err := e.srv.ListNetworks(e.ctx, &shoalpb.ListNetworksRequest{Filters: map[string]*shoalpb.FilterValues{"type": {Values: []string{"custom"}}}})
	wantCode(t, err, codes.InvalidArgument, "invalid filter 'type'")
}

func TestRemoveNetworkInUse(t *testing.T) {
	e := newNetworkEnv(t, "198.19.0.0/16", 24)
	front := e.createNetwork(netSpec("front"))
	web := replicated(spec("web", "nginx"), 1)
	web.Task.Networks = []*shoalpb.NetworkAttachmentConfig{{Target: "front"}}
	svc := e.create(web)
	_, err := e.srv.RemoveNetwork(e.ctx, &shoalpb.RemoveNetworkRequest{NetworkRef: "front"})
	wantCode(t, err, codes.FailedPrecondition, "network front is in use by service web")

	// The service is gone but its task still runs on the network.
	task := &shoalpb.Task{Id: "task1", ServiceId: svc.Id, ServiceName: "web", NodeId: "n1", DesiredState: shoalpb.TaskState_TASK_STATE_SHUTDOWN,
		Status:   &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_RUNNING},
		Networks: []*shoalpb.NetworkAttachment{{NetworkId: front.Id, Addresses: []string{"198.19.1.5/24"}}}}
	e.propose(&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Task{Task: task}})
	if _, err := e.srv.RemoveService(e.ctx, &shoalpb.RemoveServiceRequest{ServiceRef: "web"}); err != nil {
		t.Fatal(err)
	}
	_, err = e.srv.RemoveNetwork(e.ctx, &shoalpb.RemoveNetworkRequest{NetworkRef: "front"})
	wantCode(t, err, codes.FailedPrecondition, "network front is in use by service web (task task1 has not shut down yet)")

	e.propose(&shoalpb.StoreAction{Target: &shoalpb.StoreAction_TaskStatusPatch{TaskStatusPatch: &shoalpb.TaskStatusPatch{TaskId: "task1", Status: &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_SHUTDOWN}}}})
	if _, err := e.srv.RemoveNetwork(e.ctx, &shoalpb.RemoveNetworkRequest{NetworkRef: "front"}); err != nil {
		t.Fatalf("remove after the task shut down: %v", err)
	}
	_, err = e.srv.RemoveNetwork(e.ctx, &shoalpb.RemoveNetworkRequest{NetworkRef: "front"})
	wantCode(t, err, codes.NotFound, "network front not found")

	// The ingress network is refused while a service publishes on it.
	pub := replicated(spec("pub", "nginx"), 1)
	pub.Endpoint = &shoalpb.EndpointSpec{Ports: []*shoalpb.PortConfig{{TargetPort: 80, PublishedPort: 8080}}}
	e.create(pub)
	_, err = e.srv.RemoveNetwork(e.ctx, &shoalpb.RemoveNetworkRequest{NetworkRef: "ingress"})
	wantCode(t, err, codes.FailedPrecondition, "network ingress is in use by service pub, which publishes port 8080:80/tcp on the routing mesh")
	if _, err := e.srv.RemoveService(e.ctx, &shoalpb.RemoveServiceRequest{ServiceRef: "pub"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.srv.RemoveNetwork(e.ctx, &shoalpb.RemoveNetworkRequest{NetworkRef: "ingress"}); err != nil {
		t.Fatalf("remove ingress: %v", err)
	}
	// Without it, ports cannot be published on the routing mesh.
	_, err = e.srv.CreateService(e.ctx, &shoalpb.CreateServiceRequest{Spec: pub})
	wantCode(t, err, codes.FailedPrecondition, "port 8080:80/tcp cannot be published on the routing mesh: the swarm has no ingress network")
}

func TestServiceNetworksAndPorts(t *testing.T) {
	e := newNetworkEnv(t, "198.19.0.0/16", 24)
	front := e.createNetwork(netSpec("front"))
	back := e.createNetwork(netSpec("back"))
	s := replicated(spec("web", "nginx"), 1)
	s.Task.Networks = []*shoalpb.NetworkAttachmentConfig{{Target: "front", Aliases: []string{"www"}}, {Target: back.Id[:10]}}
	s.Endpoint = &shoalpb.EndpointSpec{Ports: []*shoalpb.PortConfig{{TargetPort: 80, PublishedPort: 8080}, {TargetPort: 443}}}
	svc := e.create(s)
	if got := svc.Spec.Task.Networks; got[0].Target != front.Id || got[1].Target != back.Id || got[0].Aliases[0] != "www" {
		t.Fatalf("stored networks %v, want IDs", got)
	}

	withNets := func(name string, targets ...string) *shoalpb.ServiceSpec {
		s := replicated(spec(name, "nginx"), 1)
		for _, tg := range targets {
			s.Task.Networks = append(s.Task.Networks, &shoalpb.NetworkAttachmentConfig{Target: tg})
		}
		return s
	}
	withPorts := func(name string, mode shoalpb.EndpointSpec_Mode, ports ...*shoalpb.PortConfig) *shoalpb.ServiceSpec {
		s := replicated(spec(name, "nginx"), 1)
		s.Endpoint = &shoalpb.EndpointSpec{Mode: mode, Ports: ports}
		return s
	}
	host := shoalpb.PortConfig_PUBLISH_MODE_HOST
	udp := shoalpb.PortConfig_PROTOCOL_UDP
	dnsrr := shoalpb.EndpointSpec_MODE_DNSRR
	before := e.st.AppliedIndex()
	for _, tc := range []struct {
		spec  *shoalpb.ServiceSpec
		code  codes.Code
		parts []string
	}{
		{withNets("a", "nope"), codes.InvalidArgument, []string{"network nope not found"}},
		{withNets("a", "front", front.Id), codes.InvalidArgument, []string{"invalid network " + front.Id + ": the service joins it twice"}},
		{withNets("a", "ingress"), codes.InvalidArgument, []string{"invalid network ingress: services cannot join the ingress network"}},
		{withNets("a", ""), codes.InvalidArgument, []string{"the network is required"}},
		{withPorts("a", 0, &shoalpb.PortConfig{PublishedPort: 80}), codes.InvalidArgument, []string{"invalid port 80:0/tcp: the target port is required"}},
		{withPorts("a", 0, &shoalpb.PortConfig{TargetPort: 70000}), codes.InvalidArgument, []string{"invalid target port 70000"}},
		{withPorts("a", 0, &shoalpb.PortConfig{TargetPort: 80, PublishedPort: 70000}), codes.InvalidArgument, []string{"invalid published port 70000"}},
		{withPorts("a", 0, &shoalpb.PortConfig{TargetPort: 80, PublishedPort: 9000}, &shoalpb.PortConfig{TargetPort: 81, PublishedPort: 9000}), codes.InvalidArgument, []string{"invalid published port 9000/tcp: it is published twice"}},
		{withPorts("a", dnsrr, &shoalpb.PortConfig{TargetPort: 80, PublishedPort: 9000}), codes.InvalidArgument, []string{"invalid port 9000:80/tcp", "cannot be used with endpoint mode dnsrr"}},
		{withPorts("a", 0, &shoalpb.PortConfig{TargetPort: 80, PublishedPort: 8080}), codes.InvalidArgument, []string{"port 8080/tcp is already in use by service web"}},
		{withPorts("a", 7), codes.InvalidArgument, []string{"invalid endpoint mode 7"}},
	} {
		_, err := e.srv.CreateService(e.ctx, &shoalpb.CreateServiceRequest{Spec: tc.spec})
		wantCode(t, err, tc.code, tc.parts...)
	}
	if e.st.AppliedIndex() != before {
		t.Errorf("a refused create wrote something")
	}
	// Not conflicts: another protocol, host mode, dnsrr with host mode.
	e.create(withPorts("udp", 0, &shoalpb.PortConfig{TargetPort: 80, PublishedPort: 8080, Protocol: udp}))
	e.create(withPorts("hostmode", dnsrr, &shoalpb.PortConfig{TargetPort: 80, PublishedPort: 8080, PublishMode: host}))

	// An update keeps its own port and resolves names again.
	upd := proto.Clone(svc.Spec).(*shoalpb.ServiceSpec)
	upd.Task.Networks = []*shoalpb.NetworkAttachmentConfig{{Target: "back"}}
	resp, err := e.srv.UpdateService(e.ctx, &shoalpb.UpdateServiceRequest{ServiceRef: "web", Version: svc.Meta.Version, Spec: upd})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Service.Spec.Task.Networks; len(got) != 1 || got[0].Target != back.Id {
		t.Errorf("updated networks %v", got)
	}
	// A port taken by an update is refused too.
	other := e.create(withPorts("other", 0, &shoalpb.PortConfig{TargetPort: 80, PublishedPort: 9090}))
	take := proto.Clone(other.Spec).(*shoalpb.ServiceSpec)
	take.Endpoint.Ports[0].PublishedPort = 8080
	_, err = e.srv.UpdateService(e.ctx, &shoalpb.UpdateServiceRequest{ServiceRef: "other", Version: other.Meta.Version, Spec: take})
	wantCode(t, err, codes.InvalidArgument, "port 8080/tcp is already in use by service web")
}

// TestRemovedNetworkLingersWhileItsTasksRun: a network removed in the same
// write as its services (as stack rm does) keeps its VNI and subnet from
// new networks until its last task has shut down; a subnet given that
// overlaps it is refused, naming it.
func TestRemovedNetworkLingersWhileItsTasksRun(t *testing.T) {
	e := newNetworkEnv(t, "198.19.0.0/16", 24)
	front := e.createNetwork(netSpec("front"))
	task := &shoalpb.Task{Id: "task1", ServiceId: "gone", ServiceName: "app_web", NodeId: "n1", DesiredState: shoalpb.TaskState_TASK_STATE_SHUTDOWN,
		Status: &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_RUNNING},
		Networks: []*shoalpb.NetworkAttachment{{NetworkId: front.Id, NetworkName: "front", Vni: front.Vni, Subnet: front.Ipam.Subnet,
			Gateway: front.Ipam.Gateway, Addresses: []string{"198.19.1.5/24"}}}}
	e.propose(
		&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Task{Task: task}},
		&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_REMOVE, Target: &shoalpb.StoreAction_Network{Network: &shoalpb.Network{Id: front.Id}}},
	)
	next := e.createNetwork(netSpec("next"))
	if next.Vni == front.Vni || next.Ipam.Subnet == front.Ipam.Subnet {
		t.Fatalf("new network %v reuses the VNI or subnet of removed network %v while its task runs", next, front)
	}
	_, err := e.srv.CreateNetwork(e.ctx, &shoalpb.CreateNetworkRequest{Spec: withSubnet(netSpec("mine"), front.Ipam.Subnet, "", "")})
	wantCode(t, err, codes.FailedPrecondition, "subnet 198.19.1.0/24 overlaps removed network front (198.19.1.0/24), whose tasks have not shut down yet")

	e.propose(&shoalpb.StoreAction{Target: &shoalpb.StoreAction_TaskStatusPatch{TaskStatusPatch: &shoalpb.TaskStatusPatch{TaskId: "task1", Status: &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_SHUTDOWN}}}})
	again := e.createNetwork(netSpec("again"))
	if again.Vni != front.Vni || again.Ipam.Subnet != front.Ipam.Subnet {
		t.Fatalf("once the task shut down, network %v does not get the freed VNI %d and subnet %s", again, front.Vni, front.Ipam.Subnet)
	}
}
