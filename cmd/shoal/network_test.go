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

const (
	idFront   = "fr0ntfr0ntfr0ntfr0ntfr0nt"
	idIngress = "1ngr3ss1ngr3ss1ngr3ss1ngr"
)

func fixtureNetworks() []*shoalpb.Network {
	return []*shoalpb.Network{
		{
			Id: idFront, Meta: &shoalpb.Meta{Version: 9, CreatedAt: ago(time.Hour)},
			Spec: &shoalpb.NetworkSpec{Name: "front", Driver: "overlay", Attachable: true, Labels: map[string]string{"tier": "web", "a": "1"},
				Ipam: &shoalpb.IPAMConfig{Subnet: "10.0.9.0/24", IpRange: "10.0.9.128/25"}},
			Vni:  4097,
			Ipam: &shoalpb.IPAMConfig{Subnet: "10.0.9.0/24", Gateway: "10.0.9.1", IpRange: "10.0.9.128/25"},
		},
		{
			Id: idIngress, Meta: &shoalpb.Meta{Version: 3, CreatedAt: ago(2 * time.Hour)},
			Spec: &shoalpb.NetworkSpec{Name: "ingress", Driver: "overlay", Ingress: true},
			Vni:  4096,
			Ipam: &shoalpb.IPAMConfig{Subnet: "10.0.0.0/24", Gateway: "10.0.0.1"},
		},
	}
}

func TestNetworkCreateRequest(t *testing.T) {
	f := startFake(t)
	f.reply("CreateNetwork", &shoalpb.CreateNetworkResponse{Network: fixtureNetworks()[0]})
	stdout, stderr, code := f.cli(t, "network", "create", "-d", "overlay", "--subnet", "10.0.9.0/24", "--gateway", "10.0.9.254",
		"--ip-range", "10.0.9.128/25", "--attachable", "--internal", "--label", "tier=web", "--label", "flag", "front")
	wantOutput(t, stdout, stderr, code, idFront+"\n")
	stdout, stderr, code = f.cli(t, "network", "create", "plain")
	wantOutput(t, stdout, stderr, code, idFront+"\n")
	wantRequests(t, f, "CreateNetwork",
		&shoalpb.CreateNetworkRequest{Spec: &shoalpb.NetworkSpec{
			Name: "front", Driver: "overlay", Attachable: true, Internal: true, Labels: map[string]string{"tier": "web", "flag": ""},
			Ipam: &shoalpb.IPAMConfig{Subnet: "10.0.9.0/24", Gateway: "10.0.9.254", IpRange: "10.0.9.128/25"},
		}},
		&shoalpb.CreateNetworkRequest{Spec: &shoalpb.NetworkSpec{Name: "plain", Driver: "overlay"}})
}

