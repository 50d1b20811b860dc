package allocator_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/manager/allocator"
	"github.com/shoal-project/shoal/manager/orchestrator"
	"github.com/shoal-project/shoal/manager/orchestrator/orchestratortest"
	"github.com/shoal-project/shoal/manager/orchestrator/replicated"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

const (
	stateNew = shoalpb.TaskState_TASK_STATE_NEW
	pending  = shoalpb.TaskState_TASK_STATE_PENDING
	running  = shoalpb.TaskState_TASK_STATE_RUNNING
	failed   = shoalpb.TaskState_TASK_STATE_FAILED
)

type env struct {
	*orchestratortest.Env
	t     *testing.T
	tasks orchestratortest.IDs
}

func newEnv(t *testing.T) *env {
	e := &env{Env: orchestratortest.NewEnv(t), t: t, tasks: orchestratortest.IDs{Prefix: "t"}}
	e.createNetwork("ingress", "ingress", "10.255.0.0/24", 4096, true)
	return e
}

// start runs an allocator until the test ends.
func (e *env) start() {
	e.t.Helper()
	a, err := allocator.New(e.Config())
	if err != nil {
		e.t.Fatal(err)
	}
	e.Go(a.Run)
}

// startUntil runs an allocator until the returned function is called,
// which waits for it to stop (a term ending).
func (e *env) startUntil() (stop func()) {
	e.t.Helper()
	a, err := allocator.New(e.Config())
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = a.Run(ctx) }()
	return func() { cancel(); wg.Wait() }
}

func (e *env) createNetwork(id, name, subnet string, vni uint32, ingress bool) {
	e.t.Helper()
	p := netip.MustParsePrefix(subnet)
	ipam := allocator.NewIPAM(p)
	e.Propose(&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Network{Network: &shoalpb.Network{
		Id: id, Vni: vni, Ipam: ipam.Proto(),
		Spec: &shoalpb.NetworkSpec{Name: name, Driver: "overlay", Ingress: ingress},
	}}})
}

// service returns a replicated service joining networks (IDs; an entry
// "id:alias" gives an alias).
func service(id string, replicas uint64, networks ...string) *shoalpb.Service {
	svc := orchestratortest.Replicated(id, replicas)
	for _, n := range networks {
		target, alias, _ := strings.Cut(n, ":")
		c := &shoalpb.NetworkAttachmentConfig{Target: target}
		if alias != "" {
			c.Aliases = []string{alias}
		}
		svc.Spec.Task.Networks = append(svc.Spec.Task.Networks, c)
	}
	return svc
}

func publish(svc *shoalpb.Service, ports ...*shoalpb.PortConfig) *shoalpb.Service {
	if svc.Spec.Endpoint == nil {
		svc.Spec.Endpoint = &shoalpb.EndpointSpec{}
	}
	svc.Spec.Endpoint.Ports = append(svc.Spec.Endpoint.Ports, ports...)
	return svc
}

func tcp(published, target uint32) *shoalpb.PortConfig {
	return &shoalpb.PortConfig{TargetPort: target, PublishedPort: published}
}

// addTasks creates n tasks of the stored service id as the orchestrators
// do, in one command, and returns their IDs.
func (e *env) addTasks(id string, n int) []string {
	e.t.Helper()
	var svc *shoalpb.Service
	e.Store.View(func(tx store.ReadTx) { svc = tx.Service(id) })
	var actions []*shoalpb.StoreAction
	var ids []string
	for i := range n {
		e.Clock.Advance(1)
		t := orchestrator.NewTask(svc, uint64(i+1), "", e.tasks.New(), e.Clock.Now())
		ids = append(ids, t.Id)
		actions = append(actions, orchestrator.CreateTaskAction(t))
	}
	e.Propose(actions...)
	return ids
}

func (e *env) task(id string) *shoalpb.Task {
	var t *shoalpb.Task
	e.Store.View(func(tx store.ReadTx) { t = tx.Task(id) })
	return t
}

func (e *env) service(id string) *shoalpb.Service {
	var s *shoalpb.Service
	e.Store.View(func(tx store.ReadTx) { s = tx.Service(id) })
	return s
}

