package store

import (
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/proto/shoalpb"
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

// broadcaster hands every committed change to the watchers. Watchers of
// everything get each event; a node's task watchers are found by the
// nodes an event concerns, so the cost of a change does not grow with the
// number of nodes being watched.
type broadcaster struct {
	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	byNode map[string]map[*NodeTaskWatch]struct{}
}

func newBroadcaster() *broadcaster {
	return &broadcaster{subs: map[*subscriber]struct{}{}, byNode: map[string]map[*NodeTaskWatch]struct{}{}}
}

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
	if len(b.byNode) == 0 {
		return
	}
	var woken []*NodeTaskWatch
	deliver := func(node string, ev Event) {
		for w := range b.byNode[node] {
			switch w.push(ev) {
			case pushedFirst:
				woken = append(woken, w)
			case pushOverflow:
				// Like a watcher of everything that cannot keep up.
				b.closeNodeLocked(w)
			}
		}
	}
	for _, ev := range events {
		ev.Index = index
		if ev.Kind == EventRestore {
			for node := range b.byNode {
				deliver(node, ev)
			}
			continue
		}
		t, ok := ev.Object.(*shoalpb.Task)
		if !ok {
			continue
		}
		if t.NodeId != "" {
			deliver(t.NodeId, ev)
		}
		if old, _ := ev.Old.(*shoalpb.Task); old != nil && old.NodeId != "" && old.NodeId != t.NodeId {
			deliver(old.NodeId, ev)
		}
	}
	for _, w := range woken {
		w.wake()
	}
}

func (b *broadcaster) closeLocked(s *subscriber) {
	if !s.closed {
		s.closed = true
		close(s.ch)
		delete(b.subs, s)
	}
}

func (b *broadcaster) closeNodeLocked(w *NodeTaskWatch) {
	if ws := b.byNode[w.node]; ws != nil {
		delete(ws, w)
		if len(ws) == 0 {
			delete(b.byNode, w.node)
		}
	}
	w.end()
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

// NodeTaskWatch receives the changes of the tasks of one node: every
// change of a task whose node, before or after the change, is that node,
// plus restores. Events wait in a queue that grows only as far as the
// watcher is behind; a watcher more than watchBuffer events behind is
// ended, and re-reads the store when it watches again.
type NodeTaskWatch struct {
	b     *broadcaster
	node  string
	ready chan struct{}

	mu    sync.Mutex
	queue []Event
	ended bool // ready is closed
}

// WatchNodeTasks subscribes to the changes of nodeID's tasks (see
// NodeTaskWatch). Cancel it when done.
func (s *Store) WatchNodeTasks(nodeID string) *NodeTaskWatch {
	w := &NodeTaskWatch{b: s.events, node: nodeID, ready: make(chan struct{}, 1)}
	s.events.mu.Lock()
	defer s.events.mu.Unlock()
	ws := s.events.byNode[nodeID]
	if ws == nil {
		ws = map[*NodeTaskWatch]struct{}{}
		s.events.byNode[nodeID] = ws
	}
	ws[w] = struct{}{}
	return w
}

// ViewAndWatchNodeTasks reads the store and starts WatchNodeTasks at the
// same point, so no change is missed or seen twice.
func (s *Store) ViewAndWatchNodeTasks(nodeID string, fn func(tx ReadTx)) *NodeTaskWatch {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.View(fn)
	return s.WatchNodeTasks(nodeID)
}

// Ready receives a value when events are waiting to be taken, and is
// closed once the watch has ended (cancelled, or fallen behind).
func (w *NodeTaskWatch) Ready() <-chan struct{} { return w.ready }

// Take returns the events waiting, oldest first. ok is false once the
// watch has ended; then no more events come.
func (w *NodeTaskWatch) Take() (events []Event, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return nil, false
	}
	events, w.queue = w.queue, nil
	return events, true
}

// Cancel ends the watch.
func (w *NodeTaskWatch) Cancel() {
	w.b.mu.Lock()
	defer w.b.mu.Unlock()
	w.b.closeNodeLocked(w)
}

type pushResult int

const (
	pushed       pushResult = iota // queued behind other events
	pushedFirst                    // queued first: the watcher must be woken
	pushOverflow                   // the queue is full: end the watch
)

func (w *NodeTaskWatch) push(ev Event) pushResult {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) >= watchBuffer {
		return pushOverflow
	}
	w.queue = append(w.queue, ev)
	if len(w.queue) == 1 {
		return pushedFirst
	}
	return pushed
}

func (w *NodeTaskWatch) wake() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return
	}
	select {
	case w.ready <- struct{}{}:
	default:
	}
}

func (w *NodeTaskWatch) end() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.ended {
		w.ended, w.queue = true, nil
		close(w.ready)
	}
}
