// Package logbroker owns log subscriptions. A client subscribes on any
// manager (streams are served where they arrive); that manager resolves
// what to read in its replica of the store, announces the subscription to
// the nodes concerned over the ListenSubscriptions streams they keep open
// to it, and relays what they publish back to the client. Every buffer is
// bounded: a slow client loses lines (and is told so) rather than holding
// up the nodes publishing, and a node that stops answering is given up
// after a while instead of holding the stream open forever.
//
// It must not import raft, worker/ or node/.
package logbroker

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// DefaultNodeTimeout is how long a subscription without follow waits for a
// node that sends nothing before giving up on its part.
const DefaultNodeTimeout = 10 * time.Second

const (
	// subscriberBuffer bounds the batches waiting for a slow subscriber.
	subscriberBuffer = 256
	// listenerBuffer bounds the subscription messages waiting for a node.
	listenerBuffer = 64
)

// Broker serves the Logs service of one manager.
type Broker struct {
	shoalpb.UnimplementedLogsServer

	Store *store.Store
	Log   *slog.Logger
	// NodeTimeout overrides DefaultNodeTimeout when positive.
	NodeTimeout time.Duration
	// Now defaults to time.Now.
	Now func() time.Time

	mu        sync.Mutex
	listeners map[string]map[*listener]struct{} // by node ID
	subs      map[string]*subscription
}

func (b *Broker) nodeTimeout() time.Duration {
	if b.NodeTimeout > 0 {
		return b.NodeTimeout
	}
	return DefaultNodeTimeout
}

func (b *Broker) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

func (b *Broker) logger() *slog.Logger {
	if b.Log != nil {
		return b.Log
	}
	return slog.New(slog.DiscardHandler)
}

// initLocked makes the maps; b.mu must be held.
func (b *Broker) initLocked() {
	if b.subs == nil {
		b.subs = map[string]*subscription{}
		b.listeners = map[string]map[*listener]struct{}{}
	}
}

// listener is one node's open ListenSubscriptions stream.
type listener struct {
	nodeID  string
	ch      chan *shoalpb.SubscriptionMessage
	cut     chan struct{}
	cutOnce sync.Once
}

// send queues m for the node without waiting; a node that does not read
// its messages is cut off (it reconnects and is sent what is still open).
func (l *listener) send(m *shoalpb.SubscriptionMessage) bool {
	select {
	case l.ch <- m:
		return true
	default:
		l.cutOnce.Do(func() { close(l.cut) })
		return false
	}
}

// nodePart is what a subscription expects from one node.
type nodePart struct {
	// tasks were announced to the node (or will be once it listens).
	tasks map[string]bool
	// announced is set once the node was sent the subscription.
	announced bool
	// done is set once the node closed its part, or was given up.
	done bool
	// deadline is when a subscription without follow gives up on a node
	// that sends nothing; it moves on with every message from it.
	deadline time.Time
}

// subscription is one client's request for logs.
type subscription struct {
	id   string
	opts *shoalpb.LogSubscriptionOptions
	// services are the service IDs whose new tasks a follow picks up.
	services map[string]bool
	out      chan []*shoalpb.LogMessage
	changed  chan struct{}

	// Guarded by Broker.mu.
	nodes    map[string]*nodePart
	warnings []string
	dropped  int
	ended    bool
}

func (s *subscription) poke() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// allDoneLocked reports whether every node concerned closed its part.
func (s *subscription) allDoneLocked() bool {
	for _, p := range s.nodes {
		if !p.done {
			return false
		}
	}
	return true
}

// takeNotesLocked returns and clears the warnings waiting for the client.
func (s *subscription) takeNotesLocked() []string {
	notes := s.warnings
	s.warnings = nil
	if s.dropped > 0 {
		notes = append(notes, fmt.Sprintf("%d log lines were dropped: the client read them too slowly", s.dropped))
		s.dropped = 0
	}
	return notes
}

// message is the subscription message announcing tasks to a node.
func (s *subscription) message(tasks []string, opts *shoalpb.LogSubscriptionOptions) *shoalpb.SubscriptionMessage {
	return &shoalpb.SubscriptionMessage{Id: s.id, TaskIds: tasks, Options: opts}
}