// TestNetworkAndEndpointUsageErrors checks that bad values are refused,
// naming them, before anything reaches the daemon.
func TestNetworkAndEndpointUsageErrors(t *testing.T) {
	f := startFake(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"network", "create", "-d", "bridge", "n"}, `invalid driver "bridge": only overlay networks are supported`},
		{[]string{"network", "create", "--subnet", "10.0.0.0/33", "n"}, `invalid subnet "10.0.0.0/33": must be an IPv4 CIDR such as 10.0.1.0/24`},
		{[]string{"network", "create", "--subnet", "10.0.1.7/24", "n"}, `invalid subnet "10.0.1.7/24": host bits are set (did you mean 10.0.1.0/24?)`},
		{[]string{"network", "create", "--subnet", "10.0.1.0/24", "--subnet", "10.0.2.0/24", "n"}, "invalid --subnet 10.0.1.0/24,10.0.2.0/24: a network has one subnet"},
		{[]string{"network", "create", "--gateway", "10.0.1.1", "n"}, `invalid gateway "10.0.1.1": a gateway needs a subnet (--subnet)`},
		{[]string{"network", "create", "--subnet", "10.0.1.0/24", "--gateway", "10.0.2.1", "n"}, `invalid gateway "10.0.2.1": it is not in subnet 10.0.1.0/24`},
		{[]string{"network", "create", "--subnet", "10.0.1.0/24", "--gateway", "nope", "n"}, `invalid gateway "nope": must be an IPv4 address`},
		{[]string{"network", "create", "--subnet", "10.0.1.0/24", "--ip-range", "10.0.2.0/25", "n"}, `invalid IP range "10.0.2.0/25": it is not within subnet 10.0.1.0/24`},
		{[]string{"network", "create", "--ip-range", "10.0.2.0/25", "n"}, `invalid IP range "10.0.2.0/25": an IP range needs a subnet (--subnet)`},
		{[]string{"network", "create"}, `"shoal network create" requires exactly 1 argument.`},
		{[]string{"network", "rm"}, `"shoal network rm" requires at least 1 argument.`},
		{[]string{"network", "inspect"}, `"shoal network inspect" requires at least 1 argument.`},
		{[]string{"network", "ls", "-f", "driver"}, `invalid argument "driver" for "-f, --filter" flag: bad format of filter "driver" (expected name=value)`},
		{[]string{"service", "create", "--name", "w", "-p", "80:70000", "img"}, `invalid argument "80:70000" for "-p, --publish" flag: invalid port "80:70000": invalid target port "70000": must be a number between 1 and 65535`},
		{[]string{"service", "create", "--name", "w", "-p", "8080-8081:80-81", "img"}, `invalid port "8080-8081:80-81": invalid published port "8080-8081": port ranges are not supported`},
		{[]string{"service", "create", "--name", "w", "-p", "80/sctp", "img"}, `invalid port "80/sctp": unknown protocol "sctp" (tcp or udp)`},
		{[]string{"service", "create", "--name", "w", "-p", "1.2.3.4:80:80", "img"}, `invalid port "1.2.3.4:80:80": must be [PUBLISHED:]TARGET[/PROTOCOL] (a host IP is not supported)`},
		{[]string{"service", "create", "--name", "w", "--publish", "published=80", "img"}, `invalid port "published=80": the target port is required (target=PORT)`},
		{[]string{"service", "create", "--name", "w", "--publish", "target=80,mode=global", "img"}, `invalid port field "mode=global": invalid publish mode "global": must be ingress or host`},
		{[]string{"service", "create", "--name", "w", "--publish", "target=80,proto=udp", "img"}, `invalid port field "proto=udp": unknown key "proto"`},
		{[]string{"service", "create", "--name", "w", "--endpoint-mode", "rr", "img"}, `invalid endpoint mode "rr": must be vip or dnsrr`},
		{[]string{"service", "create", "--name", "w", "--network", "alias=web", "img"}, `invalid network "alias=web": the network name is required (name=NETWORK)`},
		{[]string{"service", "create", "--name", "w", "--network", "name=front,alias=b@d", "img"}, `invalid network alias "b@d"`},
		{[]string{"service", "create", "--name", "w", "--network", "name=front,color=red", "img"}, `invalid network field "color=red": unknown key "color"`},
		{[]string{"swarm", "init", "--default-addr-pool", "10.0.0.0/33"}, `invalid default address pool "10.0.0.0/33": must be an IPv4 CIDR`},
		{[]string{"swarm", "init", "--default-addr-pool", "10.0.0.1/8"}, `invalid default address pool "10.0.0.1/8": host bits are set (did you mean 10.0.0.0/8?)`},
		{[]string{"swarm", "init", "--default-addr-pool-mask-length", "40"}, "invalid --default-addr-pool-mask-length 40"},
		{[]string{"swarm", "init", "--data-path-port", "80"}, "invalid --data-path-port 80: must be between 1024 and 49151"},
	} {
		stdout, stderr, code := f.cli(t, c.args...)
		if code != 1 || stdout != "" || !strings.Contains(stderr, c.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want it to contain %q", c.args, code, stdout, stderr, c.want)
		}
	}
	if m := f.methods(); len(m) != 0 {
		t.Errorf("bad command lines reached the daemon: %v", m)
	}
}

