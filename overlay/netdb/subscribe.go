package netdb

import "sync"

// EventType says how an endpoint changed.
type EventType uint8

// Kinds of change.
const (
	// Added: the endpoint became visible.
	Added EventType = iota + 1
	// Updated: a visible endpoint changed; Prev holds the old value.
	Updated
	// Deleted: the endpoint is gone (withdrawn, its owner expired, or
	// this node left the network).
	Deleted
)

func (t EventType) String() string {
	switch t {
	case Added:
		return "added"
	case Updated:
		return "updated"
	case Deleted:
		return "deleted"
	}
	return "unknown"
}

// Event is one change of one endpoint as this node sees it.
type Event struct {
	Type EventType
	// Endpoint is the value after the change; for Deleted, the value that
	// went away.
	Endpoint Endpoint
	// Prev is the value before an Updated change.
	Prev Endpoint
}

func eventOf(c change) Event {
	switch {
	case c.prev == nil:
		return Event{Type: Added, Endpoint: c.next.Clone()}
	case c.next == nil:
		return Event{Type: Deleted, Endpoint: c.prev.Clone()}
	default:
		return Event{Type: Updated, Endpoint: c.next.Clone(), Prev: c.prev.Clone()}
	}
}

// Subscription delivers the changes of one network (or of every network)
// in the order they happened. Events are queued without bound so that
// gossip never waits for a subscriber and no change is lost; a subscriber
// must keep reading, and Close the subscription when done.
type Subscription struct {
	db      *DB
	network string
	ch      chan Event
	wake    chan struct{}
	done    chan struct{}
	once    sync.Once

	mu    sync.Mutex
	queue []Event
}

func newSubscription(db *DB, network string) *Subscription {
	s := &Subscription{
		db:      db,
		network: network,
		ch:      make(chan Event),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	go s.pump()
	return s
}

// Events returns the channel of changes. It is closed after Close, or
// when the DB is closed.
func (s *Subscription) Events() <-chan Event { return s.ch }

// Close stops the subscription and drops the events not yet read.
func (s *Subscription) Close() {
	s.db.unsubscribe(s)
	s.stop()
}

func (s *Subscription) stop() { s.once.Do(func() { close(s.done) }) }

func (s *Subscription) wants(network string) bool { return s.network == "" || s.network == network }

func (s *Subscription) push(ev Event) {
	s.mu.Lock()
	s.queue = append(s.queue, ev)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Subscription) pump() {
	defer close(s.ch)
	for {
		s.mu.Lock()
		q := s.queue
		s.queue = nil
		s.mu.Unlock()
		for _, ev := range q {
			select {
			case s.ch <- ev:
			case <-s.done:
				return
			}
		}
		if len(q) > 0 {
			continue
		}
		select {
		case <-s.wake:
		case <-s.done:
			return
		}
	}
}
