package netdb

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// table is one node's replica: the entries of the networks it has joined,
// what gossip says about each entry's owner, and every node's interest. It
// is the merge logic alone: it takes the time as an argument, holds no lock
// and does no I/O; every operation reports what it changed in an effects.
type table struct {
	self  string
	ttl   time.Duration // tombstone life; also how long unknown owners' entries are kept
	clock uint64

	nets      map[string]map[string]*entry // joined network -> endpoint ID -> entry
	owners    map[string]*owner
	interests map[string]*interestRec
}

// ownerState is what the local gossip view says about a node.
type ownerState int

const (
	// ownerUnknown: never seen alive, or dead for longer than the grace.
	// Its entries are kept but not visible.
	ownerUnknown ownerState = iota
	ownerAlive
	// ownerDying: declared dead, still within the grace period.
	ownerDying
)

type owner struct {
	state ownerState
	since time.Time // when the node entered state
	gen   uint64    // bumped on each death, so a stale grace timer does nothing
}

type entry struct {
	record
	reapAt time.Time // tombstones: when to drop it
}

// change is one difference subscribers see: prev or next is nil when the
// endpoint was or became invisible.
type change struct{ prev, next *Endpoint }

// effects collects what a table operation asks its caller to do.
type effects struct {
	changes []change
	// writes are new records this node made; they must be broadcast.
	writes []record
	// interest: this node's interest changed and must be broadcast.
	interest bool
	// members: some node's liveness or interest changed; network syncs
	// may find a peer now.
	members bool
}

func (fx *effects) change(prev, next *Endpoint) {
	switch {
	case prev == nil && next == nil:
		return
	case prev != nil && next != nil && prev.Equal(*next):
		return
	}
	fx.changes = append(fx.changes, change{prev: prev, next: next})
}

var errNotJoined = errors.New("network not joined")

func newTable(self string, ttl time.Duration, now time.Time) *table {
	t := &table{
		self:      self,
		ttl:       ttl,
		nets:      map[string]map[string]*entry{},
		owners:    map[string]*owner{self: {state: ownerAlive, since: now}},
		interests: map[string]*interestRec{},
	}
	t.interests[self] = &interestRec{node: self, version: t.tick(now)}
	return t
}

// tick advances the Lamport clock for a local write. The clock never runs
// behind the wall clock in milliseconds, so a node that restarts with an
// empty table still writes newer versions than it did before.
func (t *table) tick(now time.Time) uint64 {
	t.clock = max(t.clock+1, uint64(max(now.UnixMilli(), 0)))
	return t.clock
}

// observe moves the clock past a version seen from another node.
func (t *table) observe(v uint64) { t.clock = max(t.clock, v) }

// compare orders two writes of the same key: by version, then a deletion
// before a value, then by owner, then by encoded value. Every replica
// computes the same order, so all keep the same winner.
func compare(a, b *record) int {
	if c := cmp.Compare(a.version, b.version); c != 0 {
		return c
	}
	if a.deleted != b.deleted {
		if a.deleted {
			return 1
		}
		return -1
	}
	if c := strings.Compare(a.ep.NodeID, b.ep.NodeID); c != 0 {
		return c
	}
	return bytes.Compare(encodeEndpoint(a.ep), encodeEndpoint(b.ep))
}

func (t *table) ownerOf(id string, now time.Time) *owner {
	o := t.owners[id]
	if o == nil {
		o = &owner{state: ownerUnknown, since: now}
		t.owners[id] = o
	}
	return o
}

func (t *table) ownerVisible(id string) bool {
	o := t.owners[id]
	return o != nil && o.state != ownerUnknown
}

func (t *table) visible(e *entry) bool { return !e.deleted && t.ownerVisible(e.ep.NodeID) }

// set stores e and records the visible difference.
func (t *table) set(net map[string]*entry, e *entry, fx *effects) {
	var prev, next *Endpoint
	if old := net[e.ep.EndpointID]; old != nil && t.visible(old) {
		prev = &old.ep
	}
	net[e.ep.EndpointID] = e
	if t.visible(e) {
		next = &e.ep
	}
	fx.change(prev, next)
}

// tombstone deletes old with the given version and broadcasts the
// deletion.
func (t *table) tombstone(net map[string]*entry, old *entry, version uint64, now time.Time, fx *effects) {
	r := record{ep: old.ep, version: version, deleted: true, ttl: t.ttl}
	t.set(net, &entry{record: r, reapAt: now.Add(t.ttl)}, fx)
	fx.writes = append(fx.writes, r)
}

func (t *table) joined(network string) bool { return t.nets[network] != nil }

func (t *table) networks() []string {
	return slices.Sorted(func(yield func(string) bool) {
		for n := range t.nets {
			if !yield(n) {
				return
			}
		}
	})
}