// waitState waits until every task of ids is in state s.
func (e *env) waitState(s shoalpb.TaskState, ids ...string) []*shoalpb.Task {
	e.t.Helper()
	var got []*shoalpb.Task
	e.WaitFor(fmt.Sprintf("tasks %v %v", ids, s), func(tx store.ReadTx) bool {
		got = got[:0]
		for _, id := range ids {
			t := tx.Task(id)
			if t == nil || t.GetStatus().GetState() != s {
				return false
			}
			got = append(got, t)
		}
		return true
	}, func() string { return orchestratortest.Dump(got) })
	return got
}

// waitErr waits until task id shows an error containing want.
func (e *env) waitErr(id, want string) *shoalpb.Task {
	e.t.Helper()
	var t *shoalpb.Task
	e.WaitFor("task "+id+" error "+want, func(tx store.ReadTx) bool {
		t = tx.Task(id)
		return t != nil && strings.Contains(t.GetStatus().GetErr(), want)
	}, func() string { return orchestratortest.Dump([]*shoalpb.Task{t}) })
	return t
}

func (e *env) removeTask(id string) {
	e.t.Helper()
	e.Propose(&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_REMOVE, Target: &shoalpb.StoreAction_Task{Task: &shoalpb.Task{Id: id}}})
}

func addr(t *testing.T, a *shoalpb.NetworkAttachment) netip.Prefix {
	t.Helper()
	if len(a.GetAddresses()) != 1 {
		t.Fatalf("attachment %v has %d addresses", a, len(a.GetAddresses()))
	}
	return netip.MustParsePrefix(a.Addresses[0])
}

func TestServiceAndTasksOnNetworks(t *testing.T) {
	e := newEnv(t)
	e.createNetwork("front", "front", "10.0.1.0/24", 4097, false)
	e.start()
	svc := publish(service("web", 2, "front:www"), tcp(8080, 80), &shoalpb.PortConfig{Protocol: shoalpb.PortConfig_PROTOCOL_UDP, TargetPort: 53},
		&shoalpb.PortConfig{TargetPort: 9000, PublishedPort: 9000, PublishMode: shoalpb.PortConfig_PUBLISH_MODE_HOST})
	e.CreateService(svc)
	ids := e.addTasks("web", 2)
	tasks := e.waitState(pending, ids...)

	ep := e.service("web").GetEndpoint()
	if ep == nil {
		t.Fatal("service has no endpoint")
	}
	vips := map[string]netip.Prefix{}
	for _, v := range ep.VirtualIps {
		vips[v.NetworkId] = netip.MustParsePrefix(v.Addr)
	}
	if len(vips) != 2 || !netip.MustParsePrefix("10.0.1.0/24").Contains(vips["front"].Addr()) || vips["front"].Bits() != 24 ||
		!netip.MustParsePrefix("10.255.0.0/24").Contains(vips["ingress"].Addr()) {
		t.Fatalf("VIPs %v: want one on front and one on ingress", ep.VirtualIps)
	}
	wantPorts := []string{"8080/tcp->80 ingress", "30000/udp->53 ingress", "9000/tcp->9000 host"}
	var gotPorts []string
	for _, p := range ep.Ports {
		gotPorts = append(gotPorts, fmt.Sprintf("%d/%s->%d %s", p.PublishedPort, allocator.ProtocolName(p.Protocol), p.TargetPort,
			strings.ToLower(strings.TrimPrefix(p.PublishMode.String(), "PUBLISH_MODE_"))))
	}
	if !slices.Equal(gotPorts, wantPorts) {
		t.Errorf("ports %v, want %v", gotPorts, wantPorts)
	}

	seen := map[netip.Addr]string{vips["front"].Addr(): "front VIP", vips["ingress"].Addr(): "ingress VIP"}
	for _, task := range tasks {
		if len(task.Networks) != 2 {
			t.Fatalf("task %s has %d attachments, want front and ingress: %v", task.Id, len(task.Networks), task.Networks)
		}
		front, ing := task.Networks[0], task.Networks[1]
		if front.NetworkId != "front" || front.NetworkName != "front" || front.Vni != 4097 || front.Subnet != "10.0.1.0/24" ||
			front.Gateway != "10.0.1.1" || !slices.Equal(front.Aliases, []string{"www"}) {
			t.Errorf("front attachment %v", front)
		}
		if ing.NetworkId != "ingress" || ing.Vni != 4096 || len(ing.Aliases) != 0 {
			t.Errorf("ingress attachment %v", ing)
		}
		for _, a := range []*shoalpb.NetworkAttachment{front, ing} {
			p := addr(t, a)
			if p.Addr() == netip.MustParseAddr(a.Gateway) || !netip.MustParsePrefix(a.Subnet).Contains(p.Addr()) || p.Bits() != netip.MustParsePrefix(a.Subnet).Bits() {
				t.Errorf("task %s address %s on %s (gateway %s)", task.Id, p, a.Subnet, a.Gateway)
			}
			if a.Mac != allocator.MACFromIP(p.Addr()) {
				t.Errorf("task %s MAC %s for %s", task.Id, a.Mac, p.Addr())
			}
			if who, dup := seen[p.Addr()]; dup {
				t.Errorf("address %s of task %s is also %s's", p.Addr(), task.Id, who)
			}
			seen[p.Addr()] = task.Id
		}
		if !proto.Equal(task.Endpoint, ep) {
			t.Errorf("task %s endpoint %v, want the service's %v", task.Id, task.Endpoint, ep)
		}
		if task.Status.Message != "pending" || task.Status.Err != "" {
			t.Errorf("task %s status %v", task.Id, task.Status)
		}
	}

	// A spec change that keeps the ports keeps the auto-assigned one.
	e.UpdateService("web", func(s *shoalpb.Service) { s.Spec.Labels = map[string]string{"v": "2"} })
	more := e.addTasks("web", 1)
	e.waitState(pending, more...)
	got := e.service("web").GetEndpoint().GetPorts()
	if !slices.EqualFunc(got, ep.GetPorts(), func(a, b *shoalpb.PortConfig) bool { return proto.Equal(a, b) }) {
		t.Errorf("ports after an update %v, want %v", got, ep.GetPorts())
	}
}

