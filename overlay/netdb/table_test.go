package netdb

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// These tests drive the merge logic directly, with explicit times.

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

const testTTL = time.Minute

func ep(network, id, node string, ip byte) Endpoint {
	return Endpoint{
		NetworkID: network, EndpointID: id, NodeID: node,
		IP:          netip.AddrFrom4([4]byte{198, 19, 1, ip}),
		MAC:         net.HardwareAddr{0x02, 0x42, 198, 19, 1, ip},
		VTEP:        netip.AddrFrom4([4]byte{198, 18, 0, 1}),
		ServiceID:   "svc-" + id,
		ServiceName: "web",
		TaskName:    "web.1." + id,
		Aliases:     []string{"www"},
		VIP:         netip.AddrFrom4([4]byte{198, 19, 1, 250}),
	}
}

// joinedTable is a table for self that has joined networks, with the
// given nodes alive.
func joinedTable(self string, networks []string, alive ...string) *table {
	tb := newTable(self, testTTL, t0)
	var fx effects
	for _, n := range networks {
		tb.join(n, t0, &fx)
	}
	for _, a := range alive {
		tb.nodeAlive(a, t0, &fx)
	}
	return tb
}

func visibleIDs(tb *table, network string) []string {
	var ids []string
	for _, e := range tb.endpoints(network) {
		ids = append(ids, e.EndpointID)
	}
	return ids
}

func mustPublish(t *testing.T, tb *table, e Endpoint, now time.Time) record {
	t.Helper()
	var fx effects
	if err := tb.publish(e, now, &fx); err != nil {
		t.Fatal(err)
	}
	if len(fx.writes) != 1 {
		t.Fatalf("publish wrote %d records, want 1", len(fx.writes))
	}
	return fx.writes[0]
}

func TestClockIsLamportAndNeverBehindWallClock(t *testing.T) {
	tb := newTable("a", testTTL, t0)
	v1 := tb.tick(t0)
	if v1 < uint64(t0.UnixMilli()) {
		t.Fatalf("tick %d is behind the wall clock %d", v1, t0.UnixMilli())
	}
	if v2 := tb.tick(t0); v2 != v1+1 {
		t.Fatalf("second tick in the same millisecond = %d, want %d", v2, v1+1)
	}
	tb.observe(v1 + 1000)
	if v := tb.tick(t0); v != v1+1001 {
		t.Fatalf("tick after observing %d = %d, want %d", v1+1000, v, v1+1001)
	}
	if v := tb.tick(t0.Add(time.Hour)); v != uint64(t0.Add(time.Hour).UnixMilli()) {
		t.Fatalf("tick an hour later = %d, want the wall clock %d", v, t0.Add(time.Hour).UnixMilli())
	}
}

func TestMergeLastWriterWins(t *testing.T) {
	a := joinedTable("a", []string{"n1"})
	b := joinedTable("b", []string{"n1"}, "a")

	old := mustPublish(t, a, ep("n1", "e1", "a", 10), t0)
	updated := ep("n1", "e1", "a", 11)
	newer := mustPublish(t, a, updated, t0)
	if newer.version <= old.version {
		t.Fatalf("update version %d not above %d", newer.version, old.version)
	}

	var fx effects
	if !b.merge(newer, t0, &fx) {
		t.Fatal("newer write was not accepted")
	}
	if b.merge(old, t0, &fx) {
		t.Fatal("older write replaced a newer one")
	}
	if b.merge(newer, t0, &fx) {
		t.Fatal("the same write was accepted twice")
	}
	got := b.endpoints("n1")
	if len(got) != 1 || !got[0].Equal(updated) {
		t.Fatalf("b has %+v, want the update", got)
	}
	if len(fx.changes) != 1 || fx.changes[0].prev != nil || !fx.changes[0].next.Equal(updated) {
		t.Fatalf("changes = %+v, want one add of the update", fx.changes)
	}
	if b.clock < newer.version {
		t.Fatalf("b's clock %d did not move past the version it saw (%d)", b.clock, newer.version)
	}
}

