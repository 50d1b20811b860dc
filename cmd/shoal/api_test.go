package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Tests against an in-process fake daemon: what the CLI sends and prints.

func wantRequests(t *testing.T, f *fakeDaemon, method string, want ...proto.Message) {
	t.Helper()
	got := f.requests(method)
	if len(got) != len(want) {
		t.Fatalf("%s: got %d requests %v, want %d", method, len(got), got, len(want))
	}
	for i := range want {
		if !proto.Equal(want[i], got[i]) {
			t.Errorf("%s request %d:\n got {%v}\nwant {%v}", method, i, prototext.Format(got[i]), prototext.Format(want[i]))
		}
	}
}

func wantOutput(t *testing.T, stdout, stderr string, code int, wantStdout string) {
	t.Helper()
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if stdout != wantStdout {
		t.Errorf("stdout\n got %q\nwant %q", stdout, wantStdout)
	}
}

func TestNodeUpdateRequest(t *testing.T) {
	f := startFake(t)
	f.reply("UpdateNode", &shoalpb.UpdateNodeResponse{Node: fixtureNode(idCharlie)})
	stdout, stderr, code := f.cli(t, "node", "update", "--availability", "Drain",
		"--label-add", "zone=b", "--label-add", "ssd", "--label-add", "eq=a=b", "--label-rm", "old", "charlie")
	wantOutput(t, stdout, stderr, code, "charlie\n")
	wantRequests(t, f, "UpdateNode", &shoalpb.UpdateNodeRequest{
		NodeRef:         "charlie",
		SetAvailability: true,
		Availability:    shoalpb.NodeAvailability_NODE_AVAILABILITY_DRAIN,
		LabelsAdd:       map[string]string{"zone": "b", "ssd": "", "eq": "a=b"},
		LabelsRm:        []string{"old"},
	})

	// Only a role: availability and labels stay untouched.
	stdout, stderr, code = f.cli(t, "node", "update", "--role", "manager", "charlie")
	wantOutput(t, stdout, stderr, code, "charlie\n")
	got := f.requests("UpdateNode")[1].(*shoalpb.UpdateNodeRequest)
	if !got.SetRole || got.Role != shoalpb.NodeRole_NODE_ROLE_MANAGER || got.SetAvailability || got.LabelsAdd != nil || got.LabelsRm != nil {
		t.Errorf("role-only update sent %v", got)
	}
}

func TestSwarmUpdateSendsOnlyChanged(t *testing.T) {
	f := startFake(t)
	f.reply("UpdateCluster", &shoalpb.UpdateClusterResponse{})
	stdout, stderr, code := f.cli(t, "swarm", "update", "--task-history-limit", "3")
	wantOutput(t, stdout, stderr, code, "Swarm updated.\n")
	stdout, stderr, code = f.cli(t, "swarm", "update", "--cert-expiry", "48h", "--dispatcher-heartbeat", "5s", "--snapshot-interval", "500")
	wantOutput(t, stdout, stderr, code, "Swarm updated.\n")
	wantRequests(t, f, "UpdateCluster",
		&shoalpb.UpdateClusterRequest{SetTaskHistoryLimit: true, TaskHistoryLimit: 3},
		&shoalpb.UpdateClusterRequest{
			SetCertExpiry: true, CertExpiryNs: int64(48 * time.Hour),
			SetHeartbeatPeriod: true, HeartbeatPeriodNs: int64(5 * time.Second),
			SetSnapshotInterval: true, SnapshotInterval: 500,
		})
}

// clusterFixture sets up the calls swarm init and join-token make.
func clusterFixture(f *fakeDaemon) {
	f.reply("GetCluster", &shoalpb.GetClusterResponse{Cluster: &shoalpb.Cluster{
		Id:         "clus",
		JoinTokens: &shoalpb.JoinTokens{Worker: "SWMTKN-1-worker", Manager: "SWMTKN-1-manager"},
	}})
	f.on("GetNode", func(req proto.Message) (proto.Message, error) {
		if n := fixtureNode(req.(*shoalpb.GetNodeRequest).NodeRef); n != nil {
			return &shoalpb.GetNodeResponse{Node: n}, nil
		}
		return nil, status.Errorf(codes.NotFound, "node %s not found: object does not exist", req.(*shoalpb.GetNodeRequest).NodeRef)
	})
	f.reply("Info", &shoalpb.InfoResponse{NodeId: idAlpha, LocalNodeState: "active", ControlAvailable: true, NodeAddr: "10.0.0.1"})
}

