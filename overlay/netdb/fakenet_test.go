package netdb

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// fakeNet connects DBs in memory: gossip() delivers every queued
// broadcast, pushPull() exchanges full states, and each DB's Transport
// calls the target's NotifyMsg. Links can be cut to force relays.
type fakeNet struct {
	t    *testing.T
	mu   sync.Mutex
	dbs  map[string]*DB
	cut  map[[2]string]bool
	deaf map[string]bool // nodes that receive no gossip (but direct messages)
	// asked lists the sync requests sent, as "from->to network"; each is
	// also sent on askedCh.
	asked   []string
	askedCh chan string
}

func newFakeNet(t *testing.T) *fakeNet {
	return &fakeNet{t: t, dbs: map[string]*DB{}, cut: map[[2]string]bool{}, deaf: map[string]bool{}, askedCh: make(chan string, 256)}
}

// add starts a DB named id and tells everyone (it included) that the
// others are alive.
func (n *fakeNet) add(id string, cfg Config) *DB {
	n.t.Helper()
	cfg.NodeID = id
	db, err := New(cfg)
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(db.Close)
	db.SetTransport(fakeTransport{n: n, from: id})
	n.mu.Lock()
	n.dbs[id] = db
	others := maps.Clone(n.dbs)
	n.mu.Unlock()
	for other, odb := range others {
		odb.Events().NotifyJoin(&memberlist.Node{Name: id})
		db.Events().NotifyJoin(&memberlist.Node{Name: other})
	}
	return db
}

// replace swaps in a new DB under an existing name (a restart).
func (n *fakeNet) replace(id string, cfg Config) *DB {
	n.mu.Lock()
	old := n.dbs[id]
	delete(n.dbs, id)
	n.mu.Unlock()
	old.Close()
	return n.add(id, cfg)
}

func (n *fakeNet) linked(a, b string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.cut[[2]string{a, b}] && !n.cut[[2]string{b, a}]
}

// setDeaf makes id hear no gossip (or hear it again).
func (n *fakeNet) setDeaf(id string, deaf bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.deaf[id] = deaf
}

func (n *fakeNet) isDeaf(id string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.deaf[id]
}

func (n *fakeNet) requests() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.asked)
}

// cutLink stops all traffic between a and b.
func (n *fakeNet) cutLink(a, b string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut[[2]string{a, b}] = true
}

func (n *fakeNet) snapshot() map[string]*DB {
	n.mu.Lock()
	defer n.mu.Unlock()
	return maps.Clone(n.dbs)
}

// gossip delivers queued broadcasts over the links until every queue is
// empty.
func (n *fakeNet) gossip() {
	n.t.Helper()
	for round := 0; ; round++ {
		if round > 1000 {
			n.t.Fatal("gossip does not settle")
		}
		dbs := n.snapshot()
		sent := false
		for _, from := range slices.Sorted(maps.Keys(dbs)) {
			msgs := dbs[from].Delegate().GetBroadcasts(0, 64<<10)
			for _, m := range msgs {
				sent = true
				for to, db := range dbs {
					if to != from && n.linked(from, to) && !n.isDeaf(to) {
						db.Delegate().NotifyMsg(m)
					}
				}
			}
		}
		if !sent {
			return
		}
	}
}

// pushPull exchanges full states between a and b, as memberlist does.
func (n *fakeNet) pushPull(a, b string) {
	dbs := n.snapshot()
	sa, sb := dbs[a].Delegate().LocalState(false), dbs[b].Delegate().LocalState(false)
	dbs[b].Delegate().MergeRemoteState(sa, false)
	dbs[a].Delegate().MergeRemoteState(sb, false)
}

type fakeTransport struct {
	n    *fakeNet
	from string
}

func (tr fakeTransport) SendReliable(node string, msg []byte) error {
	to := tr.n.snapshot()[node]
	if to == nil || !tr.n.linked(tr.from, node) {
		return fmt.Errorf("no route from %s to %s", tr.from, node)
	}
	if typ, body, err := splitMessage(msg); err == nil && typ == msgSyncRequest {
		s, _ := decodeNetState(body)
		tr.n.mu.Lock()
		req := tr.from + "->" + node + " " + s.network
		tr.n.asked = append(tr.n.asked, req)
		tr.n.mu.Unlock()
		select {
		case tr.n.askedCh <- req:
		default:
		}
	}
	to.Delegate().NotifyMsg(msg)
	return nil
}

// waitView waits until db shows exactly the endpoints want on network, by
// following a subscription; it returns the events it saw.
func waitView(t *testing.T, db *DB, network string, d time.Duration, want ...Endpoint) []Event {
	t.Helper()
	sub, snap := db.Subscribe(network)
	defer sub.Close()
	cur := map[entryKey]Endpoint{}
	for _, e := range snap {
		cur[entryKey{e.NetworkID, e.EndpointID}] = e
	}
	matches := func() bool {
		if len(cur) != len(want) {
			return false
		}
		for _, w := range want {
			if got, ok := cur[entryKey{w.NetworkID, w.EndpointID}]; !ok || !got.Equal(w) {
				return false
			}
		}
		return true
	}
	var seen []Event
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for !matches() {
		select {
		case ev := <-sub.Events():
			seen = append(seen, ev)
			k := entryKey{ev.Endpoint.NetworkID, ev.Endpoint.EndpointID}
			if ev.Type == Deleted {
				delete(cur, k)
			} else {
				cur[k] = ev.Endpoint
			}
		case <-deadline.C:
			t.Fatalf("%s: after %s, network %s shows %v; want %v", db.cfg.NodeID, d, network, slices.Collect(maps.Values(cur)), want)
		}
	}
	if got := db.Endpoints(network); len(got) != len(want) {
		t.Fatalf("%s: Endpoints(%s) = %v, but the events said %v", db.cfg.NodeID, network, got, want)
	}
	return seen
}

// waitRequest waits until the sync request req ("from->to network") is
// sent.
func (n *fakeNet) waitRequest(req string, d time.Duration) {
	n.t.Helper()
	if slices.Contains(n.requests(), req) {
		return
	}
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		select {
		case got := <-n.askedCh:
			if got == req {
				return
			}
		case <-deadline.C:
			n.t.Fatalf("no sync request %q within %s; requests: %v", req, d, n.requests())
		}
	}
}

// nextEvent returns the next event of sub or fails after d.
func nextEvent(t *testing.T, sub *Subscription, d time.Duration) Event {
	t.Helper()
	select {
	case ev, ok := <-sub.Events():
		if !ok {
			t.Fatal("subscription closed")
		}
		return ev
	case <-time.After(d):
		t.Fatalf("no event within %s", d)
	}
	return Event{}
}
