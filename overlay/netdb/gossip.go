package netdb

import (
	"bytes"
	"time"

	"github.com/hashicorp/memberlist"
)

// Delegate returns the memberlist delegate that carries the table: updates
// piggyback on gossip and the full table rides memberlist's push/pull.
// Put it in the memberlist configuration (node/gossip Config.Delegate).
func (db *DB) Delegate() memberlist.Delegate { return delegate{db} }

// Events returns the memberlist event delegate that tells the table which
// nodes are alive: endpoints of a node declared dead are expired after
// Config.DeadGrace. node/gossip Config.Events forwards to it.
func (db *DB) Events() memberlist.EventDelegate { return events{db} }

type delegate struct{ db *DB }

func (delegate) NodeMeta(int) []byte { return nil }

func (d delegate) NotifyMsg(buf []byte) { d.db.handleMessage(buf) }

func (d delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.db.queue.GetBroadcasts(overhead, limit)
}

func (d delegate) LocalState(bool) []byte { return d.db.localState() }

func (d delegate) MergeRemoteState(buf []byte, _ bool) { d.db.handleMessage(buf) }

type events struct{ db *DB }

func (e events) NotifyJoin(n *memberlist.Node) { e.db.nodeAlive(n.Name) }

func (e events) NotifyLeave(n *memberlist.Node) { e.db.nodeDead(n.Name) }

func (events) NotifyUpdate(*memberlist.Node) {}

// broadcast is one queued gossip message. Messages about the same entry
// (or the same node's interest) share a name, so a newer one replaces an
// older one still in the queue.
type broadcast struct {
	name string
	msg  []byte
}

func newBroadcast(name string, msg []byte) *broadcast { return &broadcast{name: name, msg: msg} }

func (b *broadcast) Name() string    { return b.name }
func (b *broadcast) Message() []byte { return b.msg }
func (b *broadcast) Finished()       {}
func (b *broadcast) Invalidates(o memberlist.Broadcast) bool {
	nb, ok := o.(memberlist.NamedBroadcast)
	return ok && nb.Name() == b.name
}

func entryName(ep Endpoint) string { return "e\x00" + ep.NetworkID + "\x00" + ep.EndpointID }

func interestName(node string) string { return "i\x00" + node }

func (db *DB) nodeAlive(id string) {
	_ = db.update(func(now time.Time, fx *effects) error {
		if tm := db.timers[id]; tm != nil {
			tm.Stop()
			delete(db.timers, id)
		}
		db.t.nodeAlive(id, now, fx)
		return nil
	})
}

func (db *DB) nodeDead(id string) {
	_ = db.update(func(now time.Time, fx *effects) error {
		gen, ok := db.t.nodeDead(id, now, fx)
		if !ok {
			return nil
		}
		db.log.Debug("node dead; expiring its endpoints after the grace", "node", id, "grace", db.cfg.DeadGrace)
		if tm := db.timers[id]; tm != nil {
			tm.Stop()
		}
		var tm *time.Timer
		tm = time.AfterFunc(db.cfg.DeadGrace, func() {
			_ = db.update(func(now time.Time, fx *effects) error {
				if db.timers[id] == tm {
					delete(db.timers, id)
				}
				db.t.nodeExpire(id, gen, now, fx)
				if n := len(fx.changes); n > 0 {
					db.log.Info("expired the endpoints of a dead node", "node", id, "endpoints", n)
				}
				return nil
			})
		})
		db.timers[id] = tm
		return nil
	})
}

// handleMessage takes every message memberlist delivers: gossiped
// updates, direct sync messages and push/pull states. buf is only valid
// during the call.
func (db *DB) handleMessage(buf []byte) {
	typ, body, err := splitMessage(buf)
	if err != nil {
		db.log.Debug("dropping netdb message", "err", err)
		return
	}
	switch typ {
	case msgEntry:
		r, err := decodeRecord(body)
		if err != nil {
			db.log.Debug("dropping bad netdb entry", "err", err)
			return
		}
		db.mergeUpdate(r, bytes.Clone(buf))
	case msgInterest:
		in, err := decodeInterest(body)
		if err != nil {
			db.log.Debug("dropping bad netdb interest", "err", err)
			return
		}
		db.mergeInterest(in, bytes.Clone(buf))
	case msgSyncRequest, msgSyncReply:
		s, err := decodeNetState(body)
		if err != nil {
			db.log.Debug("dropping bad netdb sync", "err", err)
			return
		}
		if typ == msgSyncRequest {
			db.answerSync(s)
		} else {
			db.mergeSyncReply(s)
		}
	case msgState:
		s, err := decodeState(body)
		if err != nil {
			db.log.Debug("dropping bad netdb state", "err", err)
			return
		}
		db.mergeState(s)
	default:
		// A newer node's message type: nothing to do with it.
	}
}

// mergeUpdate applies a gossiped entry and relays it once if it was news.
// Updates for networks this node has not joined are relayed, not stored.
func (db *DB) mergeUpdate(r record, raw []byte) {
	_ = db.update(func(now time.Time, fx *effects) error {
		news := false
		if db.t.joined(r.ep.NetworkID) {
			news = db.t.merge(r, now, fx)
		} else {
			db.t.observe(r.version)
			k := entryKey{r.ep.NetworkID, r.ep.EndpointID}
			old, seen := db.relayed[k]
			news = !seen || r.version > old.version || r.version == old.version && r.deleted && !old.deleted
			if news {
				db.relayed[k] = relayed{version: r.version, deleted: r.deleted, at: now}
			}
		}
		if news {
			db.broadcast(entryName(r.ep), raw)
		}
		return nil
	})
}

func (db *DB) mergeInterest(in interestRec, raw []byte) {
	_ = db.update(func(now time.Time, fx *effects) error {
		if db.t.mergeInterest(in, now, fx) {
			db.broadcast(interestName(in.node), raw)
		}
		return nil
	})
}

// localState is this node's side of a push/pull: its interest table and
// the entries of every network it has joined.
func (db *DB) localState() []byte {
	db.mu.Lock()
	defer db.mu.Unlock()
	now := time.Now()
	s := fullState{node: db.cfg.NodeID, clock: db.t.clock, networks: db.t.networks(), interests: db.t.interestList()}
	for _, n := range s.networks {
		s.records = append(s.records, db.t.records(n, now)...)
	}
	return encodeState(s)
}

// mergeState applies another node's push/pull state.
func (db *DB) mergeState(s fullState) {
	_ = db.update(func(now time.Time, fx *effects) error {
		for _, in := range s.interests {
			db.t.mergeInterest(in, now, fx)
		}
		present := map[entryKey]bool{}
		for _, r := range s.records {
			present[entryKey{r.ep.NetworkID, r.ep.EndpointID}] = true
			db.t.merge(r, now, fx)
		}
		db.t.mergeAbsent(s.node, s.clock, "", present, now, fx)
		for _, n := range s.networks {
			if ns := db.syncs[n]; ns != nil && s.node != db.cfg.NodeID {
				ns.synced = true
			}
		}
		return nil
	})
}
