package controlapi_test

import (
	"maps"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// filters builds a filter map from key, value pairs.
func filters(kv ...string) map[string]*shoalpb.FilterValues {
	out := map[string]*shoalpb.FilterValues{}
	if len(kv)%2 != 0 {
		panic("filters: odd number of arguments")
	}
	for i := 0; i < len(kv); i += 2 {
		fv := out[kv[i]]
		if fv == nil {
			fv = &shoalpb.FilterValues{}
			out[kv[i]] = fv
		}
		fv.Values = append(fv.Values, kv[i+1])
	}
	return out
}

// listFixture stores four nodes whose ID order differs from their hostname
// order: db-1 (ccc444), mgr-1 (aaa111), worker-1 (aaa222), worker-2 (bbb333).
func listFixture(t *testing.T) *env {
	e := newEnv(t)
	mgr := newNode("aaa111", "mgr-1", shoalpb.NodeRole_NODE_ROLE_MANAGER, shoalpb.NodeState_NODE_STATE_READY)
	mgr.Spec.Labels = map[string]string{"zone": "a", "ssd": ""}
	mgr.Description.EngineLabels = map[string]string{"os": "linux"}
	w1 := newNode("aaa222", "worker-1", shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_READY)
	w1.Spec.Labels = map[string]string{"zone": "b"}
	w2 := newNode("bbb333", "worker-2", shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_DOWN)
	db := newNode("ccc444", "db-1", shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_READY)
	db.Spec.Labels = map[string]string{"zone": "a"}
	e.addNodes(mgr, w1, w2, db)
	e.raft.setVoters("aaa111")
	return e
}

func TestListNodesFilters(t *testing.T) {
	e := listFixture(t)
	for _, tc := range []struct {
		name    string
		filters map[string]*shoalpb.FilterValues
		want    []string
	}{
		{"no filter, sorted by hostname", nil, []string{"ccc444", "aaa111", "aaa222", "bbb333"}},
		{"id prefix", filters("id", "aaa"), []string{"aaa111", "aaa222"}},
		{"id prefix, several values", filters("id", "bbb", "id", "ccc4"), []string{"ccc444", "bbb333"}},
		{"id full", filters("id", "aaa222"), []string{"aaa222"}},
		{"id no match", filters("id", "zzz"), []string{}},
		{"name substring", filters("name", "orker"), []string{"aaa222", "bbb333"}},
		{"name inner substring", filters("name", "ker-2"), []string{"bbb333"}},
		{"role manager", filters("role", "manager"), []string{"aaa111"}},
		{"role worker", filters("role", "worker"), []string{"ccc444", "aaa222", "bbb333"}},
		{"role either", filters("role", "manager", "role", "worker"), []string{"ccc444", "aaa111", "aaa222", "bbb333"}},
		{"node.label key only", filters("node.label", "zone"), []string{"ccc444", "aaa111", "aaa222"}},
		{"node.label key=value", filters("node.label", "zone=a"), []string{"ccc444", "aaa111"}},
		{"node.label value mismatch", filters("node.label", "zone=c"), []string{}},
		{"node.label empty value", filters("node.label", "ssd="), []string{"aaa111"}},
		{"node.label any of", filters("node.label", "zone=b", "node.label", "ssd"), []string{"aaa111", "aaa222"}},
		{"engine label", filters("label", "os=linux"), []string{"aaa111"}},
		{"node.label does not read engine labels", filters("node.label", "os"), []string{}},
		{"filters combine with and", filters("role", "worker", "node.label", "zone=a"), []string{"ccc444"}},
		{"empty value list ignored", map[string]*shoalpb.FilterValues{"name": {}}, []string{"ccc444", "aaa111", "aaa222", "bbb333"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e.srv.ListNodes(e.ctx, &shoalpb.ListNodesRequest{Filters: tc.filters})
			if err != nil {
				t.Fatalf("ListNodes: %v", err)
			}
			if got := ids(resp.Nodes); !slices.Equal(got, tc.want) {
				t.Fatalf("nodes = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestListNodesSortsByHostnameThenID(t *testing.T) {
	e := newEnv(t)
	e.addNodes(
		newNode("n3", "beta", shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_READY),
		newNode("n1", "gamma", shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_READY),
		newNode("n2", "beta", shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_READY),
		newNode("n0", "alpha", shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_READY),
	)
	resp, err := e.srv.ListNodes(e.ctx, &shoalpb.ListNodesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(resp.Nodes), []string{"n0", "n2", "n3", "n1"}; !slices.Equal(got, want) {
		t.Fatalf("order = %v, want %v", got, want)
	}
}

func TestListNodesRejectsBadFilters(t *testing.T) {
	e := listFixture(t)
	for _, tc := range []struct {
		name    string
		filters map[string]*shoalpb.FilterValues
		parts   []string
	}{
		{"unknown filter", filters("colour", "blue"), []string{"invalid filter", "colour"}},
		{"unknown filter beside a valid one", filters("id", "aaa", "nodename", "x"), []string{"nodename"}},
		{"unknown filter without values", map[string]*shoalpb.FilterValues{"bogus": {}}, []string{"bogus"}},
		{"bad role", filters("role", "boss"), []string{"role=boss"}},
		{"bad role among good ones", filters("role", "worker", "role", "Manager"), []string{"role=Manager"}},
		{"bad membership", filters("membership", "maybe"), []string{"membership=maybe"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e.srv.ListNodes(e.ctx, &shoalpb.ListNodesRequest{Filters: tc.filters})
			wantCode(t, err, codes.InvalidArgument, tc.parts...)
			if resp != nil {
				t.Fatalf("response = %v alongside an error", resp)
			}
		})
	}
}

func TestManagerStatusAnnotation(t *testing.T) {
	e := newEnv(t)
	e.addNodes(manager("lead"), manager("alive"), manager("dead"), worker("wrk", shoalpb.NodeState_NODE_STATE_READY))
	e.raft.setVoters("lead", "alive", "dead")
	// A non-voting member gets no manager status either.
	e.raft.addNonVoter("wrk")
	// The leader counts as reachable even when gossip does not list it.
	e.gossip.set(true, "alive", "wrk")
	e.gossip.set(false, "lead", "dead")

	want := map[string]*shoalpb.ManagerStatus{
		"lead":  {Addr: addrOf("lead"), Leader: true, Reachability: shoalpb.Reachability_REACHABILITY_REACHABLE},
		"alive": {Addr: addrOf("alive"), Reachability: shoalpb.Reachability_REACHABILITY_REACHABLE},
		"dead":  {Addr: addrOf("dead"), Reachability: shoalpb.Reachability_REACHABILITY_UNREACHABLE},
		"wrk":   nil,
	}
	check := func(t *testing.T, n *shoalpb.Node) {
		t.Helper()
		w, ok := want[n.Id]
		if !ok {
			t.Fatalf("unexpected node %s", n.Id)
		}
		got := n.ManagerStatus
		if (w == nil) != (got == nil) {
			t.Fatalf("node %s manager status = %v, want %v", n.Id, got, w)
		}
		if w != nil && (got.Addr != w.Addr || got.Leader != w.Leader || got.Reachability != w.Reachability) {
			t.Fatalf("node %s manager status = %v, want %v", n.Id, got, w)
		}
	}

	resp, err := e.srv.ListNodes(e.ctx, &shoalpb.ListNodesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Nodes) != len(want) {
		t.Fatalf("listed %d nodes, want %d", len(resp.Nodes), len(want))
	}
	for _, n := range resp.Nodes {
		check(t, n)
	}
	for id := range want {
		got, err := e.srv.GetNode(e.ctx, &shoalpb.GetNodeRequest{NodeRef: id})
		if err != nil {
			t.Fatalf("GetNode(%s): %v", id, err)
		}
		check(t, got.Node)
	}
	// The status is computed, never stored.
	if ms := e.mustNode("lead").ManagerStatus; ms != nil {
		t.Fatalf("stored node carries a manager status: %v", ms)
	}

	// Reachability follows gossip.
	e.gossip.set(true, "dead")
	got, err := e.srv.GetNode(e.ctx, &shoalpb.GetNodeRequest{NodeRef: "dead"})
	if err != nil {
		t.Fatal(err)
	}
	if r := got.Node.GetManagerStatus().GetReachability(); r != shoalpb.Reachability_REACHABILITY_REACHABLE {
		t.Fatalf("revived manager reachability = %v, want reachable", r)
	}
}

func TestGetNode(t *testing.T) {
	e := newEnv(t)
	e.addNodes(
		newNode("abc111", "alpha", shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_READY),
		newNode("abc222", "beta", shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_READY),
		newNode("xyz333", "twin", shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_READY),
		newNode("xyz444", "twin", shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_READY),
	)
	for ref, want := range map[string]string{
		"abc111": "abc111", // full ID
		"abc2":   "abc222", // unique prefix
		"beta":   "abc222", // hostname
		"xyz4":   "xyz444",
	} {
		resp, err := e.srv.GetNode(e.ctx, &shoalpb.GetNodeRequest{NodeRef: ref})
		if err != nil {
			t.Fatalf("GetNode(%q): %v", ref, err)
		}
		if resp.Node.Id != want {
			t.Fatalf("GetNode(%q) = %s, want %s", ref, resp.Node.Id, want)
		}
	}
	for _, ref := range []string{"abc", "twin"} {
		_, err := e.srv.GetNode(e.ctx, &shoalpb.GetNodeRequest{NodeRef: ref})
		wantCode(t, err, codes.InvalidArgument, ref, "ambiguous")
	}
	_, err := e.srv.GetNode(e.ctx, &shoalpb.GetNodeRequest{NodeRef: "no-such-node"})
	wantCode(t, err, codes.NotFound, "no-such-node")
	_, err = e.srv.GetNode(e.ctx, &shoalpb.GetNodeRequest{})
	wantCode(t, err, codes.NotFound)

	// The node handed out is a copy: changing it leaves the store alone.
	resp, err := e.srv.GetNode(e.ctx, &shoalpb.GetNodeRequest{NodeRef: "alpha"})
	if err != nil {
		t.Fatal(err)
	}
	resp.Node.Description.Hostname = "mutated"
	if h := e.mustNode("abc111").Description.Hostname; h != "alpha" {
		t.Fatalf("stored hostname = %q after changing a returned node", h)
	}
}

func TestUpdateNodeLabelsAndAvailability(t *testing.T) {
	e := newEnv(t)
	n := worker("wrk1", shoalpb.NodeState_NODE_STATE_READY)
	n.Spec.Labels = map[string]string{"keep": "1", "drop": "x"}
	e.addNodes(n)

	resp, err := e.srv.UpdateNode(e.ctx, &shoalpb.UpdateNodeRequest{
		NodeRef:   "host-wrk1",
		LabelsAdd: map[string]string{"zone": "eu", "keep": "2"},
		LabelsRm:  []string{"drop"},
	})
	if err != nil {
		t.Fatalf("UpdateNode labels: %v", err)
	}
	stored := e.mustNode("wrk1")
	wantLabels := map[string]string{"keep": "2", "zone": "eu"}
	if !maps.Equal(stored.Spec.Labels, wantLabels) {
		t.Fatalf("stored labels = %v, want %v", stored.Spec.Labels, wantLabels)
	}
	if !maps.Equal(resp.Node.Spec.Labels, wantLabels) {
		t.Fatalf("returned labels = %v, want %v", resp.Node.Spec.Labels, wantLabels)
	}
	if stored.Meta.UpdatedAt != fixed.UnixNano() {
		t.Fatalf("updated_at = %d, want the clock's %d", stored.Meta.UpdatedAt, fixed.UnixNano())
	}
	if stored.Spec.Availability != shoalpb.NodeAvailability_NODE_AVAILABILITY_ACTIVE {
		t.Fatalf("a label update changed availability to %v", stored.Spec.Availability)
	}

	for _, av := range []shoalpb.NodeAvailability{shoalpb.NodeAvailability_NODE_AVAILABILITY_DRAIN, shoalpb.NodeAvailability_NODE_AVAILABILITY_PAUSE, shoalpb.NodeAvailability_NODE_AVAILABILITY_ACTIVE} {
		resp, err = e.srv.UpdateNode(e.ctx, &shoalpb.UpdateNodeRequest{NodeRef: "wrk1", SetAvailability: true, Availability: av})
		if err != nil {
			t.Fatalf("UpdateNode availability %v: %v", av, err)
		}
		if got := e.mustNode("wrk1").Spec.Availability; got != av || resp.Node.Spec.Availability != av {
			t.Fatalf("availability stored %v, returned %v, want %v", got, resp.Node.Spec.Availability, av)
		}
		if !maps.Equal(e.mustNode("wrk1").Spec.Labels, wantLabels) {
			t.Fatalf("availability update changed labels to %v", e.mustNode("wrk1").Spec.Labels)
		}
	}

	// Promotion needs no check.
	if _, err := e.srv.UpdateNode(e.ctx, &shoalpb.UpdateNodeRequest{NodeRef: "wrk1", SetRole: true, Role: shoalpb.NodeRole_NODE_ROLE_MANAGER}); err != nil {
		t.Fatalf("promote: %v", err)
	}
	if r := e.mustNode("wrk1").Spec.DesiredRole; r != shoalpb.NodeRole_NODE_ROLE_MANAGER {
		t.Fatalf("desired role after promotion = %v", r)
	}
}

func TestUpdateNodeRefusesInvalidRequests(t *testing.T) {
	e := newEnv(t)
	e.addNodes(worker("wrk1", shoalpb.NodeState_NODE_STATE_READY))
	before := e.mustNode("wrk1")
	applied := e.st.AppliedIndex()
	for _, tc := range []struct {
		name  string
		req   *shoalpb.UpdateNodeRequest
		code  codes.Code
		parts []string
	}{
		{"invalid availability", &shoalpb.UpdateNodeRequest{NodeRef: "wrk1", SetAvailability: true, Availability: 7, LabelsAdd: map[string]string{"a": "b"}}, codes.InvalidArgument, []string{"availability", "7"}},
		{"invalid role", &shoalpb.UpdateNodeRequest{NodeRef: "wrk1", SetRole: true, Role: 9}, codes.InvalidArgument, []string{"role", "9"}},
		{"empty label key", &shoalpb.UpdateNodeRequest{NodeRef: "wrk1", LabelsAdd: map[string]string{"": "v"}}, codes.InvalidArgument, []string{"empty key"}},
		{"missing node", &shoalpb.UpdateNodeRequest{NodeRef: "ghost", SetAvailability: true, Availability: shoalpb.NodeAvailability_NODE_AVAILABILITY_DRAIN}, codes.NotFound, []string{"ghost"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.srv.UpdateNode(e.ctx, tc.req)
			wantCode(t, err, tc.code, tc.parts...)
			e.nodeUnchanged(before)
			if got := e.st.AppliedIndex(); got != applied {
				t.Fatalf("applied index moved from %d to %d", applied, got)
			}
		})
	}
}

func TestDemoteLastManagerRefused(t *testing.T) {
	e := newEnv(t)
	e.addNodes(manager("only"), worker("wrk", shoalpb.NodeState_NODE_STATE_READY))
	e.raft.setVoters("only")
	before := e.mustNode("only")
	_, err := e.srv.UpdateNode(e.ctx, &shoalpb.UpdateNodeRequest{NodeRef: "only", SetRole: true, Role: shoalpb.NodeRole_NODE_ROLE_WORKER})
	wantCode(t, err, codes.FailedPrecondition, "attempting to demote the last manager of the swarm")
	e.nodeUnchanged(before)
}

func TestDemoteRespectsQuorum(t *testing.T) {
	demote := func(e *env, id string) error {
		_, err := e.srv.UpdateNode(e.ctx, &shoalpb.UpdateNodeRequest{NodeRef: id, SetRole: true, Role: shoalpb.NodeRole_NODE_ROLE_WORKER})
		return err
	}
	setup := func(t *testing.T) *env {
		e := newEnv(t)
		e.addNodes(manager("m1"), manager("m2"), manager("m3"))
		e.raft.setVoters("m1", "m2", "m3") // m1 leads
		return e
	}

	t.Run("refused when the rest would lack a reachable majority", func(t *testing.T) {
		e := setup(t)
		e.gossip.set(true, "m2")
		e.gossip.set(false, "m3")
		before := e.mustNode("m2")
		// Without m2 only m1 of {m1, m3} is reachable: 1 < 2.
		wantCode(t, demote(e, "m2"), codes.FailedPrecondition, "m2", "quorum")
		e.nodeUnchanged(before)
	})
	t.Run("allowed for the unreachable manager", func(t *testing.T) {
		e := setup(t)
		e.gossip.set(true, "m2")
		e.gossip.set(false, "m3")
		// Without m3, m1 and m2 are both reachable.
		if err := demote(e, "m3"); err != nil {
			t.Fatalf("demote m3: %v", err)
		}
		if r := e.mustNode("m3").Spec.DesiredRole; r != shoalpb.NodeRole_NODE_ROLE_WORKER {
			t.Fatalf("m3 desired role = %v, want worker", r)
		}
	})
	t.Run("allowed when every manager is reachable", func(t *testing.T) {
		e := setup(t)
		e.gossip.set(true, "m2", "m3")
		if err := demote(e, "m2"); err != nil {
			t.Fatalf("demote m2: %v", err)
		}
		if r := e.mustNode("m2").Spec.DesiredRole; r != shoalpb.NodeRole_NODE_ROLE_WORKER {
			t.Fatalf("m2 desired role = %v, want worker", r)
		}
	})
}

func TestRemoveNode(t *testing.T) {
	remove := func(e *env, ref string, force bool) error {
		_, err := e.srv.RemoveNode(e.ctx, &shoalpb.RemoveNodeRequest{NodeRef: ref, Force: force})
		return err
	}
	// setup: m1 leads; voters m1, m2 (reachable), m3 (unreachable); a
	// ready worker and a down worker.
	setup := func(t *testing.T) *env {
		e := newEnv(t)
		e.addNodes(manager("m1"), manager("m2"), manager("m3"),
			worker("ready", shoalpb.NodeState_NODE_STATE_READY), worker("down", shoalpb.NodeState_NODE_STATE_DOWN))
		e.raft.setVoters("m1", "m2", "m3")
		e.gossip.set(true, "m2", "ready")
		return e
	}
	refused := func(t *testing.T, e *env, id string, force bool, code codes.Code, parts ...string) {
		t.Helper()
		before, cl := e.mustNode(id), e.cluster()
		wantCode(t, remove(e, id, force), code, parts...)
		e.nodeUnchanged(before)
		e.clusterUnchanged(cl)
	}
	removed := func(t *testing.T, e *env, id string) {
		t.Helper()
		if n := e.node(id); n != nil {
			t.Fatalf("node %s still stored: %v", id, n)
		}
		cl := e.cluster()
		if !slices.Contains(cl.RemovedNodes, id) {
			t.Fatalf("removed_nodes = %v, want it to hold %s", cl.RemovedNodes, id)
		}
		if cl.Meta.UpdatedAt != fixed.UnixNano() {
			t.Fatalf("cluster updated_at = %d, want %d", cl.Meta.UpdatedAt, fixed.UnixNano())
		}
	}

	t.Run("ready worker needs force", func(t *testing.T) {
		e := setup(t)
		refused(t, e, "ready", false, codes.FailedPrecondition, "ready", "is not down")
	})
	t.Run("ready worker with force", func(t *testing.T) {
		e := setup(t)
		if err := remove(e, "ready", true); err != nil {
			t.Fatal(err)
		}
		removed(t, e, "ready")
	})
	t.Run("down worker", func(t *testing.T) {
		e := setup(t)
		if err := remove(e, "host-down", false); err != nil {
			t.Fatalf("remove down worker: %v", err)
		}
		removed(t, e, "down")
		if got := e.cluster().RemovedNodes; len(got) != 1 {
			t.Fatalf("removed_nodes = %v, want only the removed node", got)
		}
		// Other nodes are untouched.
		if e.node("ready") == nil || e.node("m2") == nil {
			t.Fatal("removing one node removed others")
		}
	})
	t.Run("reachable manager refused even with force", func(t *testing.T) {
		e := setup(t)
		refused(t, e, "m2", true, codes.FailedPrecondition, "m2", "demoted")
		refused(t, e, "m2", false, codes.FailedPrecondition, "m2")
	})
	t.Run("unreachable manager needs force", func(t *testing.T) {
		e := setup(t)
		refused(t, e, "m3", false, codes.FailedPrecondition, "m3")
	})
	t.Run("unreachable manager with force", func(t *testing.T) {
		e := setup(t)
		if err := remove(e, "m3", true); err != nil {
			t.Fatalf("force-remove unreachable manager: %v", err)
		}
		removed(t, e, "m3")
	})
	t.Run("unreachable manager with force, quorum at stake", func(t *testing.T) {
		e := setup(t)
		e.addNodes(manager("m4"), manager("m5"))
		e.raft.setVoters("m1", "m2", "m3", "m4", "m5")
		// Without m3, only m1 and m2 of {m1, m2, m4, m5} are reachable.
		refused(t, e, "m3", true, codes.FailedPrecondition, "m3", "quorum")
	})
	t.Run("demoted voter is still a manager", func(t *testing.T) {
		e := setup(t)
		e.propose(&shoalpb.StoreAction{Target: &shoalpb.StoreAction_NodeSpecPatch{NodeSpecPatch: &shoalpb.NodeSpecPatch{
			NodeId: "m2", SetDesiredRole: true, DesiredRole: shoalpb.NodeRole_NODE_ROLE_WORKER,
		}}})
		refused(t, e, "m2", true, codes.FailedPrecondition, "m2")
	})
	t.Run("leader refused", func(t *testing.T) {
		e := setup(t)
		refused(t, e, "m1", true, codes.FailedPrecondition, "m1", "leader")
	})
	t.Run("missing node", func(t *testing.T) {
		e := setup(t)
		cl := e.cluster()
		wantCode(t, remove(e, "ghost", true), codes.NotFound, "ghost")
		e.clusterUnchanged(cl)
	})
}
