package store

import (
	"sync"

	"google.golang.org/protobuf/proto"
)

// EventKind says what happened to an object.
type EventKind int

// Event kinds.
const (
	EventCreate EventKind = iota + 1
	EventUpdate
	EventRemove
	// EventRestore means the whole store was replaced from a snapshot;
	// watchers must re-read everything.
	EventRestore
)

// Event is one change committed to the store.
type Event struct {
	Kind   EventKind
	Index  uint64
	Object proto.Message // the new object (the removed one for EventRemove)
	Old    proto.Message // the previous object, nil on create
}

// watchBuffer bounds how far a watcher may fall behind before it is cut off.
const watchBuffer = 4096

type subscriber struct {
	ch     chan Event
	closed bool
}

type broadcaster struct {
	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

func newBroadcaster() *broadcaster { return &broadcaster{subs: map[*subscriber]struct{}{}} }

func (b *broadcaster) publish(index uint64, events []Event) {
	if len(events) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		for _, ev := range events {
			ev.Index = index
			select {
			case s.ch <- ev:
			default:
				// A watcher that cannot keep up is closed rather than
				// allowed to stall the state machine; it re-reads the
				// store when it subscribes again.
				b.closeLocked(s)
			}
			if s.closed {
				break
			}
		}
	}
}

func (b *broadcaster) closeLocked(s *subscriber) {
	if !s.closed {
		s.closed = true
		close(s.ch)
		delete(b.subs, s)
	}
}

// Watch subscribes to committed changes. The channel is closed when cancel
// is called or when the watcher falls too far behind.
func (s *Store) Watch() (<-chan Event, func()) {
	sub := &subscriber{ch: make(chan Event, watchBuffer)}
	s.events.mu.Lock()
	s.events.subs[sub] = struct{}{}
	s.events.mu.Unlock()
	return sub.ch, func() {
		s.events.mu.Lock()
		s.events.closeLocked(sub)
		s.events.mu.Unlock()
	}
}

// ViewAndWatch reads the store and subscribes to changes at the same point,
// so no change is missed or seen twice.
func (s *Store) ViewAndWatch(fn func(tx ReadTx)) (<-chan Event, func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.View(fn)
	return s.Watch()
}
