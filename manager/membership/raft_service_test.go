package membership

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/shoal-project/shoal/manager/caller"
	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/raftstore"
)

func TestRaftJoinAddsWantedManager(t *testing.T) {
	e := newEnv(t)
	e.addNodes(manager("m1"), manager("new"))
	// "new" joined with a manager token: wanted as a manager, not yet one.
	e.propose(&shoalpb.StoreAction{Target: &shoalpb.StoreAction_NodeStatusPatch{NodeStatusPatch: &shoalpb.NodeStatusPatch{
		NodeId: "new", SetRole: true, Role: shoalpb.NodeRole_NODE_ROLE_WORKER,
	}}})
	e.raft.setVoters("m1")
	srv := &RaftServer{Deps: e.deps}

	ctx := caller.With(context.Background(), caller.Caller{NodeID: "new", Role: caller.Manager})
	resp, err := srv.Join(ctx, &shoalpb.RaftJoinRequest{Addr: "198.18.0.20:4242"})
	if err != nil {
		t.Fatalf("Join: %v", err)
	}
	calls := e.raft.calls()
	if len(calls.added) != 1 || calls.added[0] != (raftstore.Server{ID: "new", Addr: "198.18.0.20:4242", Voter: true}) {
		t.Fatalf("AddVoter calls = %v, want one for new at 198.18.0.20:4242", calls.added)
	}
	n := e.mustNode("new")
	if n.Role != shoalpb.NodeRole_NODE_ROLE_MANAGER {
		t.Fatalf("observed role = %v, want manager", n.Role)
	}
	if n.AdvertiseAddr != "198.18.0.20:4242" {
		t.Fatalf("advertise address = %q", n.AdvertiseAddr)
	}
	if n.Meta.UpdatedAt != fixed.UnixNano() {
		t.Fatalf("updated_at = %d, want the fixed clock", n.Meta.UpdatedAt)
	}
	got := map[string]string{}
	for _, p := range resp.Managers {
		got[p.NodeId] = p.Addr
	}
	if len(got) != 2 || got["m1"] != addrOf("m1") || got["new"] != "198.18.0.20:4242" {
		t.Fatalf("managers = %v", resp.Managers)
	}
}

func TestRaftJoinRefusals(t *testing.T) {
	e := newEnv(t)
	e.addNodes(manager("m1"), worker("w1"), manager("wanted"))
	e.raft.setVoters("m1")
	srv := &RaftServer{Deps: e.deps}

	for _, tc := range []struct {
		name  string
		who   *caller.Caller
		addr  string
		code  codes.Code
		parts []string
	}{
		{"anonymous", nil, "198.18.0.21:4242", codes.PermissionDenied, []string{"manager certificate"}},
		{"worker certificate", &caller.Caller{NodeID: "wanted", Role: caller.Worker}, "198.18.0.21:4242", codes.PermissionDenied, []string{"manager certificate"}},
		{"not wanted as manager", &caller.Caller{NodeID: "w1", Role: caller.Manager}, "198.18.0.21:4242", codes.FailedPrecondition, []string{"w1", "not wanted as a manager"}},
		{"unknown node", &caller.Caller{NodeID: "ghost", Role: caller.Manager}, "198.18.0.21:4242", codes.NotFound, []string{"ghost"}},
		{"address without port", &caller.Caller{NodeID: "wanted", Role: caller.Manager}, "198.18.0.21", codes.InvalidArgument, []string{"198.18.0.21"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.who != nil {
				ctx = caller.With(ctx, *tc.who)
			}
			applied := e.st.AppliedIndex()
			_, err := srv.Join(ctx, &shoalpb.RaftJoinRequest{Addr: tc.addr})
			wantCode(t, err, tc.code, tc.parts...)
			if calls := e.raft.calls(); len(calls.added) != 0 {
				t.Fatalf("AddVoter called: %v", calls.added)
			}
			if e.st.AppliedIndex() != applied {
				t.Fatal("a refused join wrote to the store")
			}
		})
	}

	t.Run("raft refuses", func(t *testing.T) {
		e.raft.mu.Lock()
		e.raft.addErr = errInjected
		e.raft.mu.Unlock()
		before := e.mustNode("wanted")
		ctx := caller.With(context.Background(), caller.Caller{NodeID: "wanted", Role: caller.Manager})
		_, err := srv.Join(ctx, &shoalpb.RaftJoinRequest{Addr: "198.18.0.21:4242"})
		wantCode(t, err, codes.Unavailable, errInjected.Error())
		e.nodeUnchanged(before)
	})
}