func TestDNSRRHasNoVIPs(t *testing.T) {
	e := newEnv(t)
	e.createNetwork("back", "back", "10.0.2.0/24", 4098, false)
	e.start()
	svc := service("db", 1, "back")
	svc.Spec.Endpoint = &shoalpb.EndpointSpec{Mode: shoalpb.EndpointSpec_MODE_DNSRR}
	e.CreateService(svc)
	ids := e.addTasks("db", 1)
	task := e.waitState(pending, ids...)[0]
	if ep := e.service("db").GetEndpoint(); ep.GetSpec().GetMode() != shoalpb.EndpointSpec_MODE_DNSRR || len(ep.GetVirtualIps()) != 0 {
		t.Errorf("dnsrr endpoint %v", ep)
	}
	if len(task.Networks) != 1 || task.Networks[0].NetworkId != "back" {
		t.Errorf("attachments %v", task.Networks)
	}
}

func TestTasksWithoutNetworksAreLeftAlone(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.CreateService(orchestratortest.Replicated("plain", 1))
	ids := e.addTasks("plain", 1)
	plain := e.task(ids[0])
	if plain.GetStatus().GetState() != pending {
		t.Fatalf("a task without networks starts %v", plain.GetStatus().GetState())
	}
	// A barrier: a service with a network is handled after the plain one.
	e.createNetwork("front", "front", "10.0.1.0/24", 4097, false)
	e.CreateService(service("web", 1, "front"))
	e.waitState(pending, e.addTasks("web", 1)...)
	if got := e.task(ids[0]); got.Meta.Version != plain.Meta.Version {
		t.Errorf("plain task rewritten: %v", got)
	}
	if ep := e.service("plain").GetEndpoint(); ep != nil {
		t.Errorf("plain service got endpoint %v", ep)
	}
}

