package main

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

func TestServiceUpdateNetworksAndPorts(t *testing.T) {
	f := startFake(t)
	stored := storedWeb()
	stored.Spec.Task.Networks = []*shoalpb.NetworkAttachmentConfig{{Target: idFront, Aliases: []string{"www"}}, {Target: "b4ckb4ckb4ckb4ckb4ckb4ck0"}}
	stored.Spec.Endpoint = &shoalpb.EndpointSpec{Ports: []*shoalpb.PortConfig{
		{TargetPort: 80, PublishedPort: 8080},
		{TargetPort: 53, PublishedPort: 53, Protocol: shoalpb.PortConfig_PROTOCOL_UDP},
		{TargetPort: 443, PublishedPort: 8443},
	}}
	f.reply("GetService", &shoalpb.GetServiceResponse{Service: stored})
	f.reply("UpdateService", &shoalpb.UpdateServiceResponse{Service: stored})
	f.on("GetNetwork", func(req proto.Message) (proto.Message, error) {
		if req.(*shoalpb.GetNetworkRequest).NetworkRef == "front" {
			return &shoalpb.GetNetworkResponse{Network: fixtureNetworks()[0]}, nil
		}
		return nil, status.Error(codes.NotFound, "network not found")
	})
	// front by name, the other by its stored ID (a removed network).
	stdout, stderr, code := f.cli(t, "service", "update", "-d", "--network-rm", "front", "--network-rm", "b4ckb4ckb4ckb4ckb4ckb4ck0",
		"--network-add", "name=side,alias=api", "--publish-rm", "53/udp", "--publish-add", "8443:444", "--publish-add", "9000:90", "web")
	wantOutput(t, stdout, stderr, code, "web\n")
	got := f.requests("UpdateService")[0].(*shoalpb.UpdateServiceRequest).Spec
	if !proto.Equal(&shoalpb.TaskSpec{Networks: got.Task.Networks}, &shoalpb.TaskSpec{Networks: []*shoalpb.NetworkAttachmentConfig{{Target: "side", Aliases: []string{"api"}}}}) {
		t.Errorf("networks %v", got.Task.Networks)
	}
	want := &shoalpb.EndpointSpec{Ports: []*shoalpb.PortConfig{
		{TargetPort: 80, PublishedPort: 8080},
		{TargetPort: 444, PublishedPort: 8443},
		{TargetPort: 90, PublishedPort: 9000},
	}}
	if !proto.Equal(got.Endpoint, want) {
		t.Errorf("endpoint %v\nwant %v", got.Endpoint, want)
	}
	// Other parts of the spec are untouched.
	if got.Task.Container.Image != "nginx:1" || got.Labels["tier"] != "front" {
		t.Errorf("spec changed elsewhere: %v", got)
	}

	// Removing the last port leaves no endpoint spec; --endpoint-mode sets one.
	stdout, stderr, code = f.cli(t, "service", "update", "-d", "--publish-rm", "80", "--publish-rm", "53/udp", "--publish-rm", "443", "web")
	wantOutput(t, stdout, stderr, code, "web\n")
	if ep := f.requests("UpdateService")[1].(*shoalpb.UpdateServiceRequest).Spec.Endpoint; ep != nil {
		t.Errorf("endpoint after removing every port: %v", ep)
	}
	stdout, stderr, code = f.cli(t, "service", "update", "-d", "--endpoint-mode", "dnsrr", "web")
	wantOutput(t, stdout, stderr, code, "web\n")
	if ep := f.requests("UpdateService")[2].(*shoalpb.UpdateServiceRequest).Spec.Endpoint; ep.GetMode() != shoalpb.EndpointSpec_MODE_DNSRR || len(ep.GetPorts()) != 3 {
		t.Errorf("endpoint after --endpoint-mode dnsrr: %v", ep)
	}
	// Bad values are refused before anything is sent.
	_, stderr, code = f.cli(t, "service", "update", "-d", "--publish-add", "80:0", "web")
	if code != 1 || len(f.requests("UpdateService")) != 3 {
		t.Errorf("bad --publish-add: exit %d, stderr %q", code, stderr)
	}
}