func TestSwarmInit(t *testing.T) {
	f := startFake(t)
	clusterFixture(f)
	f.reply("Init", &shoalpb.InitResponse{NodeId: idAlpha})
	stdout, stderr, code := f.cli(t, "swarm", "init", "--advertise-addr", "10.0.0.1")
	wantOutput(t, stdout, stderr, code, "Swarm initialized: current node ("+idAlpha+") is now a manager.\n\n"+
		"To add a worker to this swarm, run the following command:\n\n"+
		"    shoal swarm join --token SWMTKN-1-worker 10.0.0.1:2377\n\n"+
		"To add a manager to this swarm, run 'shoal swarm join-token manager' and follow the instructions.\n\n")
	wantRequests(t, f, "Init", &shoalpb.InitRequest{
		AdvertiseAddr:         "10.0.0.1",
		DispatcherHeartbeatNs: int64(time.Second),
		CertExpiryNs:          int64(90 * 24 * time.Hour),
		TaskHistoryLimit:      5,
	})
}

func TestSwarmJoinToken(t *testing.T) {
	f := startFake(t)
	clusterFixture(f)
	f.reply("UpdateCluster", &shoalpb.UpdateClusterResponse{})

	stdout, stderr, code := f.cli(t, "swarm", "join-token", "worker")
	wantOutput(t, stdout, stderr, code, "To add a worker to this swarm, run the following command:\n\n"+
		"    shoal swarm join --token SWMTKN-1-worker 10.0.0.1:2377\n\n")

	stdout, stderr, code = f.cli(t, "swarm", "join-token", "-q", "manager")
	wantOutput(t, stdout, stderr, code, "SWMTKN-1-manager\n")

	stdout, stderr, code = f.cli(t, "swarm", "join-token", "--rotate", "manager")
	wantOutput(t, stdout, stderr, code, "Successfully rotated manager join token.\n\n"+
		"To add a manager to this swarm, run the following command:\n\n"+
		"    shoal swarm join --token SWMTKN-1-manager 10.0.0.1:2377\n\n")
	wantRequests(t, f, "UpdateCluster", &shoalpb.UpdateClusterRequest{RotateManagerToken: true})
}

func TestSwarmJoinAndLeave(t *testing.T) {
	f := startFake(t)
	f.on("Join", func(req proto.Message) (proto.Message, error) {
		return &shoalpb.JoinResponse{NodeId: "x", Manager: req.(*shoalpb.JoinRequest).Token == "SWMTKN-1-manager"}, nil
	})
	f.reply("Leave", &shoalpb.LeaveResponse{})

	stdout, stderr, code := f.cli(t, "swarm", "join", "--token", "SWMTKN-1-worker", "--listen-addr", "0.0.0.0:4000", "10.0.0.1:2377")
	wantOutput(t, stdout, stderr, code, "This node joined a swarm as a worker.\n")
	stdout, stderr, code = f.cli(t, "swarm", "join", "--token", "SWMTKN-1-manager", "10.0.0.1")
	wantOutput(t, stdout, stderr, code, "This node joined a swarm as a manager.\n")
	wantRequests(t, f, "Join",
		&shoalpb.JoinRequest{RemoteAddr: "10.0.0.1:2377", Token: "SWMTKN-1-worker", ListenAddr: "0.0.0.0:4000"},
		&shoalpb.JoinRequest{RemoteAddr: "10.0.0.1", Token: "SWMTKN-1-manager"})

	stdout, stderr, code = f.cli(t, "swarm", "leave", "--force")
	wantOutput(t, stdout, stderr, code, "Node left the swarm.\n")
	wantRequests(t, f, "Leave", &shoalpb.LeaveRequest{Force: true})
}