func TestCompareTieBreaks(t *testing.T) {
	live := record{ep: ep("n", "e", "a", 1), version: 7}
	dead := record{ep: ep("n", "e", "a", 1), version: 7, deleted: true}
	otherOwner := record{ep: ep("n", "e", "b", 1), version: 7}
	otherValue := record{ep: ep("n", "e", "a", 2), version: 7}
	for _, tc := range []struct {
		name string
		a, b record
	}{
		{"higher version", record{ep: live.ep, version: 8}, dead},
		{"deletion over value", dead, otherOwner},
		{"greater owner", otherOwner, live},
		{"greater value", otherValue, live},
	} {
		if compare(&tc.a, &tc.b) <= 0 || compare(&tc.b, &tc.a) >= 0 {
			t.Errorf("%s: compare does not order %v above %v", tc.name, tc.a, tc.b)
		}
	}
	if compare(&live, &live) != 0 {
		t.Error("a write does not compare equal to itself")
	}
}

func TestConcurrentWritesConvergeInAnyOrder(t *testing.T) {
	// Writes to the same keys from several owners, some with equal
	// versions, applied in different orders: every replica must end up
	// with the same winner for each key.
	var writes []record
	for i, owner := range []string{"a", "b", "c"} {
		for _, id := range []string{"e1", "e2", "e3"} {
			writes = append(writes,
				record{ep: ep("n", id, owner, byte(i)), version: 100},
				record{ep: ep("n", id, owner, byte(i+10)), version: uint64(100 + i)},
			)
		}
	}
	writes = append(writes, record{ep: ep("n", "e2", "b", 0), version: 102, deleted: true, ttl: testTTL})

	rng := rand.New(rand.NewPCG(1, 2))
	var want []record
	for round := range 20 {
		tb := joinedTable("x", []string{"n"}, "a", "b", "c")
		order := slices.Clone(writes)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		var fx effects
		for _, w := range order {
			tb.merge(w, t0, &fx)
		}
		got := tb.records("n", t0)
		slices.SortFunc(got, func(a, b record) int { return compare(&a, &b) })
		for i := range got {
			got[i].ttl = 0
		}
		if round == 0 {
			want = got
			continue
		}
		if len(got) != len(want) {
			t.Fatalf("round %d: %d records, want %d", round, len(got), len(want))
		}
		for i := range got {
			if compare(&got[i], &want[i]) != 0 {
				t.Fatalf("round %d: record %d = %+v, want %+v", round, i, got[i], want[i])
			}
		}
	}
	byID := map[string]record{}
	for _, r := range want {
		byID[r.ep.EndpointID] = r
	}
	if r := byID["e2"]; !r.deleted || r.version != 102 {
		t.Errorf("e2 = %+v, want the deletion at version 102 (it ties with c's write)", r)
	}
	if r := byID["e1"]; r.deleted || r.version != 102 || r.ep.NodeID != "c" {
		t.Errorf("e1 = %+v, want c's write at version 102", r)
	}
}