func TestNetworkLs(t *testing.T) {
	f := startFake(t)
	f.reply("ListNetworks", &shoalpb.ListNetworksResponse{Networks: fixtureNetworks()})
	stdout, stderr, code := f.cli(t, "network", "ls")
	wantOutput(t, stdout, stderr, code, ""+
		"NETWORK ID     NAME      DRIVER    SCOPE\n"+
		"fr0ntfr0ntfr   front     overlay   swarm\n"+
		"1ngr3ss1ngr3   ingress   overlay   swarm\n")
	stdout, stderr, code = f.cli(t, "network", "ls", "-q", "--no-trunc", "-f", "driver=overlay", "--filter", "label=tier")
	wantOutput(t, stdout, stderr, code, idFront+"\n"+idIngress+"\n")
	stdout, stderr, code = f.cli(t, "network", "ls", "--format", "{{.Name}} {{.Labels}} {{.Internal}}")
	wantOutput(t, stdout, stderr, code, "front a=1,tier=web false\ningress  false\n")
	got := f.requests("ListNetworks")[1].(*shoalpb.ListNetworksRequest)
	if got.Filters["driver"].GetValues()[0] != "overlay" || got.Filters["label"].GetValues()[0] != "tier" {
		t.Errorf("filters sent: %v", got.Filters)
	}
}

func TestNetworkInspect(t *testing.T) {
	f := startFake(t)
	f.on("GetNetwork", func(req proto.Message) (proto.Message, error) {
		for _, n := range fixtureNetworks() {
			if n.Spec.Name == req.(*shoalpb.GetNetworkRequest).NetworkRef {
				return &shoalpb.GetNetworkResponse{Network: n}, nil
			}
		}
		return nil, status.Errorf(codes.NotFound, "network %s not found", req.(*shoalpb.GetNetworkRequest).NetworkRef)
	})
	stdout, stderr, code := f.cli(t, "network", "inspect", "front")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(stdout)); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout)
	}
	want := `[{"Name":"front","Id":"` + idFront + `","Created":"2026-03-14T08:30:00Z","Scope":"swarm","Driver":"overlay","EnableIPv6":false,` +
		`"IPAM":{"Driver":"default","Config":[{"Subnet":"10.0.9.0/24","IPRange":"10.0.9.128/25","Gateway":"10.0.9.1"}]},` +
		`"Internal":false,"Attachable":true,"Ingress":false,"Options":{"com.docker.network.driver.overlay.vxlanid_list":"4097"},` +
		`"Labels":{"a":"1","tier":"web"}}]`
	if compact.String() != want {
		t.Errorf("inspect\n got %s\nwant %s", compact.String(), want)
	}
	stdout, stderr, code = f.cli(t, "network", "inspect", "-f", "{{.Name}} {{.Ingress}} {{(index .IPAM.Config 0).Subnet}}", "ingress", "nope")
	if code != 1 || stdout != "ingress true 10.0.0.0/24\n" || stderr != "Error: No such network: nope\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestNetworkRm(t *testing.T) {
	f := startFake(t)
	f.on("RemoveNetwork", func(req proto.Message) (proto.Message, error) {
		switch req.(*shoalpb.RemoveNetworkRequest).NetworkRef {
		case "front":
			return nil, status.Error(codes.FailedPrecondition, "network front is in use by service web")
		case "nope":
			return nil, status.Error(codes.NotFound, "network nope not found")
		}
		return &shoalpb.RemoveNetworkResponse{}, nil
	})
	stdout, stderr, code := f.cli(t, "network", "rm", "back", "front", "nope", "other")
	if code != 1 || stdout != "back\nother\n" ||
		stderr != "Error response from daemon: network front is in use by service web\nError: No such network: nope\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestServiceCreateNetworksAndPorts(t *testing.T) {
	got := createSpec(t, "--name", "web", "--network", "front", "--network", "name=back,alias=api,alias=www",
		"--endpoint-mode", "vip", "-p", "8080:80", "-p", "53/udp", "--publish", "published=9000,target=90,protocol=udp,mode=host", "nginx")
	wantSpec(t, got, &shoalpb.ServiceSpec{
		Name: "web",
		Mode: &shoalpb.ServiceSpec_Replicated{Replicated: &shoalpb.ReplicatedService{Replicas: 1}},
		Task: &shoalpb.TaskSpec{
			Container: &shoalpb.ContainerSpec{Image: "nginx"},
			Networks:  []*shoalpb.NetworkAttachmentConfig{{Target: "front"}, {Target: "back", Aliases: []string{"api", "www"}}},
		},
		Endpoint: &shoalpb.EndpointSpec{Ports: []*shoalpb.PortConfig{
			{TargetPort: 80, PublishedPort: 8080},
			{TargetPort: 53, Protocol: shoalpb.PortConfig_PROTOCOL_UDP},
			{TargetPort: 90, PublishedPort: 9000, Protocol: shoalpb.PortConfig_PROTOCOL_UDP, PublishMode: shoalpb.PortConfig_PUBLISH_MODE_HOST},
		}},
	})
	got = createSpec(t, "--name", "db", "--endpoint-mode", "dnsrr", "postgres")
	if got.Endpoint.GetMode() != shoalpb.EndpointSpec_MODE_DNSRR || len(got.Endpoint.GetPorts()) != 0 {
		t.Errorf("dnsrr endpoint %v", got.Endpoint)
	}
}