func TestNodeLsThroughDaemon(t *testing.T) {
	f := startFake(t)
	f.reply("ListNodes", &shoalpb.ListNodesResponse{Nodes: fixtureNodes()})
	f.reply("Info", &shoalpb.InfoResponse{NodeId: idBravo, LocalNodeState: "active", ControlAvailable: true})

	stdout, stderr, code := f.cli(t, "node", "ls", "-f", "role=manager", "-f", "name=al", "-f", "name=br", "-f", "node.label=zone=a")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	lines := strings.Split(stdout, "\n")
	if !strings.HasPrefix(lines[0], "ID ") || !strings.Contains(lines[0], "MANAGER STATUS   ENGINE VERSION") {
		t.Errorf("header %q", lines[0])
	}
	if !strings.HasPrefix(lines[2], idBravo+" *") {
		t.Errorf("self marker missing: %q", lines[2])
	}
	wantRequests(t, f, "ListNodes", &shoalpb.ListNodesRequest{Filters: map[string]*shoalpb.FilterValues{
		"role":       {Values: []string{"manager"}},
		"name":       {Values: []string{"al", "br"}},
		"node.label": {Values: []string{"zone=a"}},
	}})

	stdout, stderr, code = f.cli(t, "node", "ls", "-q")
	wantOutput(t, stdout, stderr, code, strings.Join([]string{idAlpha, idBravo, idCharlie, idDelta}, "\n")+"\n")
}