func TestExhaustedNetworkKeepsTasksNewUntilAddressesAreFreed(t *testing.T) {
	e := newEnv(t)
	// A /29 has five addresses for tasks; the service's VIP takes one.
	e.createNetwork("tiny", "tiny", "10.0.9.0/29", 4100, false)
	e.start()
	e.CreateService(service("web", 6, "tiny"))
	ids := e.addTasks("web", 6)
	e.waitState(pending, ids[:4]...)
	const want = "network tiny: no IPv4 address left in 10.0.9.0/29"
	for _, id := range ids[4:] {
		task := e.waitErr(id, want)
		if task.GetStatus().GetState() != stateNew || task.GetStatus().GetErr() != want {
			t.Fatalf("task %s status %v, want NEW with %q", id, task.GetStatus(), want)
		}
	}

	// A task that stopped lets go of its address: the oldest waiting task
	// gets it.
	e.Report(map[string]shoalpb.TaskState{ids[0]: failed})
	got := e.waitState(pending, ids[4])[0]
	if got.GetStatus().GetErr() != "" || addr(t, got.Networks[0]).Addr() != addr(t, e.task(ids[0]).Networks[0]).Addr() {
		t.Errorf("task %s after the address was freed: %v", ids[4], got)
	}
	if s := e.task(ids[5]).GetStatus(); s.GetState() != stateNew || s.GetErr() != want {
		t.Errorf("task %s should still wait: %v", ids[5], s)
	}

	// A deleted task frees its address too.
	e.removeTask(ids[1])
	e.waitState(pending, ids[5])
}

func TestErrorIsWrittenOnce(t *testing.T) {
	e := newEnv(t)
	e.createNetwork("tiny", "tiny", "10.0.9.0/30", 4100, false)
	e.start()
	// A /30 has one address for tasks: the VIP takes it.
	e.CreateService(service("web", 1, "tiny"))
	ids := e.addTasks("web", 1)
	e.waitErr(ids[0], "network tiny: no IPv4 address left in 10.0.9.0/30")
	v := e.task(ids[0]).Meta.Version
	// Unrelated changes make passes; the error is not written again.
	for i := range 3 {
		e.CreateService(orchestratortest.Replicated(fmt.Sprintf("other%d", i), 1))
	}
	e.createNetwork("front", "front", "10.0.1.0/24", 4097, false) // a retry
	e.CreateService(service("probe", 1, "front"))
	e.waitState(pending, e.addTasks("probe", 1)...)
	if got := e.task(ids[0]).Meta.Version; got != v {
		t.Errorf("the unchanged error was written again (version %d -> %d)", v, got)
	}
}

func TestPortConflictAndRelease(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.CreateService(publish(orchestratortest.Replicated("a", 1), tcp(8080, 80)))
	a := e.addTasks("a", 1)
	e.waitState(pending, a...)
	// Two creates can race past the control API's check: the second
	// service's tasks say why they wait.
	e.CreateService(publish(orchestratortest.Replicated("b", 1), tcp(8080, 81)))
	b := e.addTasks("b", 1)
	e.waitErr(b[0], "port 8080/tcp is already in use by service a")
	if ep := e.service("b").GetEndpoint(); ep != nil {
		t.Errorf("b got an endpoint: %v", ep)
	}
	e.RemoveService("a")
	got := e.waitState(pending, b...)[0]
	if p := got.GetEndpoint().GetPorts(); len(p) != 1 || p[0].PublishedPort != 8080 || p[0].TargetPort != 81 {
		t.Errorf("b's ports after a left: %v", p)
	}
	if len(got.Networks) != 1 || got.Networks[0].NetworkName != "ingress" {
		t.Errorf("b's task attachments %v, want the ingress network", got.Networks)
	}
}

func TestSpecChangeFreesVIP(t *testing.T) {
	e := newEnv(t)
	e.createNetwork("tiny", "tiny", "10.0.9.0/29", 4100, false)
	e.createNetwork("back", "back", "10.0.2.0/24", 4098, false)
	e.start()
	e.CreateService(service("a", 0, "tiny", "back"))
	e.WaitFor("a's VIPs", func(tx store.ReadTx) bool { return len(tx.Service("a").GetEndpoint().GetVirtualIps()) == 2 }, nil)
	// dnsrr: b takes no VIP, its tasks take the other four addresses.
	b := service("b", 5, "tiny")
	b.Spec.Endpoint = &shoalpb.EndpointSpec{Mode: shoalpb.EndpointSpec_MODE_DNSRR}
	e.CreateService(b)
	ids := e.addTasks("b", 5)
	e.waitState(pending, ids[:4]...)
	e.waitErr(ids[4], "network tiny: no IPv4 address left")

	e.UpdateService("a", func(s *shoalpb.Service) { s.Spec.Task.Networks = s.Spec.Task.Networks[1:] })
	e.waitState(pending, ids[4])
	vips := e.service("a").GetEndpoint().GetVirtualIps()
	if len(vips) != 1 || vips[0].NetworkId != "back" {
		t.Errorf("a's VIPs after leaving tiny: %v", vips)
	}
}

