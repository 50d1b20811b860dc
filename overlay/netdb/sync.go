package netdb

import (
	"math/rand/v2"
	"time"
)

// A node that joins a network asks one member of it for its copy, over
// the Transport: a sync request carries the asker's own copy (so the
// member learns it too) and the reply carries the member's. A network
// stays unsynced until some other node's full copy of it has been merged,
// by a reply or by memberlist's push/pull. While it is unsynced and a
// member is known, the syncer keeps asking, one member at a time, moving
// to another member when one does not answer within syncTimeout.

// netSync is the sync progress of one joined network.
type netSync struct {
	synced   bool
	inflight string    // member asked, awaiting its reply
	deadline time.Time // when to give up on inflight
	avoid    map[string]bool
}

// outgoing is a message to send over the Transport.
type outgoing struct {
	node    string
	network string // for sync requests: what to mark failed if sending fails
	msg     []byte
}

func (db *DB) syncLoop() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-db.done:
			return
		case m := <-db.outbox:
			db.send(m)
			continue
		case <-db.kick:
		case <-timer.C:
		}
		reqs, next := db.planSyncs(time.Now())
		for _, m := range reqs {
			if !db.send(m) {
				next = min(next, syncRetry)
			}
		}
		timer.Reset(next)
	}
}

// send delivers m and reports whether it went out. A failed sync request
// frees its network to ask another member.
func (db *DB) send(m outgoing) bool {
	db.mu.Lock()
	tr := db.transport
	db.mu.Unlock()
	if tr == nil {
		return false
	}
	err := tr.SendReliable(m.node, m.msg)
	if err == nil {
		return true
	}
	db.log.Debug("netdb send failed", "node", m.node, "err", err)
	if m.network != "" {
		db.mu.Lock()
		if ns := db.syncs[m.network]; ns != nil && ns.inflight == m.node {
			ns.inflight = ""
			ns.avoid[m.node] = true
		}
		db.mu.Unlock()
	}
	return false
}

// planSyncs picks a member to ask for each unsynced network and returns
// the requests and when to look again.
func (db *DB) planSyncs(now time.Time) ([]outgoing, time.Duration) {
	db.mu.Lock()
	defer db.mu.Unlock()
	next := time.Hour
	if db.transport == nil || db.closed {
		return nil, next
	}
	var reqs []outgoing
	for network, ns := range db.syncs {
		if ns.synced {
			continue
		}
		if ns.inflight != "" {
			if now.Before(ns.deadline) {
				next = min(next, ns.deadline.Sub(now))
				continue
			}
			db.log.Debug("netdb sync timed out", "network", network, "node", ns.inflight)
			ns.avoid[ns.inflight] = true
			ns.inflight = ""
		}
		members := db.t.members(network)
		var cands []string
		for _, m := range members {
			if !ns.avoid[m] {
				cands = append(cands, m)
			}
		}
		if len(cands) == 0 {
			if len(members) > 0 {
				// Every member failed once: start over after a pause.
				clear(ns.avoid)
				next = min(next, syncRetry)
			}
			continue
		}
		peer := cands[rand.IntN(len(cands))]
		ns.inflight, ns.deadline = peer, now.Add(syncTimeout)
		next = min(next, syncTimeout)
		s := netState{node: db.cfg.NodeID, clock: db.t.clock, network: network, records: db.t.records(network, now)}
		reqs = append(reqs, outgoing{node: peer, network: network, msg: encodeNetState(msgSyncRequest, s)})
	}
	return reqs, next
}

// answerSync merges an asker's copy of a network and sends back this
// node's copy.
func (db *DB) answerSync(s netState) {
	var reply []byte
	_ = db.update(func(now time.Time, fx *effects) error {
		r := netState{node: db.cfg.NodeID, network: s.network}
		if db.t.joined(s.network) {
			db.mergeNetState(s, now, fx)
			r.records = db.t.records(s.network, now)
		} else {
			r.notMember = true
		}
		r.clock = db.t.clock
		reply = encodeNetState(msgSyncReply, r)
		return nil
	})
	if reply == nil {
		return
	}
	select {
	case db.outbox <- outgoing{node: s.node, msg: reply}:
	default:
		db.log.Debug("netdb outbox full; dropping a sync reply", "node", s.node)
	}
}

func (db *DB) mergeSyncReply(s netState) {
	_ = db.update(func(now time.Time, fx *effects) error {
		ns := db.syncs[s.network]
		if ns != nil && ns.inflight == s.node {
			ns.inflight = ""
		}
		if s.notMember {
			if ns != nil {
				ns.avoid[s.node] = true
				fx.members = true
			}
			return nil
		}
		if !db.t.joined(s.network) {
			return nil
		}
		db.mergeNetState(s, now, fx)
		if ns != nil {
			ns.synced = true
		}
		return nil
	})
}

// mergeNetState merges another node's full copy of one network.
func (db *DB) mergeNetState(s netState, now time.Time, fx *effects) {
	present := map[entryKey]bool{}
	for _, r := range s.records {
		if r.ep.NetworkID != s.network {
			continue
		}
		present[entryKey{r.ep.NetworkID, r.ep.EndpointID}] = true
		db.t.merge(r, now, fx)
	}
	db.t.mergeAbsent(s.node, s.clock, s.network, present, now, fx)
}