func TestTombstonesHideAndExpire(t *testing.T) {
	a := joinedTable("a", []string{"n"})
	b := joinedTable("b", []string{"n"}, "a")
	live := mustPublish(t, a, ep("n", "e1", "a", 1), t0)

	var fx effects
	if err := a.withdraw("n", "e1", t0, &fx); err != nil {
		t.Fatal(err)
	}
	if len(fx.writes) != 1 || !fx.writes[0].deleted || fx.writes[0].ttl != testTTL {
		t.Fatalf("withdraw wrote %+v, want one tombstone with the full TTL", fx.writes)
	}
	if len(fx.changes) != 1 || fx.changes[0].next != nil {
		t.Fatalf("withdraw changes = %+v, want one deletion", fx.changes)
	}
	tomb := fx.writes[0]

	// The tombstone beats the live write whatever the order.
	fx = effects{}
	b.merge(tomb, t0, &fx)
	if b.merge(live, t0, &fx) {
		t.Fatal("a write older than the tombstone was accepted")
	}
	if ids := visibleIDs(b, "n"); len(ids) != 0 {
		t.Fatalf("b shows %v after the deletion", ids)
	}

	// The tombstone is passed on with what is left of its life, and
	// dropped when that runs out.
	later := t0.Add(testTTL / 4)
	rs := b.records("n", later)
	if len(rs) != 1 || !rs[0].deleted || rs[0].ttl != testTTL*3/4 {
		t.Fatalf("records after a quarter of the TTL = %+v, want the tombstone with 3/4 of its life", rs)
	}
	b.reap(t0.Add(testTTL - time.Millisecond))
	if len(b.nets["n"]) != 1 {
		t.Fatal("tombstone dropped before its time")
	}
	b.reap(t0.Add(testTTL))
	if len(b.nets["n"]) != 0 {
		t.Fatal("tombstone kept after its time")
	}

	// A tombstone received with little life left keeps only that.
	c := joinedTable("c", []string{"n"}, "a")
	short := tomb
	short.ttl = time.Second
	c.merge(short, t0, &fx)
	c.reap(t0.Add(time.Second))
	if len(c.nets["n"]) != 0 {
		t.Fatal("a tombstone outlived the life it was sent with")
	}
}

func TestOnlyJoinedNetworksAreStored(t *testing.T) {
	b := joinedTable("b", []string{"n1"}, "a")
	var fx effects
	if b.merge(record{ep: ep("n2", "e1", "a", 1), version: 5}, t0, &fx) {
		t.Fatal("a write for a network b has not joined was accepted")
	}
	if b.nets["n2"] != nil || len(fx.changes) != 0 {
		t.Fatal("b stored a network it has not joined")
	}
	if b.clock < 5 {
		t.Fatal("b's clock ignored a version it saw")
	}
	if err := b.publish(ep("n2", "e2", "b", 2), t0, &fx); err == nil {
		t.Fatal("publish on a network not joined succeeded")
	}

	// Leaving a network deletes this node's endpoints there and reports
	// all of them gone.
	own := mustPublish(t, b, ep("n1", "mine", "b", 3), t0)
	b.merge(record{ep: ep("n1", "theirs", "a", 4), version: own.version + 1}, t0, &fx)
	fx = effects{}
	b.leave("n1", t0, &fx)
	if b.joined("n1") {
		t.Fatal("still joined after leave")
	}
	if len(fx.writes) != 1 || !fx.writes[0].deleted || fx.writes[0].ep.EndpointID != "mine" {
		t.Fatalf("leave wrote %+v, want a tombstone for b's own endpoint only", fx.writes)
	}
	if len(fx.changes) != 2 || !fx.interest {
		t.Fatalf("leave: %d changes, interest %v; want 2 deletions and a new interest", len(fx.changes), fx.interest)
	}
	if nets := b.interests["b"].networks; len(nets) != 0 {
		t.Fatalf("b still announces %v", nets)
	}
}

