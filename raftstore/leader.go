package raftstore

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// LeaderChange describes this node's view of leadership.
type LeaderChange struct {
	// IsLeader is true once this node is leader AND its state machine has
	// applied every entry committed before its term (a barrier succeeded),
	// so leader-only work may start reading state. It turns false as soon
	// as leadership is lost.
	IsLeader bool
	// Term is the raft term this view was taken in.
	Term uint64
	// LeaderID and LeaderAddr name the known leader (empty when none).
	LeaderID   string
	LeaderAddr string
	// State is raft's state: "Leader", "Follower", "Candidate" or
	// "Shutdown".
	State string
}

// WatchLeader subscribes to leadership changes. The channel first yields
// the current view, then every change; if the subscriber falls behind,
// intermediate values are replaced so the latest one is always delivered
// (compare Term to notice a lost-and-regained leadership). The channel is
// closed after the final "Shutdown" value when the node shuts down, or when
// cancel is called. cancel is idempotent.
func (n *Node) WatchLeader() (<-chan LeaderChange, func()) {
	return n.leadership.subscribe()
}

// observeLeadership turns raft observations into published LeaderChange
// values. It runs until Shutdown.
//
// Each observation only triggers a re-read of raft's current state, so an
// observation dropped because the buffer was full loses nothing: a buffered
// observation is still pending and its processing re-reads the state.
func (n *Node) observeLeadership() {
	defer close(n.observerDone)
	for {
		n.refreshLeadership()
		select {
		case <-n.observations:
		case <-n.ctx.Done():
			return
		}
	}
}

func (n *Node) refreshLeadership() {
	state := n.raft.State()
	if state == raft.Shutdown {
		n.markStopped()
	}
	view := n.currentView()
	if state == raft.Leader {
		prev := n.leadership.current()
		if prev.IsLeader && prev.Term == view.Term {
			view.IsLeader = true
		} else if n.confirmLeadership(view.Term) {
			// Leadership may have moved on while the barrier ran; only
			// claim it if nothing changed.
			again := n.currentView()
			again.IsLeader = n.raft.State() == raft.Leader && again.Term == view.Term
			view = again
		}
	}
	n.leadership.publish(view)
}

func (n *Node) currentView() LeaderChange {
	addr, id := n.raft.LeaderWithID()
	return LeaderChange{
		Term:       n.raft.CurrentTerm(),
		LeaderID:   string(id),
		LeaderAddr: string(addr),
		State:      n.raft.State().String(),
	}
}

// confirmLeadership waits for a barrier so that everything committed by
// earlier leaders has been applied locally. It returns false if leadership
// of term was lost meanwhile or the node is shutting down. A barrier refused
// while this node is still leader of term (for example during a leadership
// transfer that then fails) is retried.
func (n *Node) confirmLeadership(term uint64) bool {
	for {
		_, err := n.await(n.ctx, "barrier", func() raft.Future { return n.raft.Barrier(0) })
		if err == nil {
			return true
		}
		if n.ctx.Err() != nil || n.raft.State() != raft.Leader || n.raft.CurrentTerm() != term {
			n.logger.Debug("raftstore: leadership not confirmed", "term", term, "error", err)
			return false
		}
		n.logger.Debug("raftstore: leadership barrier failed, retrying", "term", term, "error", err)
		retry := time.NewTimer(n.retryInterval)
		select {
		case <-n.observations:
			// Raft changed; loop to re-check before retrying. The caller
			// re-reads the state afterwards, so nothing is lost.
		case <-retry.C:
		case <-n.ctx.Done():
		}
		retry.Stop()
	}
}

// leadershipHub fans LeaderChange values out to subscribers. Each
// subscriber has a one-slot buffer holding the latest undelivered value.
type leadershipHub struct {
	mu     sync.Mutex
	latest LeaderChange
	subs   map[uint64]chan LeaderChange
	nextID uint64
	closed bool
}

func (h *leadershipHub) init(initial LeaderChange) {
	h.latest = initial
	h.subs = make(map[uint64]chan LeaderChange)
}

func (h *leadershipHub) current() LeaderChange {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.latest
}

func (h *leadershipHub) subscribe() (<-chan LeaderChange, func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := make(chan LeaderChange, 1)
	ch <- h.latest
	if h.closed {
		close(ch)
		return ch, func() {}
	}
	id := h.nextID
	h.nextID++
	h.subs[id] = ch
	var once sync.Once
	cancel := func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			if c, ok := h.subs[id]; ok {
				delete(h.subs, id)
				close(c)
			}
		})
	}
	return ch, cancel
}

// publish records v and delivers it to every subscriber unless it equals
// the latest value.
func (h *leadershipHub) publish(v LeaderChange) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || v == h.latest {
		return
	}
	h.latest = v
	for _, ch := range h.subs {
		offerLatest(ch, v)
	}
}

// close publishes a final value and closes every subscriber channel.
func (h *leadershipHub) close(final LeaderChange) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	h.latest = final
	for id, ch := range h.subs {
		offerLatest(ch, final)
		close(ch)
		delete(h.subs, id)
	}
}

// offerLatest puts v into ch's single slot, replacing an undelivered older
// value. Callers hold the hub lock, so no other sender competes for the
// slot and the final send cannot block.
func offerLatest(ch chan LeaderChange, v LeaderChange) {
	select {
	case ch <- v:
		return
	default:
	}
	select {
	case <-ch:
	default:
	}
	ch <- v
}