func TestUnknownNetworkWaitsForIt(t *testing.T) {
	e := newEnv(t)
	e.start()
	svc := service("web", 1, "later")
	svc.Spec.Endpoint = &shoalpb.EndpointSpec{Mode: shoalpb.EndpointSpec_MODE_DNSRR}
	e.CreateService(svc)
	ids := e.addTasks("web", 1)
	e.waitErr(ids[0], "network later not found")
	e.createNetwork("later", "later", "10.0.3.0/24", 4101, false)
	task := e.waitState(pending, ids...)[0]
	if len(task.Networks) != 1 || task.Networks[0].NetworkName != "later" {
		t.Errorf("attachments %v", task.Networks)
	}
}

func TestNewTermRebuildsFromTheStore(t *testing.T) {
	e := newEnv(t)
	// VIP + four tasks fill the /29.
	e.createNetwork("tiny", "tiny", "10.0.9.0/29", 4100, false)
	stop := e.startUntil()
	e.CreateService(publish(service("web", 4, "tiny"), &shoalpb.PortConfig{TargetPort: 80}))
	first := e.waitState(pending, e.addTasks("web", 4)...)
	ep := e.service("web").GetEndpoint()
	stop()

	// A task stopped while nobody led: its address is free in the next
	// term, and only that one.
	e.Report(map[string]shoalpb.TaskState{first[0].Id: failed})
	before := e.service("web").Meta.Version
	e.start()
	more := e.addTasks("web", 2)
	got := e.waitState(pending, more[0])[0]
	if a, want := addr(t, got.Networks[0]).Addr(), addr(t, first[0].Networks[0]).Addr(); a != want {
		t.Errorf("new task got %s, want the freed %s", a, want)
	}
	e.waitErr(more[1], "network tiny: no IPv4 address left in 10.0.9.0/29")
	if got := e.service("web"); got.Meta.Version != before || !proto.Equal(got.Endpoint, ep) {
		t.Errorf("the service endpoint was rewritten in the new term: %v -> %v", ep, got.Endpoint)
	}
}

func TestServiceRemovalFreesPortsAndVIPs(t *testing.T) {
	e := newEnv(t)
	e.createNetwork("tiny", "tiny", "10.0.9.0/30", 4100, false)
	e.start()
	e.CreateService(publish(service("a", 0, "tiny"), tcp(8080, 80)))
	e.WaitFor("a's endpoint", func(tx store.ReadTx) bool { return len(tx.Service("a").GetEndpoint().GetVirtualIps()) == 2 }, nil)
	// The only address of tiny is a's VIP; 8080 is a's.
	e.CreateService(publish(service("b", 1, "tiny"), tcp(8080, 80)))
	ids := e.addTasks("b", 1)
	e.waitErr(ids[0], "port 8080/tcp is already in use by service a")
	e.RemoveService("a")
	e.WaitFor("b's endpoint", func(tx store.ReadTx) bool { return len(tx.Service("b").GetEndpoint().GetVirtualIps()) == 2 }, nil)
	// b's VIP took the freed address; its task has none left.
	e.waitErr(ids[0], "network tiny: no IPv4 address left in 10.0.9.0/30")
}