func TestDeadOwnerExpiresAfterGraceAndReturns(t *testing.T) {
	b := joinedTable("b", []string{"n"}, "a")
	var fx effects
	b.merge(record{ep: ep("n", "e1", "a", 1), version: 5}, t0, &fx)

	gen, ok := b.nodeDead("a", t0, &fx)
	if !ok {
		t.Fatal("nodeDead on an alive node did nothing")
	}
	if _, again := b.nodeDead("a", t0, &fx); again {
		t.Fatal("a second death started a second grace")
	}
	if ids := visibleIDs(b, "n"); len(ids) != 1 {
		t.Fatal("endpoints vanished before the grace ended")
	}
	fx = effects{}
	b.nodeExpire("a", gen, t0.Add(time.Second), &fx)
	if ids := visibleIDs(b, "n"); len(ids) != 0 {
		t.Fatalf("endpoints %v still visible after the grace", ids)
	}
	if len(fx.changes) != 1 || fx.changes[0].next != nil {
		t.Fatalf("expiry changes = %+v, want one deletion", fx.changes)
	}
	if rs := b.records("n", t0); len(rs) != 0 {
		t.Fatalf("a dead node's entries are passed on: %+v", rs)
	}

	fx = effects{}
	b.nodeAlive("a", t0.Add(2*time.Second), &fx)
	if len(fx.changes) != 1 || fx.changes[0].prev != nil {
		t.Fatalf("return changes = %+v, want one addition", fx.changes)
	}

	// A death followed by a return within the grace changes nothing, and
	// the old grace timer must not expire the returned node.
	gen, _ = b.nodeDead("a", t0, &fx)
	b.nodeAlive("a", t0, &fx)
	fx = effects{}
	b.nodeExpire("a", gen, t0.Add(time.Second), &fx)
	if len(fx.changes) != 0 || len(visibleIDs(b, "n")) != 1 {
		t.Fatal("a stale grace timer expired a node that came back")
	}

	// After the TTL, a node that stays dead is forgotten.
	gen, _ = b.nodeDead("a", t0, &fx)
	b.nodeExpire("a", gen, t0, &fx)
	b.reap(t0.Add(testTTL - time.Second))
	if len(b.nets["n"]) != 1 {
		t.Fatal("a dead node's entry was dropped before the TTL")
	}
	b.reap(t0.Add(testTTL))
	if len(b.nets["n"]) != 0 || b.owners["a"] != nil || b.interests["a"] != nil {
		t.Fatal("a node dead for the TTL is not forgotten")
	}
}

func TestUnknownOwnerIsHiddenUntilAlive(t *testing.T) {
	b := joinedTable("b", []string{"n"})
	var fx effects
	if !b.merge(record{ep: ep("n", "e1", "z", 1), version: 5}, t0, &fx) {
		t.Fatal("entry of an unknown owner not stored")
	}
	if len(fx.changes) != 0 || len(visibleIDs(b, "n")) != 0 {
		t.Fatal("entry of a node gossip has never seen alive is visible")
	}
	b.nodeAlive("z", t0, &fx)
	if len(visibleIDs(b, "n")) != 1 || len(fx.changes) != 1 {
		t.Fatal("entry not visible once its owner is alive")
	}
}

func TestOwnerReassertsItsOwnEntries(t *testing.T) {
	a := joinedTable("a", []string{"n"}, "b")
	mine := mustPublish(t, a, ep("n", "e1", "a", 1), t0)

	// Someone else holds a newer write of a's entry (a stale copy from
	// before a restart): a writes its truth again, newer.
	stale := record{ep: ep("n", "e1", "a", 9), version: mine.version + 50}
	var fx effects
	if a.merge(stale, t0, &fx) {
		t.Fatal("a accepted a foreign write of its own entry")
	}
	if len(fx.writes) != 1 || fx.writes[0].version <= stale.version || !fx.writes[0].ep.Equal(mine.ep) || fx.writes[0].deleted {
		t.Fatalf("a wrote %+v, want its own value above version %d", fx.writes, stale.version)
	}
	if len(fx.changes) != 0 {
		t.Fatalf("re-asserting changed what a shows: %+v", fx.changes)
	}

	// An entry a does not have is deleted, newer than the one seen.
	fx = effects{}
	ghost := record{ep: ep("n", "ghost", "a", 2), version: mine.version + 100}
	a.merge(ghost, t0, &fx)
	if len(fx.writes) != 1 || !fx.writes[0].deleted || fx.writes[0].version <= ghost.version {
		t.Fatalf("a wrote %+v, want a tombstone above version %d", fx.writes, ghost.version)
	}
	if ids := visibleIDs(a, "n"); !slices.Equal(ids, []string{"e1"}) {
		t.Fatalf("a shows %v, want only e1", ids)
	}

	// A deletion of an entry a no longer has is simply accepted.
	fx = effects{}
	if !a.merge(record{ep: ep("n", "gone", "a", 3), version: 7, deleted: true, ttl: time.Second}, t0, &fx) || len(fx.writes) != 0 {
		t.Fatalf("deletion of a's absent entry: writes %+v", fx.writes)
	}
}