func TestRaftLeave(t *testing.T) {
	setup := func(t *testing.T) (*env, *RaftServer) {
		e := newEnv(t)
		e.addNodes(manager("m1"), manager("m2"), manager("m3"))
		e.raft.setVoters("m1", "m2", "m3")
		return e, &RaftServer{Deps: e.deps}
	}
	leave := func(srv *RaftServer, id string) error {
		_, err := srv.Leave(caller.With(context.Background(), caller.Caller{NodeID: id, Role: caller.Manager}), &shoalpb.RaftLeaveRequest{})
		return err
	}

	t.Run("voter leaves with quorum", func(t *testing.T) {
		e, srv := setup(t)
		e.gossip.set(true, "m2", "m3")
		if err := leave(srv, "m3"); err != nil {
			t.Fatalf("Leave: %v", err)
		}
		if calls := e.raft.calls(); len(calls.removed) != 1 || calls.removed[0] != "m3" {
			t.Fatalf("RemoveServer calls = %v, want [m3]", calls.removed)
		}
		n := e.mustNode("m3")
		if n.Spec.DesiredRole != shoalpb.NodeRole_NODE_ROLE_WORKER || n.Role != shoalpb.NodeRole_NODE_ROLE_WORKER {
			t.Fatalf("after leaving: desired %v observed %v, want worker and worker", n.Spec.DesiredRole, n.Role)
		}
	})
	t.Run("refused without quorum", func(t *testing.T) {
		e, srv := setup(t)
		e.gossip.set(true, "m3")
		before := e.mustNode("m3")
		wantCode(t, leave(srv, "m3"), codes.FailedPrecondition, "quorum")
		if calls := e.raft.calls(); len(calls.removed) != 0 {
			t.Fatalf("RemoveServer called: %v", calls.removed)
		}
		e.nodeUnchanged(before)
	})
	t.Run("leader refused", func(t *testing.T) {
		e, srv := setup(t)
		e.gossip.set(true, "m2", "m3")
		wantCode(t, leave(srv, "m1"), codes.FailedPrecondition, "leader")
		if calls := e.raft.calls(); len(calls.removed) != 0 {
			t.Fatalf("RemoveServer called: %v", calls.removed)
		}
	})
	t.Run("worker certificate refused", func(t *testing.T) {
		e, srv := setup(t)
		_, err := srv.Leave(caller.With(context.Background(), caller.Caller{NodeID: "m3", Role: caller.Worker}), &shoalpb.RaftLeaveRequest{})
		wantCode(t, err, codes.PermissionDenied)
		if calls := e.raft.calls(); len(calls.removed) != 0 {
			t.Fatalf("RemoveServer called: %v", calls.removed)
		}
	})
}

func TestManagersListsVotersWithGossipAddresses(t *testing.T) {
	e := newEnv(t)
	e.addNodes(manager("m1"), manager("m2"), worker("w1"))
	e.raft.setVoters("m1", "m2", "unstored")
	e.raft.mu.Lock()
	e.raft.servers = append(e.raft.servers, raftstore.Server{ID: "w1", Addr: addrOf("w1")})
	e.raft.mu.Unlock()

	got := Managers(e.st, e.raft)
	want := []*shoalpb.Peer{
		{NodeId: "m1", Addr: addrOf("m1"), GossipAddr: "m1.test:7946"},
		{NodeId: "m2", Addr: addrOf("m2"), GossipAddr: "m2.test:7946"},
		{NodeId: "unstored", Addr: addrOf("unstored")},
	}
	if len(got) != len(want) {
		t.Fatalf("managers = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].NodeId != want[i].NodeId || got[i].Addr != want[i].Addr || got[i].GossipAddr != want[i].GossipAddr {
			t.Fatalf("managers[%d] = %v, want %v", i, got[i], want[i])
		}
	}
}
