package node

import (
	"log/slog"
	"net"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/overlay"
	"github.com/shoal-project/shoal/overlay/netdb"
	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/worker/taskdb"
)

var (
	a  = netip.MustParseAddr
	pf = netip.MustParsePrefix
)

func TestConfigFromProto(t *testing.T) {
	pb := &shoalpb.OverlayConfig{
		DataPathPort:     7789,
		InternalNetworks: []string{"zz", "back"},
		Ingress: &shoalpb.NetworkAttachment{NetworkId: "ing", Vni: 4096, Subnet: "198.19.0.0/24", Gateway: "198.19.0.1",
			Addresses: []string{"198.19.0.7/24"}, NetworkName: "ingress"},
	}
	c, err := configFromProto(pb)
	if err != nil {
		t.Fatal(err)
	}
	want := &overlayConfig{DataPathPort: 7789, Internal: []string{"back", "zz"}, Ingress: &ingressConfig{
		Network: overlay.Network{ID: "ing", VNI: 4096, Subnet: pf("198.19.0.0/24"), Gateway: a("198.19.0.1")},
		Name:    "ingress", Addr: pf("198.19.0.7/24"),
	}}
	if !reflect.DeepEqual(c, want) || !c.equal(want) {
		t.Fatalf("config = %+v %+v, want %+v %+v", c, c.Ingress, want, want.Ingress)
	}
	if !c.internal("back") || c.internal("ing") || c.ingressID() != "ing" {
		t.Errorf("internal/ingressID wrong")
	}
	other := *want
	other.Ingress = &ingressConfig{Network: want.Ingress.Network, Name: "ingress", Addr: pf("198.19.0.8/24")}
	if c.equal(&other) {
		t.Error("a new ingress address compares equal")
	}

	// No address yet: the network is known, the address invalid.
	pb.Ingress.Addresses = nil
	if c, err := configFromProto(pb); err != nil || c.Ingress == nil || c.Ingress.Addr.IsValid() {
		t.Errorf("without an address: %+v, %v", c, err)
	}
	for _, bad := range []func(*shoalpb.OverlayConfig){
		func(p *shoalpb.OverlayConfig) { p.DataPathPort = 0 },
		func(p *shoalpb.OverlayConfig) { p.DataPathPort = 70000 },
		func(p *shoalpb.OverlayConfig) { p.Ingress.Subnet = "nope" },
		func(p *shoalpb.OverlayConfig) { p.Ingress.Addresses = []string{"198.19.1.7/24"} },
		func(p *shoalpb.OverlayConfig) { p.Ingress.Addresses = []string{"198.19.0.7/16"} },
	} {
		p := &shoalpb.OverlayConfig{DataPathPort: 4789, Ingress: &shoalpb.NetworkAttachment{NetworkId: "ing", Vni: 1, Subnet: "198.19.0.0/24"}}
		bad(p)
		if c, err := configFromProto(p); err == nil {
			t.Errorf("accepted %v as %+v", p, c)
		}
	}
}

func testTask() *shoalpb.Task {
	return &shoalpb.Task{
		Id: "t1", ServiceId: "s1", ServiceName: "web", Slot: 2,
		Networks: []*shoalpb.NetworkAttachment{
			{NetworkId: "front", Vni: 4097, Subnet: "198.19.1.0/24", Gateway: "198.19.1.1", Addresses: []string{"198.19.1.5/24"}, Mac: "02:42:c6:13:01:05", Aliases: []string{"www"}},
			{NetworkId: "ing", Vni: 4096, Subnet: "198.19.0.0/24", Gateway: "198.19.0.1", Addresses: []string{"198.19.0.9/24"}},
		},
		Endpoint: &shoalpb.Endpoint{
			Spec: &shoalpb.EndpointSpec{},
			Ports: []*shoalpb.PortConfig{
				{Protocol: shoalpb.PortConfig_PROTOCOL_TCP, TargetPort: 80, PublishedPort: 8080},
				{Protocol: shoalpb.PortConfig_PROTOCOL_UDP, TargetPort: 53, PublishedPort: 5353},
				{Protocol: shoalpb.PortConfig_PROTOCOL_TCP, TargetPort: 81, PublishedPort: 9090, PublishMode: shoalpb.PortConfig_PUBLISH_MODE_HOST},
				{Protocol: shoalpb.PortConfig_PROTOCOL_TCP, TargetPort: 82, PublishMode: shoalpb.PortConfig_PUBLISH_MODE_HOST},
			},
			VirtualIps: []*shoalpb.VirtualIP{{NetworkId: "front", Addr: "198.19.1.2/24"}, {NetworkId: "ing", Addr: "198.19.0.2/24"}},
		},
	}
}

