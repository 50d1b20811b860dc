package netdb

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

const waitTime = 5 * time.Second

func mustJoin(t *testing.T, db *DB, networks ...string) {
	t.Helper()
	for _, n := range networks {
		if err := db.JoinNetwork(n); err != nil {
			t.Fatal(err)
		}
	}
}

func mustPub(t *testing.T, db *DB, e Endpoint) Endpoint {
	t.Helper()
	if err := db.Publish(e); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestSubscribeSeesSnapshotThenEveryChange(t *testing.T) {
	db, err := New(Config{NodeID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mustJoin(t, db, "n", "m")
	e1 := mustPub(t, db, ep("n", "e1", "a", 1))
	mustPub(t, db, ep("m", "other", "a", 9))

	sub, snap := db.Subscribe("n")
	defer sub.Close()
	if len(snap) != 1 || !snap[0].Equal(e1) {
		t.Fatalf("snapshot = %+v, want e1", snap)
	}
	all, allSnap := db.Subscribe("")
	defer all.Close()
	if len(allSnap) != 2 {
		t.Fatalf("snapshot of every network has %d endpoints, want 2", len(allSnap))
	}

	e2 := mustPub(t, db, ep("n", "e2", "a", 2))
	e1b := ep("n", "e1", "a", 3)
	mustPub(t, db, e1b)
	mustPub(t, db, e1b) // no change, no event
	mustPub(t, db, ep("m", "other2", "a", 8))
	if err := db.Withdraw("n", "e2"); err != nil {
		t.Fatal(err)
	}
	if err := db.Withdraw("n", "never-there"); err != nil {
		t.Fatalf("withdrawing an unknown endpoint: %v", err)
	}
	if err := db.LeaveNetwork("n"); err != nil {
		t.Fatal(err)
	}

	want := []struct {
		typ      EventType
		ep, prev Endpoint
	}{
		{Added, e2, Endpoint{}},
		{Updated, e1b, e1},
		{Deleted, e2, Endpoint{}},
		{Deleted, e1b, Endpoint{}},
	}
	for i, w := range want {
		ev := nextEvent(t, sub, waitTime)
		if ev.Type != w.typ || !ev.Endpoint.Equal(w.ep) || !ev.Prev.Equal(w.prev) {
			t.Fatalf("event %d = %v %+v (prev %+v), want %v %+v (prev %+v)", i, ev.Type, ev.Endpoint, ev.Prev, w.typ, w.ep, w.prev)
		}
	}
	// The all-networks subscription also saw m's change, in order.
	var types []string
	for range 5 {
		ev := nextEvent(t, all, waitTime)
		types = append(types, ev.Type.String()+" "+ev.Endpoint.EndpointID)
	}
	if got := strings.Join(types, ", "); got != "added e2, updated e1, added other2, deleted e2, deleted e1" {
		t.Fatalf("all-networks events: %s", got)
	}
	if got := db.Networks(); len(got) != 1 || got[0] != "m" {
		t.Fatalf("Networks() = %v, want [m]", got)
	}

	sub.Close()
	for range sub.Events() {
		// Drain until the channel closes; Close must close it.
	}
	db.Close()
	if _, ok := <-all.Events(); ok {
		t.Fatal("a subscription outlived its DB")
	}
	if err := db.Publish(ep("m", "late", "a", 7)); err == nil {
		t.Fatal("Publish after Close succeeded")
	}
}

func TestPublishValidates(t *testing.T) {
	db, err := New(Config{NodeID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mustJoin(t, db, "n")
	good := ep("n", "e1", "", 1)

	for name, tc := range map[string]struct {
		mod  func(*Endpoint)
		want string
	}{
		"no network":    {func(e *Endpoint) { e.NetworkID = "" }, "no network ID"},
		"no endpoint":   {func(e *Endpoint) { e.EndpointID = "" }, "no endpoint ID"},
		"no IP":         {func(e *Endpoint) { e.IP = netip.Addr{} }, "no IP"},
		"short MAC":     {func(e *Endpoint) { e.MAC = e.MAC[:4] }, "not 6 bytes"},
		"no VTEP":       {func(e *Endpoint) { e.VTEP = netip.Addr{} }, "no VTEP"},
		"foreign owner": {func(e *Endpoint) { e.NodeID = "b" }, "not this node"},
		"not joined":    {func(e *Endpoint) { e.NetworkID = "m" }, "not joined"},
		"empty alias":   {func(e *Endpoint) { e.Aliases = []string{"ok", ""} }, "empty alias"},
		"too many names": {func(e *Endpoint) {
			for i := range 60 {
				e.Aliases = append(e.Aliases, fmt.Sprintf("a-rather-long-alias-%02d", i))
			}
		}, "the limit is"},
	} {
		e := good.Clone()
		tc.mod(&e)
		err := db.Publish(e)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Publish error %v, want one containing %q", name, err, tc.want)
		}
	}
	if got := db.Endpoints("n"); len(got) != 0 {
		t.Fatalf("invalid endpoints were stored: %+v", got)
	}

	// IPv4-mapped addresses are stored as plain IPv4.
	mapped := good.Clone()
	mapped.IP = netip.AddrFrom16(good.IP.As16())
	mustPub(t, db, mapped)
	if got, ok := db.Get("n", "e1"); !ok || got.IP != good.IP || got.NodeID != "a" {
		t.Fatalf("Get = %+v, %v; want IP %s owned by a", got, ok, good.IP)
	}
	if err := db.JoinNetwork(""); err == nil {
		t.Fatal("joining an empty network ID succeeded")
	}
}

func TestWithdrawRefusesOtherNodesEndpoints(t *testing.T) {
	net := newFakeNet(t)
	a, b := net.add("a", Config{}), net.add("b", Config{})
	mustJoin(t, a, "n")
	mustJoin(t, b, "n")
	e := mustPub(t, a, ep("n", "e1", "a", 1))
	net.gossip()
	waitView(t, b, "n", waitTime, e)
	if err := b.Withdraw("n", "e1"); err == nil || !strings.Contains(err.Error(), `belongs to node "a"`) {
		t.Fatalf("b withdrawing a's endpoint: %v", err)
	}
}

func TestUpdatesRelayThroughNodesOffTheNetwork(t *testing.T) {
	// a and c cannot reach each other and x has not joined n: a's
	// updates must still reach c, through x, and x must not store them.
	net := newFakeNet(t)
	a, x, c := net.add("a", Config{}), net.add("x", Config{}), net.add("c", Config{})
	net.cutLink("a", "c")
	mustJoin(t, a, "n")
	mustJoin(t, c, "n")
	mustJoin(t, x, "m")
	net.gossip()

	e1 := mustPub(t, a, ep("n", "e1", "a", 1))
	e2 := mustPub(t, a, ep("n", "e2", "a", 2))
	net.gossip()
	waitView(t, c, "n", waitTime, e1, e2)

	if err := a.Withdraw("n", "e1"); err != nil {
		t.Fatal(err)
	}
	net.gossip()
	waitView(t, c, "n", waitTime, e2)

	x.mu.Lock()
	stored := x.t.nets["n"]
	x.mu.Unlock()
	if stored != nil {
		t.Fatalf("x stores network n without having joined it: %v", stored)
	}
	if got := x.Endpoints("n"); len(got) != 0 {
		t.Fatalf("x shows %v on a network it has not joined", got)
	}
}

func TestJoiningANetworkFetchesItsEntries(t *testing.T) {
	net := newFakeNet(t)
	a, b := net.add("a", Config{}), net.add("b", Config{})
	mustJoin(t, a, "n")
	var want []Endpoint
	for i := range 5 {
		want = append(want, mustPub(t, a, ep("n", fmt.Sprintf("e%d", i), "a", byte(i))))
	}
	net.gossip() // b relays, but does not store, a's endpoints; it learns a's interest

	// No push/pull and no more gossip: b must ask a directly.
	mustJoin(t, b, "n")
	waitView(t, b, "n", waitTime, want...)

	// The request carried b's copy to a too.
	mine := mustPub(t, b, ep("n", "b1", "b", 50))
	net.gossip()
	waitView(t, a, "n", waitTime, append(want, mine)...)
}

func TestJoinSyncMovesOnFromANodeThatLeftTheNetwork(t *testing.T) {
	net := newFakeNet(t)
	a, b, c := net.add("a", Config{}), net.add("b", Config{}), net.add("c", Config{})
	mustJoin(t, b, "n")
	net.gossip()

	// c hears nothing more: it still thinks b is on n, and does not know
	// that a joined n and published e.
	net.setDeaf("c", true)
	if err := b.LeaveNetwork("n"); err != nil {
		t.Fatal(err)
	}
	mustJoin(t, a, "n")
	e := mustPub(t, a, ep("n", "e1", "a", 1))
	net.gossip()
	net.setDeaf("c", false)

	// c joins n and asks b, the only member it knows; b says it is not one.
	mustJoin(t, c, "n")
	net.waitRequest("c->b n", waitTime)
	// a announces its networks again (here, by joining another one); c
	// learns that a is on n and asks it, or a (still unsynced on n) hears
	// of c and asks c, which carries a's copy. e itself was gossiped while
	// c was deaf, so only a sync between the two can bring it.
	mustJoin(t, a, "other")
	net.gossip()
	waitView(t, c, "n", waitTime, e)
	if got := net.requests(); !slices.Contains(got, "c->a n") && !slices.Contains(got, "a->c n") {
		t.Fatalf("requests %v: no sync between a and c", got)
	}
}

func TestDeadNodeExpiresAfterGraceAndComesBack(t *testing.T) {
	const grace = 300 * time.Millisecond
	net := newFakeNet(t)
	a, b := net.add("a", Config{DeadGrace: grace}), net.add("b", Config{DeadGrace: grace})
	mustJoin(t, a, "n")
	mustJoin(t, b, "n")
	e := mustPub(t, b, ep("n", "e1", "b", 1))
	net.gossip()
	waitView(t, a, "n", waitTime, e)

	sub, _ := a.Subscribe("n")
	defer sub.Close()
	died := time.Now()
	a.Events().NotifyLeave(&memberlist.Node{Name: "b"})
	ev := nextEvent(t, sub, waitTime)
	if took := time.Since(died); ev.Type != Deleted || took < grace {
		t.Fatalf("got %v after %s, want a deletion no sooner than the grace (%s)", ev.Type, took, grace)
	}
	if _, ok := a.Get("n", "e1"); ok {
		t.Fatal("expired endpoint still returned by Get")
	}

	a.Events().NotifyJoin(&memberlist.Node{Name: "b"})
	if ev := nextEvent(t, sub, waitTime); ev.Type != Added || !ev.Endpoint.Equal(e) {
		t.Fatalf("after the node came back: %v %+v, want it added back", ev.Type, ev.Endpoint)
	}

	// Dead and back within the grace: nothing happens, even after the
	// grace has passed.
	a.Events().NotifyLeave(&memberlist.Node{Name: "b"})
	a.Events().NotifyJoin(&memberlist.Node{Name: "b"})
	time.Sleep(2 * grace) // let the cancelled grace run out
	marker := mustPub(t, a, ep("n", "marker", "a", 2))
	if ev := nextEvent(t, sub, waitTime); ev.Type != Added || ev.Endpoint.EndpointID != marker.EndpointID {
		t.Fatalf("a node back within the grace caused %v of %s", ev.Type, ev.Endpoint.EndpointID)
	}
}

func TestPushPullGivesAFullCopyOfJoinedNetworksOnly(t *testing.T) {
	net := newFakeNet(t)
	a := net.add("a", Config{})
	mustJoin(t, a, "n", "m")
	en := mustPub(t, a, ep("n", "e1", "a", 1))
	mustPub(t, a, ep("m", "e2", "a", 2))
	gone := mustPub(t, a, ep("n", "gone", "a", 3))
	if err := a.Withdraw("n", gone.EndpointID); err != nil {
		t.Fatal(err)
	}

	late := net.add("late", Config{})
	mustJoin(t, late, "n")
	net.pushPull("a", "late")
	waitView(t, late, "n", waitTime, en)
	late.mu.Lock()
	_, storesM := late.t.nets["m"]
	tomb := late.t.nets["n"]["gone"]
	late.mu.Unlock()
	if storesM {
		t.Fatal("the late node stores a network it has not joined")
	}
	if tomb == nil || !tomb.deleted {
		t.Fatal("the late node did not get the tombstone")
	}
}

func TestRestartedNodeRemovesItsStaleEndpoints(t *testing.T) {
	net := newFakeNet(t)
	a, b, c := net.add("a", Config{}), net.add("b", Config{}), net.add("c", Config{})
	for _, db := range []*DB{a, b, c} {
		mustJoin(t, db, "n")
	}
	mustPub(t, a, ep("n", "e1", "a", 1))
	mustPub(t, a, ep("n", "e2", "a", 2))
	net.gossip()
	waitView(t, c, "n", waitTime, ep("n", "e1", "a", 1), ep("n", "e2", "a", 2))

	// a restarts with an empty table and publishes e1 again, changed,
	// before it talks to anyone (as the daemon does).
	a2 := net.replace("a", Config{})
	mustJoin(t, a2, "n")
	e1 := mustPub(t, a2, ep("n", "e1", "a", 11))
	// Its first contact is a push/pull with b (memberlist's join); its
	// broadcasts are lost.
	a2.queue.Prune(0)
	net.pushPull("a", "b")
	waitView(t, b, "n", waitTime, e1)
	// b's deletion of the stale e2 and its copy reach c by gossip.
	net.gossip()
	net.pushPull("b", "c")
	waitView(t, c, "n", waitTime, e1)
	waitView(t, a2, "n", waitTime, e1)
}