// setInterest writes this node's interest from its joined networks.
func (t *table) setInterest(now time.Time, fx *effects) {
	t.interests[t.self] = &interestRec{node: t.self, version: t.tick(now), networks: t.networks()}
	fx.interest = true
}

func (t *table) join(network string, now time.Time, fx *effects) {
	if t.joined(network) {
		return
	}
	t.nets[network] = map[string]*entry{}
	t.setInterest(now, fx)
}

// leave deletes this node's endpoints on network, reports every visible
// endpoint there as gone and forgets the network.
func (t *table) leave(network string, now time.Time, fx *effects) {
	net := t.nets[network]
	if net == nil {
		return
	}
	for _, e := range net {
		if e.ep.NodeID == t.self && !e.deleted {
			t.tombstone(net, e, t.tick(now), now, fx)
		} else if t.visible(e) {
			fx.change(&e.ep, nil)
		}
	}
	delete(t.nets, network)
	t.setInterest(now, fx)
}

func (t *table) publish(ep Endpoint, now time.Time, fx *effects) error {
	net := t.nets[ep.NetworkID]
	if net == nil {
		return fmt.Errorf("publish endpoint %q: %w %q", ep.EndpointID, errNotJoined, ep.NetworkID)
	}
	if old := net[ep.EndpointID]; old != nil && !old.deleted && old.ep.Equal(ep) {
		return nil
	}
	r := record{ep: ep, version: t.tick(now)}
	t.set(net, &entry{record: r}, fx)
	fx.writes = append(fx.writes, r)
	return nil
}

func (t *table) withdraw(network, id string, now time.Time, fx *effects) error {
	old := t.nets[network][id]
	if old == nil || old.deleted {
		return nil
	}
	if old.ep.NodeID != t.self {
		return fmt.Errorf("withdraw endpoint %q on network %q: it belongs to node %q", id, network, old.ep.NodeID)
	}
	t.tombstone(t.nets[network], old, t.tick(now), now, fx)
	return nil
}

// merge applies a write from another node and reports whether it
// replaced this replica's copy (and so is worth relaying). Writes for
// networks this node has not joined are ignored.
func (t *table) merge(r record, now time.Time, fx *effects) bool {
	t.observe(r.version)
	net := t.nets[r.ep.NetworkID]
	if net == nil {
		return false
	}
	old := net[r.ep.EndpointID]
	if old != nil && compare(&r, &old.record) <= 0 {
		return false
	}
	if r.ep.NodeID == t.self {
		return t.assertOwn(net, old, r, now, fx)
	}
	t.ownerOf(r.ep.NodeID, now)
	e := &entry{record: r}
	e.ttl = 0
	if r.deleted {
		e.reapAt = now.Add(min(r.ttl, t.ttl))
	}
	t.set(net, e, fx)
	return true
}

// assertOwn handles a write of one of this node's own entries that is
// newer than this node's copy: this node's copy is the truth, so it wins
// again with a newer version. Only a deletion of an entry this node no
// longer has is accepted as it is.
func (t *table) assertOwn(net map[string]*entry, old *entry, r record, now time.Time, fx *effects) bool {
	switch {
	case old != nil && !old.deleted:
		nr := record{ep: old.ep, version: t.tick(now)}
		t.set(net, &entry{record: nr}, fx)
		fx.writes = append(fx.writes, nr)
		return false
	case r.deleted:
		t.set(net, &entry{record: record{ep: r.ep, version: r.version, deleted: true}, reapAt: now.Add(min(r.ttl, t.ttl))}, fx)
		return true
	default:
		t.tombstone(net, &entry{record: r}, t.tick(now), now, fx)
		return false
	}
}

// entryKey names an entry across networks.
type entryKey struct{ network, endpoint string }

// mergeAbsent applies what a full copy from sender implies: sender's own
// entries the copy leaves out are stale, unless they are newer than the
// copy (clock is sender's clock when it made the copy). The stale entries
// are deleted at their current version (a deletion wins a tie), so a newer
// write by the sender still wins. network limits this to one network;
// "" means every network (a full state covers all of the sender's networks,
// and a node has no entries on networks it has not joined).
func (t *table) mergeAbsent(sender string, clock uint64, network string, present map[entryKey]bool, now time.Time, fx *effects) {
	if sender == t.self {
		return
	}
	for netID, net := range t.nets {
		if network != "" && netID != network {
			continue
		}
		for id, e := range net {
			if e.deleted || e.ep.NodeID != sender || e.version > clock || present[entryKey{netID, id}] {
				continue
			}
			t.tombstone(net, e, e.version, now, fx)
		}
	}
}