func TestTaskAttachmentsAndEndpoints(t *testing.T) {
	task := testTask()
	cfg := &overlayConfig{DataPathPort: 4789, Internal: []string{"front"}, Ingress: &ingressConfig{Network: overlay.Network{ID: "ing"}}}
	nets, atts, err := taskAttachments(task, cfg)
	if err != nil {
		t.Fatal(err)
	}
	wantNets := []overlay.Network{
		{ID: "front", VNI: 4097, Subnet: pf("198.19.1.0/24"), Gateway: a("198.19.1.1"), Internal: true},
		{ID: "ing", VNI: 4096, Subnet: pf("198.19.0.0/24"), Gateway: a("198.19.0.1")},
	}
	mac, _ := net.ParseMAC("02:42:c6:13:01:05")
	wantAtts := []overlay.Attachment{{Network: "front", Address: pf("198.19.1.5/24"), MAC: mac}, {Network: "ing", Address: pf("198.19.0.9/24")}}
	if !reflect.DeepEqual(nets, wantNets) || !reflect.DeepEqual(atts, wantAtts) {
		t.Fatalf("attachments:\n%+v\n%+v", nets, atts)
	}

	eps, err := taskEndpoints(task, atts, "node1", a("198.18.0.3"), "ing")
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 2 {
		t.Fatalf("%d endpoints", len(eps))
	}
	front, ing := eps[0], eps[1]
	if front.NetworkID != "front" || front.EndpointID != "t1" || front.NodeID != "node1" || front.IP != a("198.19.1.5") ||
		front.MAC.String() != "02:42:c6:13:01:05" || front.VTEP != a("198.18.0.3") || front.ServiceID != "s1" ||
		front.ServiceName != "web" || front.TaskName != "web.2.t1" || !reflect.DeepEqual(front.Aliases, []string{"www"}) ||
		front.VIP != a("198.19.1.2") || front.Ports != nil {
		t.Errorf("front endpoint %+v", front)
	}
	// On the ingress network: a MAC derived from the address, and the
	// routing mesh's ports (not the host-mode ones).
	wantPorts := []netdb.Port{{Protocol: 6, Published: 8080, Target: 80}, {Protocol: 17, Published: 5353, Target: 53}}
	if ing.MAC.String() != "02:42:c6:13:00:09" || !reflect.DeepEqual(ing.Ports, wantPorts) {
		t.Errorf("ingress endpoint %+v", ing)
	}
	if hp := hostPorts(task); !reflect.DeepEqual(hp, []hostPort{{Protocol: overlay.TCP, Published: 9090, Target: 81}}) {
		t.Errorf("host ports %+v", hp)
	}

	// DNS round robin: no VIPs.
	task.Endpoint.Spec.Mode = shoalpb.EndpointSpec_MODE_DNSRR
	eps, _ = taskEndpoints(task, atts, "node1", a("198.18.0.3"), "ing")
	if eps[0].VIP.IsValid() {
		t.Errorf("dnsrr endpoint has VIP %s", eps[0].VIP)
	}

	for what, bad := range map[string]func(*shoalpb.Task){
		"no address": func(t *shoalpb.Task) { t.Networks[0].Addresses = nil },
		"bad addr":   func(t *shoalpb.Task) { t.Networks[0].Addresses = []string{"198.19.1.5"} },
		"bad mac":    func(t *shoalpb.Task) { t.Networks[0].Mac = "zz" },
		"bad subnet": func(t *shoalpb.Task) { t.Networks[1].Subnet = "198.19.0.0" },
		"no network": func(t *shoalpb.Task) { t.Networks[1].NetworkId = "" },
	} {
		tk := testTask()
		bad(tk)
		if _, _, err := taskAttachments(tk, cfg); err == nil || !strings.Contains(err.Error(), "task t1") {
			t.Errorf("%s: err = %v, want one naming the task", what, err)
		}
	}
}