func TestWithReplicatedOrchestrator(t *testing.T) {
	e := newEnv(t)
	e.createNetwork("front", "front", "10.0.1.0/24", 4097, false)
	e.start()
	o, err := replicated.New(e.Config())
	if err != nil {
		t.Fatal(err)
	}
	e.Go(o.Run)
	e.CreateService(service("web", 3, "front"))
	tasks := e.WaitTasks("web", "3 allocated tasks", func(ts []*shoalpb.Task) bool {
		n := 0
		for _, t := range ts {
			if t.GetStatus().GetState() == pending && len(t.Networks) == 1 {
				n++
			}
		}
		return n == 3
	})
	addrs := map[string]bool{}
	for _, task := range tasks {
		addrs[task.Networks[0].Addresses[0]] = true
	}
	if len(addrs) != 3 {
		t.Errorf("addresses %v, want 3 distinct", addrs)
	}
}

func (e *env) node(id string) *shoalpb.Node {
	var n *shoalpb.Node
	e.Store.View(func(tx store.ReadTx) { n = tx.Node(id) })
	return n
}

// waitNodeAddr waits until node id has an ingress address (want, or any
// when want is "") and returns it.
func (e *env) waitNodeAddr(id, network, want string) string {
	e.t.Helper()
	var got string
	e.WaitFor("node "+id+" ingress address", func(tx store.ReadTx) bool {
		atts := tx.Node(id).GetAttachments()
		if len(atts) != 1 || atts[0].NetworkId != network {
			return false
		}
		got = atts[0].Addr
		return want == "" || got == want
	}, func() string { return fmt.Sprint(e.node(id).GetAttachments()) })
	return got
}

func TestNodesGetIngressAddresses(t *testing.T) {
	e := &env{Env: orchestratortest.NewEnv(t), t: t}
	// A /30 ingress network has one address: one node gets it.
	e.createNetwork("ing1", "ingress", "10.255.0.0/30", 4096, true)
	e.AddNodes(orchestratortest.Node("a"))
	e.start()
	if got := e.waitNodeAddr("a", "ing1", ""); got != "10.255.0.2/30" {
		t.Fatalf("node a ingress address %s", got)
	}
	e.AddNodes(orchestratortest.Node("b"))
	e.RemoveNode("a")
	if got := e.waitNodeAddr("b", "ing1", ""); got != "10.255.0.2/30" {
		t.Fatalf("node b got %s, want the address a freed", got)
	}

	// The ingress network removed: nodes lose their address; a new one
	// gives them one again.
	e.Propose(&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_REMOVE, Target: &shoalpb.StoreAction_Network{Network: &shoalpb.Network{Id: "ing1"}}})
	e.WaitFor("b's attachments cleared", func(tx store.ReadTx) bool { return len(tx.Node("b").GetAttachments()) == 0 }, nil)
	e.createNetwork("ing2", "ingress", "10.254.0.0/24", 4097, true)
	e.waitNodeAddr("b", "ing2", "")
}

func TestNodeAttachmentsSurviveNewTermAndHeartbeats(t *testing.T) {
	e := newEnv(t)
	e.AddNodes(orchestratortest.Node("a"), orchestratortest.Node("b"))
	stop := e.startUntil()
	a := e.waitNodeAddr("a", "ingress", "")
	b := e.waitNodeAddr("b", "ingress", "")
	if a == b {
		t.Fatalf("nodes share ingress address %s", a)
	}
	stop()
	e.start()
	// A heartbeat-like change causes no rewrite; a new node gets another
	// address, the old ones stay.
	e.SetNodeState("a", shoalpb.NodeState_NODE_STATE_READY)
	va := e.node("a").Meta.Version
	e.AddNodes(orchestratortest.Node("c"))
	c := e.waitNodeAddr("c", "ingress", "")
	if c == a || c == b || e.waitNodeAddr("a", "ingress", a) != a || e.waitNodeAddr("b", "ingress", b) != b {
		t.Errorf("addresses a=%s b=%s c=%s", a, b, c)
	}
	if v := e.node("a").Meta.Version; v != va {
		t.Errorf("node a rewritten after a status change (version %d -> %d)", va, v)
	}
	// A task publishing a port gets none of the nodes' addresses.
	e.CreateService(publish(orchestratortest.Replicated("web", 1), tcp(8080, 80)))
	task := e.waitState(pending, e.addTasks("web", 1)...)[0]
	if got := task.Networks[0].Addresses[0]; got == a || got == b || got == c {
		t.Errorf("task address %s is a node's", got)
	}
}