// nodeAlive records that gossip sees id alive; its entries become visible.
func (t *table) nodeAlive(id string, now time.Time, fx *effects) {
	if id == t.self {
		return
	}
	o := t.ownerOf(id, now)
	if o.state == ownerAlive {
		return
	}
	wasVisible := o.state == ownerDying
	*o = owner{state: ownerAlive, since: now, gen: o.gen + 1}
	fx.members = true
	if wasVisible {
		return
	}
	t.eachOwned(id, func(e *entry) { fx.change(nil, &e.ep) })
}

// nodeDead records that gossip declared id dead. Its entries stay visible
// until nodeExpire is called with the returned generation; ok is false if
// there is nothing to expire.
func (t *table) nodeDead(id string, now time.Time, fx *effects) (gen uint64, ok bool) {
	if id == t.self {
		return 0, false
	}
	o := t.ownerOf(id, now)
	if o.state != ownerAlive {
		return 0, false
	}
	*o = owner{state: ownerDying, since: now, gen: o.gen + 1}
	fx.members = true
	return o.gen, true
}

// nodeExpire ends the grace of a dead node: its entries become invisible.
// It does nothing if the node came back or died again since gen.
func (t *table) nodeExpire(id string, gen uint64, now time.Time, fx *effects) {
	o := t.owners[id]
	if o == nil || o.state != ownerDying || o.gen != gen {
		return
	}
	*o = owner{state: ownerUnknown, since: now, gen: o.gen}
	t.eachOwned(id, func(e *entry) { fx.change(&e.ep, nil) })
}

// eachOwned calls fn for every live (not deleted) entry owned by id.
func (t *table) eachOwned(id string, fn func(*entry)) {
	for _, net := range t.nets {
		for _, e := range net {
			if !e.deleted && e.ep.NodeID == id {
				fn(e)
			}
		}
	}
}

// reap drops tombstones whose time is up, and everything about nodes that
// have been dead or unknown for the tombstone TTL. Nothing it drops is
// visible.
func (t *table) reap(now time.Time) {
	gone := func(id string) bool {
		o := t.owners[id]
		return id != t.self && (o == nil || o.state == ownerUnknown && now.Sub(o.since) >= t.ttl)
	}
	for _, net := range t.nets {
		for id, e := range net {
			if e.deleted && !now.Before(e.reapAt) || !e.deleted && gone(e.ep.NodeID) {
				delete(net, id)
			}
		}
	}
	for id := range t.owners {
		if gone(id) {
			delete(t.owners, id)
			delete(t.interests, id)
		}
	}
}

// records returns network's entries as sent to other nodes: the visible
// ones and the tombstones with their remaining life. Entries of dead or
// unknown owners are not passed on.
func (t *table) records(network string, now time.Time) []record {
	var out []record
	for _, e := range t.nets[network] {
		switch {
		case e.deleted:
			if left := e.reapAt.Sub(now); left > 0 {
				r := e.record
				r.ttl = left
				out = append(out, r)
			}
		case t.visible(e):
			out = append(out, e.record)
		}
	}
	return out
}

// endpoints returns network's visible endpoints sorted by ID.
func (t *table) endpoints(network string) []Endpoint {
	var out []Endpoint
	for _, e := range t.nets[network] {
		if t.visible(e) {
			out = append(out, e.ep.Clone())
		}
	}
	slices.SortFunc(out, func(a, b Endpoint) int { return strings.Compare(a.EndpointID, b.EndpointID) })
	return out
}

// mergeInterest applies another node's announcement of its networks and
// reports whether it was news. An announcement about this node that is
// newer than its own is answered by announcing again.
func (t *table) mergeInterest(in interestRec, now time.Time, fx *effects) bool {
	t.observe(in.version)
	old := t.interests[in.node]
	if old != nil && in.version <= old.version {
		return false
	}
	if in.node == t.self {
		t.setInterest(now, fx)
		return false
	}
	t.ownerOf(in.node, now)
	nets := slices.Clone(in.networks)
	slices.Sort(nets)
	t.interests[in.node] = &interestRec{node: in.node, version: in.version, networks: slices.Compact(nets)}
	fx.members = true
	return true
}

// interestList returns the interest of this node and of every node whose
// entries are visible.
func (t *table) interestList() []interestRec {
	var out []interestRec
	for id, in := range t.interests {
		if id == t.self || t.ownerVisible(id) {
			out = append(out, *in)
		}
	}
	return out
}

// members returns the other nodes gossip sees alive that have joined
// network.
func (t *table) members(network string) []string {
	var out []string
	for id, in := range t.interests {
		if o := t.owners[id]; id != t.self && o != nil && o.state == ownerAlive {
			if _, ok := slices.BinarySearch(in.networks, network); ok {
				out = append(out, id)
			}
		}
	}
	slices.Sort(out)
	return out
}

// aliveCount is the number of nodes gossip sees alive, this one included.
func (t *table) aliveCount() int {
	n := 0
	for _, o := range t.owners {
		if o.state == ownerAlive {
			n++
		}
	}
	return n
}