func ep(net, id, svc string, ip, vip string, ports ...netdb.Port) netdb.Endpoint {
	e := netdb.Endpoint{NetworkID: net, EndpointID: id, NodeID: "n", IP: a(ip), VTEP: a("198.18.0.1"), ServiceID: svc, ServiceName: svc + "-name", Ports: ports}
	if vip != "" {
		e.VIP = a(vip)
	}
	return e
}

func TestServicesOf(t *testing.T) {
	eps := []netdb.Endpoint{
		ep("n", "t1", "web", "198.19.1.5", "198.19.1.2"),
		ep("n", "t2", "web", "198.19.1.4", "198.19.1.2"),
		ep("n", "t3", "db", "198.19.1.9", "198.19.1.3"),
		ep("n", "t4", "rr", "198.19.1.10", ""), // DNS round robin: no VIP
		ep("n", "node.x", "", "198.19.1.11", ""),
	}
	got := servicesOf(eps)
	want := []overlay.Service{
		{ID: "db", VIP: a("198.19.1.3"), Backends: []netip.Addr{a("198.19.1.9")}},
		{ID: "web", VIP: a("198.19.1.2"), Backends: []netip.Addr{a("198.19.1.4"), a("198.19.1.5")}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("services = %+v", got)
	}
	if ps := peersOf(eps); len(ps) != len(eps) || ps[0].IP != a("198.19.1.5") {
		t.Errorf("peers = %+v", ps)
	}
}

func TestPublishedPorts(t *testing.T) {
	tcp := func(pub, target uint16) netdb.Port { return netdb.Port{Protocol: 6, Published: pub, Target: target} }
	ingress := []netdb.Endpoint{
		ep("ing", "t1", "web", "198.19.0.5", "", tcp(8080, 80)),
		ep("ing", "t2", "web", "198.19.0.6", "", tcp(8080, 80)),
		ep("ing", "t3", "api", "198.19.0.7", "", tcp(9000, 9000), netdb.Port{Protocol: 17, Published: 9000, Target: 53}),
		// The old task of a service whose target port changed, still
		// stopping: the majority wins.
		ep("ing", "t4", "web", "198.19.0.8", "", tcp(8080, 81)),
		ep("ing", "node.x", "", "198.19.0.2", ""),
	}
	host := []localHostPorts{
		{service: "h", port: hostPort{Protocol: overlay.TCP, Published: 7000, Target: 70}, tasks: []string{"t9"}},
		{service: "h", port: hostPort{Protocol: overlay.TCP, Published: 7000, Target: 70}, tasks: []string{"t8"}},
		{service: "clash", port: hostPort{Protocol: overlay.TCP, Published: 8080, Target: 80}, tasks: []string{"t7"}},
	}
	got, conflicts := publishedPorts(ingress, true, host)
	want := []overlay.PublishedPort{
		{Service: "h-name", Protocol: overlay.TCP, PublishedPort: 7000, TargetPort: 70, Mode: overlay.PublishHost, Tasks: []string{"t8", "t9"}},
		{Service: "web-name", Protocol: overlay.TCP, PublishedPort: 8080, TargetPort: 80, Mode: overlay.PublishIngress, Backends: []netip.Addr{a("198.19.0.5"), a("198.19.0.6")}},
		{Service: "api-name", Protocol: overlay.TCP, PublishedPort: 9000, TargetPort: 9000, Mode: overlay.PublishIngress, Backends: []netip.Addr{a("198.19.0.7")}},
		{Service: "api-name", Protocol: overlay.UDP, PublishedPort: 9000, TargetPort: 53, Mode: overlay.PublishIngress, Backends: []netip.Addr{a("198.19.0.7")}},
	}
	// localHostPorts carries the service name as given.
	want[0].Service = "h"
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ports:\n%+v\nwant\n%+v", got, want)
	}
	if len(conflicts) != 2 || !strings.Contains(conflicts[0], `service "clash"`) || !strings.Contains(conflicts[1], "target 81") {
		t.Errorf("conflicts = %q", conflicts)
	}

	// Without the node's ingress endpoint, only host-mode ports.
	got, _ = publishedPorts(ingress, false, host[:1])
	if len(got) != 1 || got[0].Mode != overlay.PublishHost {
		t.Errorf("without the mesh: %+v", got)
	}
}