func TestFullCopyRemovesTheSendersStaleEntries(t *testing.T) {
	b := joinedTable("b", []string{"n", "m"}, "a")
	var fx effects
	for i, id := range []string{"keep", "stale", "newer"} {
		b.merge(record{ep: ep("n", id, "a", byte(i)), version: uint64(10 + i)}, t0, &fx)
	}
	b.merge(record{ep: ep("m", "elsewhere", "a", 9), version: 11}, t0, &fx)
	b.merge(record{ep: ep("n", "other-owner", "c", 8), version: 11}, t0, &fx)

	// a's copy (made at clock 11) holds "keep" only; "newer" (version 12)
	// was written after the copy, so it stays.
	fx = effects{}
	b.mergeAbsent("a", 11, "", map[entryKey]bool{{"n", "keep"}: true}, t0, &fx)
	if ids := visibleIDs(b, "n"); !slices.Equal(ids, []string{"keep", "newer"}) {
		t.Fatalf("n shows %v, want keep and newer", ids)
	}
	if ids := visibleIDs(b, "m"); len(ids) != 0 {
		t.Fatalf("m shows %v: a's copy covers every network", ids)
	}
	if e := b.nets["n"]["other-owner"]; e == nil || e.deleted {
		t.Fatal("another owner's entry was deleted")
	}
	if len(fx.writes) != 2 {
		t.Fatalf("wrote %d tombstones, want 2", len(fx.writes))
	}
	for _, w := range fx.writes {
		if !w.deleted || w.version != 11 && w.version != 10 {
			t.Errorf("tombstone %+v not at the stale entry's own version", w)
		}
	}

	// The owner writing the same endpoint again, newer, wins over the
	// tombstone.
	fx = effects{}
	if !b.merge(record{ep: ep("n", "stale", "a", 1), version: 12}, t0, &fx) || len(visibleIDs(b, "n")) != 3 {
		t.Fatal("a newer write by the owner lost to the stale-entry tombstone")
	}
}

func TestRestartedNodeSupersedesItsOldEntries(t *testing.T) {
	// a publishes two endpoints, b copies them; a restarts with an empty
	// table a minute later and publishes one of them again, changed.
	a1 := joinedTable("a", []string{"n"}, "b")
	b := joinedTable("b", []string{"n"}, "a")
	var fx effects
	for _, id := range []string{"e1", "e2"} {
		b.merge(mustPublish(t, a1, ep("n", id, "a", 1), t0), t0, &fx)
	}

	restart := t0.Add(time.Minute)
	a2 := joinedTable("a", []string{"n"}, "b")
	a2.clock = 0
	fresh := mustPublish(t, a2, ep("n", "e1", "a", 77), restart)

	// b hears the update first, then a2's full copy.
	fx = effects{}
	if !b.merge(fresh, restart, &fx) {
		t.Fatal("the restarted node's write lost to its old one")
	}
	present := map[entryKey]bool{}
	for _, r := range a2.records("n", restart) {
		present[entryKey{r.ep.NetworkID, r.ep.EndpointID}] = true
		b.merge(r, restart, &fx)
	}
	b.mergeAbsent("a", a2.clock, "", present, restart, &fx)
	got := b.endpoints("n")
	if len(got) != 1 || !got[0].Equal(fresh.ep) {
		t.Fatalf("b shows %+v, want only the restarted node's e1", got)
	}

	// a2 hears about its old e2 from a third node: it deletes it.
	fx = effects{}
	a2.merge(a1.records("n", t0)[0], restart, &fx)
	a2.merge(a1.records("n", t0)[1], restart, &fx)
	if ids := visibleIDs(a2, "n"); !slices.Equal(ids, []string{"e1"}) {
		t.Fatalf("a2 shows %v, want e1 only", ids)
	}
}