func TestServicePortsColumn(t *testing.T) {
	port := func(pub, target uint32, udp, host bool) *shoalpb.PortConfig {
		p := &shoalpb.PortConfig{PublishedPort: pub, TargetPort: target}
		if udp {
			p.Protocol = shoalpb.PortConfig_PROTOCOL_UDP
		}
		if host {
			p.PublishMode = shoalpb.PortConfig_PUBLISH_MODE_HOST
		}
		return p
	}
	for _, tc := range []struct {
		svc  *shoalpb.Service
		want string
	}{
		{&shoalpb.Service{}, ""},
		{&shoalpb.Service{Endpoint: &shoalpb.Endpoint{Ports: []*shoalpb.PortConfig{port(8080, 80, false, false)}}}, "*:8080->80/tcp"},
		{&shoalpb.Service{Endpoint: &shoalpb.Endpoint{Ports: []*shoalpb.PortConfig{
			port(53, 53, true, false), port(8081, 81, false, false), port(8080, 80, false, false), port(9000, 90, false, true), port(8443, 443, false, false),
		}}}, "*:8080-8081->80-81/tcp, *:8443->443/tcp, *:53->53/udp"},
		// Before allocation, the ports asked for by number.
		{&shoalpb.Service{Spec: &shoalpb.ServiceSpec{Endpoint: &shoalpb.EndpointSpec{Ports: []*shoalpb.PortConfig{port(0, 80, false, false), port(8080, 81, false, false)}}}}, "*:8080->81/tcp"},
	} {
		if got := servicePorts(tc.svc); got != tc.want {
			t.Errorf("servicePorts(%v) = %q, want %q", tc.svc, got, tc.want)
		}
	}
}