func TestDesiredState(t *testing.T) {
	cfg := &overlayConfig{DataPathPort: 4789, Ingress: &ingressConfig{Network: overlay.Network{ID: "ing", VNI: 4096, Subnet: pf("198.19.0.0/24")}}}
	running, done, plain := testTask(), testTask(), &shoalpb.Task{Id: "t3"}
	done.Id = "t2"
	recs := []*taskdb.Record{
		{Task: running, Status: &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_RUNNING}},
		{Task: done, Status: &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_COMPLETE}},
		{Task: plain},
	}
	d := desiredState(recs, cfg)
	if !reflect.DeepEqual(d.Tasks, []string{"t1"}) || len(d.Networks) != 2 || d.Networks[0].ID != "ing" || d.Networks[1].ID != "front" {
		t.Fatalf("desired = %+v", d)
	}
}

func TestParseOverlayOptions(t *testing.T) {
	o, err := parseOverlayOptions(Config{})
	if err != nil || o.egress != pf(DefaultEgressSubnet) || o.resolvConf != DefaultResolvConf || o.netnsFD != -1 {
		t.Fatalf("defaults: %+v, %v", o, err)
	}
	if o, err := parseOverlayOptions(Config{EgressSubnet: "none"}); err != nil || o.egress.IsValid() {
		t.Errorf("none: %+v, %v", o, err)
	}
	for _, bad := range []string{"198.18.0.1/16", "fd00::/64", "198.18.0.0/30", "nope"} {
		if _, err := parseOverlayOptions(Config{EgressSubnet: bad}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
}

// TestOverlayStatePersistence: what a restarted daemon reads back is what
// the previous run wrote: the cluster's configuration and, per task, the
// endpoints it had published (ports included).
func TestOverlayStatePersistence(t *testing.T) {
	dir := t.TempDir()
	o, err := newOverlay(slog.New(slog.DiscardHandler), "node1", dir, "198.18.0.3:2377", overlayOptions{netnsFD: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer o.stop(false)
	if c, err := o.loadConfig(); c != nil || err != nil {
		t.Fatalf("config before any: %+v, %v", c, err)
	}
	cfg, err := configFromProto(&shoalpb.OverlayConfig{DataPathPort: 4789, InternalNetworks: []string{"b"},
		Ingress: &shoalpb.NetworkAttachment{NetworkId: "ing", Vni: 4096, Subnet: "198.19.0.0/24", Gateway: "198.19.0.1", Addresses: []string{"198.19.0.3/24"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.saveConfig(cfg); err != nil {
		t.Fatal(err)
	}
	back, err := o.loadConfig()
	if err != nil || !back.equal(cfg) {
		t.Fatalf("config read back as %+v (%v), wrote %+v", back, err, cfg)
	}

	task := testTask()
	_, atts, _ := taskAttachments(task, cfg)
	eps, err := taskEndpoints(task, atts, "node1", a("198.18.0.3"), "ing")
	if err != nil {
		t.Fatal(err)
	}
	o.tasks["t1"] = &ovTask{id: "t1", eps: eps}
	o.tasks["t2"] = &ovTask{id: "t2"} // withdrawn: not kept
	o.saveEndpoints()
	got, err := o.loadEndpoints()
	if err != nil || len(got) != 1 || len(got["t1"]) != 2 {
		t.Fatalf("endpoints read back: %+v, %v", got, err)
	}
	for i, e := range got["t1"] {
		if !e.Equal(eps[i]) {
			t.Errorf("endpoint %d read back as %+v, wrote %+v", i, e, eps[i])
		}
	}

	// A damaged file is an error naming it, not an empty state.
	if err := os.WriteFile(o.configPath(), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := o.loadConfig(); err == nil || !strings.Contains(err.Error(), o.configPath()) {
		t.Errorf("damaged config: %v", err)
	}
}

// TestOnHeartbeatIgnoresRepeats: the config loop is woken only when a
// heartbeat brings a configuration that differs from the one applied or
// waiting.
func TestOnHeartbeatIgnoresRepeats(t *testing.T) {
	o, err := newOverlay(slog.New(slog.DiscardHandler), "node1", t.TempDir(), "198.18.0.3", overlayOptions{netnsFD: -1})
	if err != nil {
		t.Fatal(err)
	}
	// Stop the config loop first, so the pending configuration stays.
	o.cancel()
	o.wg.Wait()
	defer o.db.Close()
	pb := &shoalpb.OverlayConfig{DataPathPort: 4789}
	o.onHeartbeat(pb)
	if o.pendingCfg == nil || len(o.configs) != 1 {
		t.Fatalf("first configuration not queued: %+v", o.pendingCfg)
	}
	<-o.configs
	o.onHeartbeat(pb)
	if len(o.configs) != 0 {
		t.Error("a repeated configuration woke the config loop")
	}
	o.mu.Lock()
	o.cfg, o.pendingCfg = o.pendingCfg, nil
	o.mu.Unlock()
	o.onHeartbeat(pb)
	if len(o.configs) != 0 || o.pendingCfg != nil {
		t.Error("the applied configuration was queued again")
	}
	o.onHeartbeat(&shoalpb.OverlayConfig{DataPathPort: 7789})
	if len(o.configs) != 1 || o.pendingCfg.DataPathPort != 7789 {
		t.Error("a changed configuration was not queued")
	}
	o.onHeartbeat(&shoalpb.OverlayConfig{DataPathPort: 0})
	if o.pendingCfg.DataPathPort != 7789 {
		t.Error("an unusable configuration replaced a good one")
	}
}

// TestRestoreHold: after a restart, a pass programs neither the published
// ports nor the data-path filter, nor the peers and VIPs of the networks
// the previous run left, until the hold is over (DNS of held networks is
// synced at once); the data-path filter also waits for gossip to have
// reached the cluster, since until then the member list holds this node
// only.
func TestRestoreHold(t *testing.T) {
	o, err := newOverlay(slog.New(slog.DiscardHandler), "node1", t.TempDir(), "198.18.0.3:2377", overlayOptions{netnsFD: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer o.stop(false)
	now := time.Now()
	o.mu.Lock()
	o.holdForRestore(now)
	o.held["left"] = true
	for _, n := range []string{"left", "new"} {
		o.dirtyNets[n] = true
	}
	o.dirtyPorts, o.dirtyPeers = true, true
	p := o.planPass(now)
	o.mu.Unlock()
	if !slices.Equal(p.nets, []string{"new"}) || !slices.Equal(p.heldNets, []string{"left"}) || p.ports || p.peers {
		t.Fatalf("first pass while holding: %+v", p)
	}

	// Gossip joins: the hold ends restoreSettle later, not restoreHoldMax.
	o.gossipJoined()
	o.mu.Lock()
	p = o.planPass(now.Add(restoreSettle / 2))
	o.mu.Unlock()
	if len(p.nets) != 0 || !slices.Equal(p.heldNets, []string{"left"}) || p.ports || p.peers {
		t.Fatalf("pass before the settle time: %+v", p)
	}
	o.mu.Lock()
	p = o.planPass(now.Add(restoreSettle + time.Millisecond))
	again := o.planPass(now.Add(restoreSettle + 2*time.Millisecond))
	o.mu.Unlock()
	if !slices.Equal(p.nets, []string{"left"}) || len(p.heldNets) != 0 || !p.ports || !p.peers {
		t.Fatalf("pass after the hold: %+v", p)
	}
	if len(again.nets)+len(again.heldNets) != 0 || again.ports || again.peers {
		t.Fatalf("a second pass with nothing new programs %+v", again)
	}
}

// TestFilterWaitsForGossip: without a restart to hold for, ports are
// programmed at once but the data-path filter only once gossip has joined.
func TestFilterWaitsForGossip(t *testing.T) {
	o, err := newOverlay(slog.New(slog.DiscardHandler), "node1", t.TempDir(), "198.18.0.3:2377", overlayOptions{netnsFD: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer o.stop(false)
	o.mu.Lock()
	o.dirtyPorts, o.dirtyPeers = true, true
	p := o.planPass(time.Now())
	o.mu.Unlock()
	if !p.ports || p.peers {
		t.Fatalf("before gossip joined: %+v", p)
	}
	o.gossipJoined()
	o.mu.Lock()
	p = o.planPass(time.Now())
	o.mu.Unlock()
	if p.ports || !p.peers {
		t.Fatalf("after gossip joined: %+v", p)
	}
}
