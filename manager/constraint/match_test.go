package constraint

import (
	"testing"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// node returns a fully described worker; opts adjust it.
func node(opts ...func(*shoalpb.Node)) *shoalpb.Node {
	n := &shoalpb.Node{
		Id:   "n1abc",
		Role: shoalpb.NodeRole_NODE_ROLE_WORKER,
		Spec: &shoalpb.NodeSpec{Labels: map[string]string{"zone": "eu-1", "Tier": "Front", "empty": ""}},
		Description: &shoalpb.NodeDescription{
			Hostname:     "Host-1",
			Platform:     &shoalpb.Platform{Os: "linux", Architecture: "x86_64"},
			EngineLabels: map[string]string{"storage": "ssd"},
		},
		Status: &shoalpb.NodeStatus{State: shoalpb.NodeState_NODE_STATE_READY, Addr: "10.1.2.3"},
	}
	for _, o := range opts {
		o(n)
	}
	return n
}

func withAddr(a string) func(*shoalpb.Node) {
	return func(n *shoalpb.Node) { n.Status.Addr = a }
}

func TestMatch(t *testing.T) {
	manager := func(n *shoalpb.Node) { n.Role = shoalpb.NodeRole_NODE_ROLE_MANAGER }
	desiredManager := func(n *shoalpb.Node) { n.Spec.DesiredRole = shoalpb.NodeRole_NODE_ROLE_MANAGER }
	arm := func(n *shoalpb.Node) { n.Description.Platform.Architecture = "aarch64" }
	amd := func(n *shoalpb.Node) { n.Description.Platform.Architecture = "amd64" }
	noDesc := func(n *shoalpb.Node) { n.Description = nil }
	noSpec := func(n *shoalpb.Node) { n.Spec = nil }
	noStatus := func(n *shoalpb.Node) { n.Status = nil }

	tests := []struct {
		name string
		expr string
		node *shoalpb.Node
		want bool
	}{
		{"id equal", "node.id==n1abc", node(), true},
		{"id other", "node.id==n2", node(), false},
		{"id is case-sensitive", "node.id==N1ABC", node(), false},
		{"id not equal", "node.id!=n2", node(), true},
		{"id not equal self", "node.id!=n1abc", node(), false},

		{"hostname equal", "node.hostname==Host-1", node(), true},
		{"hostname ignores case", "node.hostname==host-1", node(), true},
		{"hostname other", "node.hostname==host-2", node(), false},
		{"hostname not equal", "node.hostname!=host-2", node(), true},
		{"hostname missing ==", "node.hostname==host-1", node(noDesc), false},
		{"hostname missing !=", "node.hostname!=host-1", node(noDesc), true},

		{"role worker", "node.role==worker", node(), true},
		{"role not manager", "node.role!=manager", node(), true},
		{"role manager on worker", "node.role==manager", node(), false},
		{"role manager", "node.role==Manager", node(manager), true},
		{"role reads observed role, not desired", "node.role==manager", node(desiredManager), false},

		{"os equal", "node.platform.os==linux", node(), true},
		{"os ignores case", "node.platform.os==LINUX", node(), true},
		{"os other", "node.platform.os==windows", node(), false},
		{"os not equal", "node.platform.os!=windows", node(), true},
		{"os missing ==", "node.platform.os==linux", node(noDesc), false},
		{"os missing !=", "node.platform.os!=linux", node(noDesc), true},

		{"arch alias amd64 for x86_64", "node.platform.arch==amd64", node(), true},
		{"arch exact x86_64", "node.platform.arch==x86_64", node(), true},
		{"arch alias x86_64 for amd64", "node.platform.arch==x86_64", node(amd), true},
		{"arch alias arm64 for aarch64", "node.platform.arch==arm64", node(arm), true},
		{"arch alias aarch64 for aarch64", "node.platform.arch==AARCH64", node(arm), true},
		{"arch mismatch", "node.platform.arch==arm64", node(), false},
		{"arch not equal via alias", "node.platform.arch!=amd64", node(), false},
		{"arch not equal", "node.platform.arch!=arm64", node(), true},
		{"arch missing ==", "node.platform.arch==amd64", node(noDesc), false},
		{"arch missing !=", "node.platform.arch!=amd64", node(noDesc), true},

		{"label equal", "node.labels.zone==eu-1", node(), true},
		{"label value is case-sensitive", "node.labels.zone==EU-1", node(), false},
		{"label name is case-sensitive", "node.labels.tier==Front", node(), false},
		{"label name as written", "node.labels.Tier==Front", node(), true},
		{"label prefix case-insensitive", "NODE.LABELS.zone==eu-1", node(), true},
		{"label other", "node.labels.zone==eu-2", node(), false},
		{"label not equal", "node.labels.zone!=eu-2", node(), true},
		{"label not equal same", "node.labels.zone!=eu-1", node(), false},
		{"label missing ==", "node.labels.rack==r1", node(), false},
		{"label missing !=", "node.labels.rack!=r1", node(), true},
		{"label present but empty !=", "node.labels.empty!=x", node(), true},
		{"label present but empty ==", "node.labels.empty==x", node(), false},
		{"labels missing entirely !=", "node.labels.zone!=eu-1", node(noSpec), true},
		{"labels missing entirely ==", "node.labels.zone==eu-1", node(noSpec), false},
		{"node label is not an engine label", "node.labels.storage==ssd", node(), false},

		{"engine label equal", "engine.labels.storage==ssd", node(), true},
		{"engine label other", "engine.labels.storage==hdd", node(), false},
		{"engine label not equal", "engine.labels.storage!=hdd", node(), true},
		{"engine label missing ==", "engine.labels.gpu==yes", node(), false},
		{"engine label missing !=", "engine.labels.gpu!=yes", node(), true},
		{"engine label is not a node label", "engine.labels.zone==eu-1", node(), false},

		{"ip equal", "node.ip==10.1.2.3", node(), true},
		{"ip other", "node.ip==10.1.2.4", node(), false},
		{"ip not equal", "node.ip!=10.1.2.4", node(), true},
		{"ip in cidr", "node.ip==10.1.0.0/16", node(), true},
		{"ip cidr written unmasked", "node.ip==10.1.9.9/16", node(), true},
		{"ip outside cidr", "node.ip==10.2.0.0/16", node(), false},
		{"ip not in cidr", "node.ip!=10.2.0.0/16", node(), true},
		{"ip in cidr, !=", "node.ip!=10.0.0.0/8", node(), false},
		{"ip with port in status", "node.ip==10.1.2.3", node(withAddr("10.1.2.3:2377")), true},
		{"ipv4-mapped status", "node.ip==10.1.2.3", node(withAddr("::ffff:10.1.2.3")), true},
		{"ipv6", "node.ip==fd00::/8", node(withAddr("fd00::12")), true},
		{"ipv6 with port", "node.ip==fd00::12", node(withAddr("[fd00::12]:2377")), true},
		{"ipv4 constraint on ipv6 node", "node.ip==10.0.0.0/8", node(withAddr("fd00::12")), false},
		{"ip unparsable status ==", "node.ip==10.1.2.3", node(withAddr("host-1")), false},
		{"ip unparsable status !=", "node.ip!=10.1.2.3", node(withAddr("host-1")), true},
		{"ip missing status ==", "node.ip==10.1.2.3", node(noStatus), false},
		{"ip missing status !=", "node.ip!=10.1.2.3", node(noStatus), true},

		{"nil node ==", "node.role==worker", nil, false},
		{"nil node !=", "node.labels.zone!=a", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, err := Parse([]string{tt.expr})
			if err != nil {
				t.Fatal(err)
			}
			if got := cs[0].Match(tt.node); got != tt.want {
				t.Errorf("%s Match = %v, want %v", tt.expr, got, tt.want)
			}
		})
	}
}

func TestMatchAll(t *testing.T) {
	tests := []struct {
		exprs []string
		want  bool
	}{
		{nil, true},
		{[]string{"node.role==worker"}, true},
		{[]string{"node.role==worker", "node.labels.zone==eu-1", "node.platform.os==linux"}, true},
		{[]string{"node.role==worker", "node.labels.zone==eu-2"}, false},
		{[]string{"node.labels.zone==eu-2", "node.role==worker"}, false},
		{[]string{"node.hostname!=host-1", "node.role==worker"}, false},
	}
	for _, tt := range tests {
		cs, err := Parse(tt.exprs)
		if err != nil {
			t.Fatal(err)
		}
		if got := MatchAll(cs, node()); got != tt.want {
			t.Errorf("MatchAll(%v) = %v, want %v", tt.exprs, got, tt.want)
		}
	}
}