func TestServiceInspectEndpoint(t *testing.T) {
	f := startFake(t)
	svc := inspectFixture()
	svc.Spec.Task.Networks = []*shoalpb.NetworkAttachmentConfig{{Target: idFront, Aliases: []string{"www"}}}
	svc.Spec.Endpoint = &shoalpb.EndpointSpec{Ports: []*shoalpb.PortConfig{{TargetPort: 80, PublishedPort: 8080}, {TargetPort: 81}}}
	svc.Endpoint = &shoalpb.Endpoint{
		Spec:       svc.Spec.Endpoint,
		Ports:      []*shoalpb.PortConfig{{TargetPort: 80, PublishedPort: 8080}, {TargetPort: 81, PublishedPort: 30000}},
		VirtualIps: []*shoalpb.VirtualIP{{NetworkId: idFront, Addr: "10.0.9.2/24"}, {NetworkId: idIngress, Addr: "10.0.0.5/24"}},
	}
	f.reply("GetService", &shoalpb.GetServiceResponse{Service: svc})
	f.reply("ListNetworks", &shoalpb.ListNetworksResponse{Networks: fixtureNetworks()})
	stdout, stderr, code := f.cli(t, "service", "inspect", "web")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(stdout)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"Networks":[{"Target":"` + idFront + `","Aliases":["www"]}]`,
		`"EndpointSpec":{"Mode":"vip","Ports":[{"Protocol":"tcp","TargetPort":80,"PublishedPort":8080,"PublishMode":"ingress"},{"Protocol":"tcp","TargetPort":81,"PublishedPort":0,"PublishMode":"ingress"}]}`,
		`"Endpoint":{"Spec":{"Mode":"vip","Ports":[`,
		`"Ports":[{"Protocol":"tcp","TargetPort":80,"PublishedPort":8080,"PublishMode":"ingress"},{"Protocol":"tcp","TargetPort":81,"PublishedPort":30000,"PublishMode":"ingress"}],` +
			`"VirtualIPs":[{"NetworkID":"` + idFront + `","Addr":"10.0.9.2/24"},{"NetworkID":"` + idIngress + `","Addr":"10.0.0.5/24"}]}`,
	} {
		if !strings.Contains(compact.String(), want) {
			t.Errorf("inspect output lacks %s:\n%s", want, compact.String())
		}
	}
	stdout, stderr, code = f.cli(t, "service", "inspect", "--pretty", "web")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	want := "" +
		"Networks:               front\n" +
		"Endpoint Mode:          vip\n" +
		"Ports:\n" +
		" PublishedPort = 8080\n  Protocol = tcp\n  TargetPort = 80\n  PublishMode = ingress\n" +
		" PublishedPort = 30000\n  Protocol = tcp\n  TargetPort = 81\n  PublishMode = ingress\n" +
		"Virtual IPs:\n front: 10.0.9.2/24\n ingress: 10.0.0.5/24\n"
	if !strings.HasSuffix(stdout, want) {
		t.Errorf("pretty output\n%s\nwant it to end with\n%s", stdout, want)
	}
}

func TestSwarmInitNetworkFlags(t *testing.T) {
	f := startFake(t)
	f.reply("Init", &shoalpb.InitResponse{NodeId: idAlpha})
	f.reply("GetCluster", &shoalpb.GetClusterResponse{Cluster: &shoalpb.Cluster{JoinTokens: &shoalpb.JoinTokens{Worker: "tok"}}})
	f.reply("GetNode", &shoalpb.GetNodeResponse{Node: fixtureNode(idAlpha)})
	_, stderr, code := f.cli(t, "swarm", "init", "--default-addr-pool", "198.19.0.0/16", "--default-addr-pool", "198.18.128.0/20",
		"--default-addr-pool-mask-length", "26", "--data-path-port", "7789")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	_, _, code = f.cli(t, "swarm", "init")
	if code != 0 {
		t.Fatal("plain init failed")
	}
	reqs := f.requests("Init")
	got := reqs[0].(*shoalpb.InitRequest)
	if strings.Join(got.DefaultAddrPool, " ") != "198.19.0.0/16 198.18.128.0/20" || got.SubnetSize != 26 || got.DataPathPort != 7789 {
		t.Errorf("init request %v", got)
	}
	if plain := reqs[1].(*shoalpb.InitRequest); plain.DefaultAddrPool != nil || plain.SubnetSize != 0 || plain.DataPathPort != 0 {
		t.Errorf("plain init request %v", plain)
	}
}

func TestInfoShowsNetworkConfig(t *testing.T) {
	f := startFake(t)
	f.reply("Info", &shoalpb.InfoResponse{
		NodeId: idAlpha, NodeName: "alpha", LocalNodeState: "active", ControlAvailable: true, ClusterId: "clus", Managers: 1, Nodes: 1,
		DefaultAddrPool: []string{"198.19.0.0/16", "198.18.128.0/20"}, SubnetSize: 24, DataPathPort: 4789,
	})
	stdout, stderr, code := f.cli(t, "info")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	want := "  Nodes: 1\n  Default Address Pool: 198.19.0.0/16 198.18.128.0/20\n  SubnetSize: 24\n  Data Path Port: 4789\n  Raft:\n"
	if !strings.Contains(stdout, want) {
		t.Errorf("info\n%s\nwant it to contain\n%s", stdout, want)
	}
	stdout, _, _ = f.cli(t, "info", "--format", "{{.Swarm.Cluster.DefaultAddrPool}} {{.Swarm.Cluster.SubnetSize}} {{.Swarm.Cluster.DataPathPort}}")
	if stdout != "[198.19.0.0/16 198.18.128.0/20] 24 4789\n" {
		t.Errorf("info --format = %q", stdout)
	}
}