func TestNodeInspectSelfAndMissing(t *testing.T) {
	f := startFake(t)
	clusterFixture(f)
	stdout, stderr, code := f.cli(t, "node", "inspect", "--format", "{{.ID}} {{.Spec.Role}}", "self", "nosuch", idCharlie)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if want := idAlpha + " manager\n" + idCharlie + " worker\n"; stdout != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
	if want := "Error: No such node: nosuch\n"; stderr != want {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
	wantRequests(t, f, "GetNode",
		&shoalpb.GetNodeRequest{NodeRef: idAlpha},
		&shoalpb.GetNodeRequest{NodeRef: "nosuch"},
		&shoalpb.GetNodeRequest{NodeRef: idCharlie})

	stdout, stderr, code = f.cli(t, "node", "inspect", "--pretty", idBravo)
	if code != 0 || stderr != "" || !strings.Contains(stdout, "Raft Status:           Reachable\n") {
		t.Errorf("exit %d, stderr %q, stdout:\n%s", code, stderr, stdout)
	}
}

func TestNodePromoteDemote(t *testing.T) {
	f := startFake(t)
	clusterFixture(f)
	f.reply("UpdateNode", &shoalpb.UpdateNodeResponse{})

	stdout, stderr, code := f.cli(t, "node", "promote", idCharlie, idAlpha)
	wantOutput(t, stdout, stderr, code, "Node "+idCharlie+" promoted to a manager in the swarm.\n"+
		"Node "+idAlpha+" is already a manager.\n")
	stdout, stderr, code = f.cli(t, "node", "demote", idBravo)
	wantOutput(t, stdout, stderr, code, "Manager "+idBravo+" demoted in the swarm.\n")
	wantRequests(t, f, "UpdateNode",
		&shoalpb.UpdateNodeRequest{NodeRef: idCharlie, SetRole: true, Role: shoalpb.NodeRole_NODE_ROLE_MANAGER},
		&shoalpb.UpdateNodeRequest{NodeRef: idBravo, SetRole: true, Role: shoalpb.NodeRole_NODE_ROLE_WORKER})
}

func TestNodeRm(t *testing.T) {
	f := startFake(t)
	f.on("RemoveNode", func(req proto.Message) (proto.Message, error) {
		if r := req.(*shoalpb.RemoveNodeRequest).NodeRef; r != "charlie" {
			return nil, status.Errorf(codes.FailedPrecondition, "node %s is not down and can't be removed", r)
		}
		return &shoalpb.RemoveNodeResponse{}, nil
	})
	stdout, stderr, code := f.cli(t, "node", "rm", "--force", "alpha", "charlie", "bravo")
	if code != 1 || stdout != "charlie\n" {
		t.Errorf("exit %d, stdout %q", code, stdout)
	}
	want := "Error response from daemon: node alpha is not down and can't be removed\n" +
		"Error response from daemon: node bravo is not down and can't be removed\n"
	if stderr != want {
		t.Errorf("stderr\n got %q\nwant %q", stderr, want)
	}
	wantRequests(t, f, "RemoveNode",
		&shoalpb.RemoveNodeRequest{NodeRef: "alpha", Force: true},
		&shoalpb.RemoveNodeRequest{NodeRef: "charlie", Force: true},
		&shoalpb.RemoveNodeRequest{NodeRef: "bravo", Force: true})
}

func TestInfo(t *testing.T) {
	f := startFake(t)
	f.reply("Info", &shoalpb.InfoResponse{
		NodeId: idAlpha, NodeName: "alpha", LocalNodeState: "active", ControlAvailable: true,
		ClusterId: "clus", Managers: 2, Nodes: 3, NodeAddr: "10.0.0.1",
		RemoteManagers: []*shoalpb.Peer{{NodeId: idBravo, Addr: "10.0.0.2:2377"}, {NodeId: idAlpha, Addr: "10.0.0.1:2377"}},
		ServerVersion:  "1.2.3", DataDir: "/var/lib/shoal", RaftLeader: idAlpha,
		HeartbeatPeriodNs: int64(time.Second), CertExpiryNs: int64(90 * 24 * time.Hour), RaftAppliedIndex: 42,
	})
	stdout, stderr, code := f.cli(t, "info")
	wantOutput(t, stdout, stderr, code, "Client:\n Version: "+version+"\n\nServer:\n"+
		" Server Version: 1.2.3\n"+
		" Swarm: active\n"+
		"  NodeID: "+idAlpha+"\n"+
		"  Is Manager: true\n"+
		"  ClusterID: clus\n"+
		"  Managers: 2\n"+
		"  Nodes: 3\n"+
		"  Raft:\n"+
		"   Leader: "+idAlpha+"\n"+
		"   Applied Index: 42\n"+
		"  Dispatcher:\n"+
		"   Heartbeat Period: 1 second\n"+
		"  CA Configuration:\n"+
		"   Expiry Duration: 3 months\n"+
		"  Node Address: 10.0.0.1\n"+
		"  Manager Addresses:\n"+
		"   10.0.0.1:2377\n"+
		"   10.0.0.2:2377\n"+
		" Name: alpha\n"+
		" Data Root Dir: /var/lib/shoal\n")

	stdout, stderr, code = f.cli(t, "info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.Managers}} {{len .Swarm.RemoteManagers}}")
	wantOutput(t, stdout, stderr, code, "active 2 2\n")

	f.reply("Info", &shoalpb.InfoResponse{NodeName: "alpha", LocalNodeState: "inactive", ServerVersion: "1.2.3", DataDir: "/d"})
	stdout, stderr, code = f.cli(t, "info")
	wantOutput(t, stdout, stderr, code, "Client:\n Version: "+version+"\n\nServer:\n Server Version: 1.2.3\n Swarm: inactive\n Name: alpha\n Data Root Dir: /d\n")
}

func TestVersion(t *testing.T) {
	f := startFake(t)
	f.reply("Version", &shoalpb.VersionResponse{Version: "9.9.9", GitCommit: "abc1234", GoVersion: "go1.26.8", Os: "linux", Arch: "amd64", ApiVersion: "1.0"})
	stdout, stderr, code := f.cli(t, "version")
	if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "Client:\n Version:      "+version+"\n") ||
		!strings.Contains(stdout, "\n\nServer:\n Version:      9.9.9\n API version:  1.0\n Go version:   go1.26.8\n Git commit:   abc1234\n OS/Arch:      linux/amd64\n") {
		t.Errorf("exit %d, stderr %q, stdout:\n%s", code, stderr, stdout)
	}
	stdout, stderr, code = f.cli(t, "version", "--format", "{{.Server.Version}} {{.Client.Version}}")
	wantOutput(t, stdout, stderr, code, "9.9.9 "+version+"\n")
}

func TestCallDeadline(t *testing.T) {
	f := startFake(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	f.on("Info", func(proto.Message) (proto.Message, error) {
		<-release
		return &shoalpb.InfoResponse{}, nil
	})
	g := &globalOptions{host: f.host}
	err := g.withClient(func(c *client) error {
		_, err := callTimeoutAfter(context.Background(), c, 200*time.Millisecond, c.daemon.Info, &shoalpb.InfoRequest{})
		return err
	})
	if want := "the Shoal daemon at " + f.host + " did not answer within 200ms"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}