func TestInterestMerge(t *testing.T) {
	b := joinedTable("b", []string{"n"}, "a", "c")
	var fx effects
	if !b.mergeInterest(interestRec{node: "a", version: 5, networks: []string{"n", "m", "n"}}, t0, &fx) {
		t.Fatal("first interest of a not accepted")
	}
	if b.mergeInterest(interestRec{node: "a", version: 4, networks: nil}, t0, &fx) {
		t.Fatal("older interest accepted")
	}
	b.mergeInterest(interestRec{node: "c", version: 5, networks: []string{"m"}}, t0, &fx)
	if got := b.members("n"); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("members of n = %v, want [a]", got)
	}
	if got := b.members("m"); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("members of m = %v, want [a c]", got)
	}
	b.nodeDead("c", t0, &fx)
	if got := b.members("m"); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("members of m with c dead = %v, want [a]", got)
	}

	// A newer interest about b itself (from before a restart) is
	// answered with b's own, newer.
	fx = effects{}
	stale := interestRec{node: "b", version: b.clock + 100}
	if b.mergeInterest(stale, t0, &fx) || !fx.interest || b.interests["b"].version <= stale.version {
		t.Fatal("b did not re-announce its own interest above a stale one")
	}
	if !slices.Equal(b.interests["b"].networks, []string{"n"}) {
		t.Fatalf("b announces %v, want [n]", b.interests["b"].networks)
	}
}

func TestRandomGossipConverges(t *testing.T) {
	// Three replicas make random writes and exchange them in random order,
	// with losses; a final full exchange must leave identical tables.
	rng := rand.New(rand.NewPCG(7, 9))
	nodes := []string{"a", "b", "c"}
	tbs := map[string]*table{}
	for _, n := range nodes {
		others := slices.DeleteFunc(slices.Clone(nodes), func(o string) bool { return o == n })
		tbs[n] = joinedTable(n, []string{"n"}, others...)
	}
	now := t0
	var inflight []record
	for i := range 500 {
		now = now.Add(time.Duration(rng.IntN(3)) * time.Millisecond)
		n := nodes[rng.IntN(len(nodes))]
		var fx effects
		id := fmt.Sprintf("e%d", rng.IntN(8))
		switch rng.IntN(3) {
		case 0, 1:
			e := ep("n", id, n, byte(i))
			if err := tbs[n].publish(e, now, &fx); err != nil {
				t.Fatal(err)
			}
		case 2:
			_ = tbs[n].withdraw("n", id, now, &fx) // may belong to another node
		}
		inflight = append(inflight, fx.writes...)
		// Deliver a random pending write to a random node, or lose it.
		if len(inflight) > 0 && rng.IntN(2) == 0 {
			k := rng.IntN(len(inflight))
			r := inflight[k]
			inflight = slices.Delete(inflight, k, k+1)
			if rng.IntN(5) > 0 {
				var fx effects
				tbs[nodes[rng.IntN(len(nodes))]].merge(r, now, &fx)
				inflight = append(inflight, fx.writes...)
			}
		}
	}
	// Anti-entropy until nothing changes.
	for range 5 {
		for _, from := range nodes {
			for _, to := range nodes {
				if from == to {
					continue
				}
				src := tbs[from]
				present := map[entryKey]bool{}
				var fx effects
				for _, r := range src.records("n", now) {
					present[entryKey{r.ep.NetworkID, r.ep.EndpointID}] = true
					tbs[to].merge(r, now, &fx)
				}
				tbs[to].mergeAbsent(from, src.clock, "", present, now, &fx)
			}
		}
	}
	want := tbs["a"].endpoints("n")
	for _, n := range nodes[1:] {
		got := tbs[n].endpoints("n")
		if !slices.EqualFunc(got, want, Endpoint.Equal) {
			t.Fatalf("%s shows %v, a shows %v", n, got, want)
		}
	}
	// Every visible endpoint is one its owner still has.
	for _, e := range want {
		own := tbs[e.NodeID].nets["n"][e.EndpointID]
		if own == nil || own.deleted || !own.ep.Equal(e) {
			t.Errorf("replicas show %s/%s by %s, which its owner does not have", e.NetworkID, e.EndpointID, e.NodeID)
		}
	}
	if len(want) == 0 {
		t.Fatal("test wrote nothing that survived; choose another seed")
	}
}