// announceLocked sends tasks of s to every listener of nodeID. Without a
// listener a followed part waits for the node to listen; otherwise the
// node's part is given up at once with a warning.
func (b *Broker) announceLocked(s *subscription, nodeID string, tasks []string, opts *shoalpb.LogSubscriptionOptions) {
	p := s.nodes[nodeID]
	sent := false
	for l := range b.listeners[nodeID] {
		if l.send(s.message(tasks, opts)) {
			sent = true
		}
	}
	if sent {
		p.announced = true
		p.deadline = b.now().Add(b.nodeTimeout())
		return
	}
	if !s.opts.GetFollow() {
		p.done = true
		s.warnings = append(s.warnings, fmt.Sprintf("node %s is not connected to this manager: its logs are missing", b.nodeName(nodeID)))
		s.poke()
	}
}

// nodeName names a node for warnings: its hostname and ID when known.
func (b *Broker) nodeName(id string) string {
	var host string
	if b.Store != nil {
		b.Store.View(func(tx store.ReadTx) { host = tx.Node(id).GetDescription().GetHostname() })
	}
	if host == "" {
		return id
	}
	return host + " (" + id + ")"
}

// addListener registers a node's stream and sends it the subscriptions
// still waiting for its part.
func (b *Broker) addListener(nodeID string) *listener {
	l := &listener{nodeID: nodeID, ch: make(chan *shoalpb.SubscriptionMessage, listenerBuffer), cut: make(chan struct{})}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.initLocked()
	if b.listeners[nodeID] == nil {
		b.listeners[nodeID] = map[*listener]struct{}{}
	}
	b.listeners[nodeID][l] = struct{}{}
	for _, s := range b.subs {
		p := s.nodes[nodeID]
		if s.ended || p == nil || p.done || len(p.tasks) == 0 {
			continue
		}
		if l.send(s.message(sortedKeys(p.tasks), s.opts)) && !p.announced {
			p.announced = true
			p.deadline = b.now().Add(b.nodeTimeout())
		}
	}
	return l
}

func (b *Broker) removeListener(l *listener) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.listeners[l.nodeID], l)
	if len(b.listeners[l.nodeID]) == 0 {
		delete(b.listeners, l.nodeID)
	}
}

// addSubscription registers s and announces it to its nodes.
func (b *Broker) addSubscription(s *subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.initLocked()
	b.subs[s.id] = s
	for _, nodeID := range sortedKeys(s.nodes) {
		b.announceLocked(s, nodeID, sortedKeys(s.nodes[nodeID].tasks), s.opts)
	}
}

// removeSubscription forgets s and tells the nodes still sending to stop.
func (b *Broker) removeSubscription(s *subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s.ended = true
	delete(b.subs, s.id)
	for nodeID, p := range s.nodes {
		if p.done || !p.announced {
			continue
		}
		for l := range b.listeners[nodeID] {
			l.send(&shoalpb.SubscriptionMessage{Id: s.id, Close: true})
		}
	}
}

// addTask adds a new task of a followed service to s.
func (b *Broker) addTask(s *subscription, t *shoalpb.Task) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.ended {
		return
	}
	p := s.nodes[t.NodeId]
	if p == nil {
		p = &nodePart{tasks: map[string]bool{}}
		s.nodes[t.NodeId] = p
	}
	if p.tasks[t.Id] {
		return
	}
	p.tasks[t.Id] = true
	p.done = false
	// A new task's output is all new: read it from its start.
	opts := &shoalpb.LogSubscriptionOptions{Follow: true, Tail: -1, Timestamps: s.opts.GetTimestamps(), SinceNs: s.opts.GetSinceNs()}
	b.announceLocked(s, t.NodeId, []string{t.Id}, opts)
}

// expire gives up on the parts of nodes that stayed silent too long.
func (b *Broker) expire(s *subscription) {
	if s.opts.GetFollow() {
		return
	}
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, nodeID := range sortedKeys(s.nodes) {
		p := s.nodes[nodeID]
		if p.done || !p.announced || now.Before(p.deadline) {
			continue
		}
		p.done = true
		s.warnings = append(s.warnings, fmt.Sprintf("node %s did not answer within %v: its logs are incomplete", b.nodeName(nodeID), b.nodeTimeout()))
		s.poke()
	}
}

func newID() string {
	var buf [16]byte
	if _, err := rand.Read(buf[:]); err != nil {
		panic(fmt.Sprintf("read random bytes: %v", err))
	}
	return hex.EncodeToString(buf[:])
}
