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
	// filter, when set, keeps only the events it accepts; it runs while
	// events are published, so it must be cheap and must not block.
	filter func(Event) bool
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
			if s.filter != nil && ev.Kind != EventRestore && !s.filter(ev) {
				continue
			}
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
func (s *Store) Watch() (<-chan Event, func()) { return s.WatchFiltered(nil) }

// WatchFiltered is Watch keeping only the events filter accepts (restores
// always pass). Filtering at the source spares watchers that care about a
// sliver of the changes — a node's assignments — from waking for all.
func (s *Store) WatchFiltered(filter func(Event) bool) (<-chan Event, func()) {
	sub := &subscriber{ch: make(chan Event, watchBuffer), filter: filter}
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
	return s.ViewAndWatchFiltered(fn, nil)
}

// ViewAndWatchFiltered is ViewAndWatch with a filter, as WatchFiltered.
func (s *Store) ViewAndWatchFiltered(fn func(tx ReadTx), filter func(Event) bool) (<-chan Event, func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.View(fn)
	return s.WatchFiltered(filter)
}
