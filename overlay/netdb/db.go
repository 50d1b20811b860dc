package netdb

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Defaults for Config.
const (
	// DefaultDeadGrace keeps a dead node's endpoints for one more second:
	// with node/gossip's probe timing (500 ms probes, suspicion confirmed
	// in about 2–3 s) they leave every replica within 5 s of the death.
	DefaultDeadGrace      = time.Second
	DefaultTombstoneTTL   = 30 * time.Minute
	DefaultRetransmitMult = 4
)

const (
	// syncTimeout bounds the wait for a network sync reply before another
	// member is asked.
	syncTimeout = 2 * time.Second
	// syncRetry paces sync attempts after a failed send.
	syncRetry = 250 * time.Millisecond
	// relayMemory is how long an update for a network this node has not
	// joined is remembered, so it is relayed once and not again.
	relayMemory = time.Minute
)

// Config configures a DB.
type Config struct {
	// NodeID is this node's gossip name; it owns what it publishes.
	NodeID string
	// DeadGrace is how long the endpoints of a node gossip declared dead
	// stay visible (DefaultDeadGrace when zero).
	DeadGrace time.Duration
	// TombstoneTTL is how long deletions, and the endpoints of nodes that
	// stay dead, are remembered (DefaultTombstoneTTL when zero). It must
	// be longer than any partition after which a node may come back.
	TombstoneTTL time.Duration
	// RetransmitMult scales how many times each update is gossiped
	// (RetransmitMult × log10(nodes+1); DefaultRetransmitMult when zero).
	RetransmitMult int
	Logger         *slog.Logger
}

// Transport sends a message to one member of the cluster reliably; the
// member's memberlist delegate receives it in NotifyMsg. node/gossip
// implements it.
type Transport interface {
	SendReliable(nodeID string, msg []byte) error
}

// DB is this node's replica of the endpoint table. It is safe for
// concurrent use.
type DB struct {
	cfg     Config
	log     *slog.Logger
	queue   *memberlist.TransmitLimitedQueue
	members atomic.Int64 // nodes seen alive, for the retransmit limit

	mu        sync.Mutex
	t         *table
	closed    bool
	subs      map[*Subscription]struct{}
	syncs     map[string]*netSync
	relayed   map[entryKey]relayed
	timers    map[string]*time.Timer // grace timers of dead nodes
	transport Transport

	kick   chan struct{}
	outbox chan outgoing
	done   chan struct{}
	wg     sync.WaitGroup
}

// relayed remembers the newest update relayed for a network this node
// does not store.
type relayed struct {
	version uint64
	deleted bool
	at      time.Time
}

// New creates a DB. It runs two goroutines (network syncs and reaping)
// until Close.
func New(cfg Config) (*DB, error) {
	if cfg.NodeID == "" {
		return nil, errors.New("netdb: no node ID")
	}
	if cfg.DeadGrace <= 0 {
		cfg.DeadGrace = DefaultDeadGrace
	}
	if cfg.TombstoneTTL <= 0 {
		cfg.TombstoneTTL = DefaultTombstoneTTL
	}
	if cfg.RetransmitMult <= 0 {
		cfg.RetransmitMult = DefaultRetransmitMult
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	db := &DB{
		cfg:     cfg,
		log:     cfg.Logger,
		t:       newTable(cfg.NodeID, cfg.TombstoneTTL, time.Now()),
		subs:    map[*Subscription]struct{}{},
		syncs:   map[string]*netSync{},
		relayed: map[entryKey]relayed{},
		timers:  map[string]*time.Timer{},
		kick:    make(chan struct{}, 1),
		outbox:  make(chan outgoing, 64),
		done:    make(chan struct{}),
	}
	db.members.Store(1)
	db.queue = &memberlist.TransmitLimitedQueue{
		NumNodes:       func() int { return int(db.members.Load()) },
		RetransmitMult: cfg.RetransmitMult,
	}
	db.wg.Add(2)
	go func() { defer db.wg.Done(); db.syncLoop() }()
	go func() { defer db.wg.Done(); db.reapLoop() }()
	return db, nil
}

// Close stops the DB's goroutines and timers and closes every
// subscription. It sends nothing: the others expire this node's endpoints
// when gossip reports it gone.
func (db *DB) Close() {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return
	}
	db.closed = true
	for _, tm := range db.timers {
		tm.Stop()
	}
	for s := range db.subs {
		s.stop()
	}
	db.subs = nil
	db.mu.Unlock()
	close(db.done)
	db.wg.Wait()
}

// SetTransport gives the DB a way to reach one member directly, used to
// fetch a network's entries when this node joins it. Until it is set,
// joined networks wait for gossip's periodic state exchange.
func (db *DB) SetTransport(t Transport) {
	db.mu.Lock()
	db.transport = t
	db.mu.Unlock()
	db.poke()
}

// JoinNetwork makes this node store and announce network. Joining twice
// is harmless.
func (db *DB) JoinNetwork(network string) error {
	if network == "" {
		return errors.New("netdb: join: empty network ID")
	}
	return db.update(func(now time.Time, fx *effects) error {
		if !db.t.joined(network) {
			db.syncs[network] = &netSync{avoid: map[string]bool{}}
			fx.members = true
		}
		db.t.join(network, now, fx)
		return nil
	})
}

// LeaveNetwork deletes this node's endpoints on network, reports every
// endpoint of network to subscribers as Deleted, and stops storing it.
func (db *DB) LeaveNetwork(network string) error {
	return db.update(func(now time.Time, fx *effects) error {
		delete(db.syncs, network)
		db.t.leave(network, now, fx)
		return nil
	})
}

// Networks returns the networks this node has joined, sorted.
func (db *DB) Networks() []string {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.t.networks()
}

// Publish adds or replaces one of this node's endpoints. The network must
// be joined. NodeID may be left empty; it is this node's.
func (db *DB) Publish(ep Endpoint) error {
	ep = ep.Clone()
	if ep.NodeID == "" {
		ep.NodeID = db.cfg.NodeID
	}
	if ep.NodeID != db.cfg.NodeID {
		return fmt.Errorf("netdb: publish endpoint %q: owner %q is not this node (%q)", ep.EndpointID, ep.NodeID, db.cfg.NodeID)
	}
	ep.IP, ep.VTEP, ep.VIP = ep.IP.Unmap(), ep.VTEP.Unmap(), ep.VIP.Unmap()
	if err := ep.validate(); err != nil {
		return fmt.Errorf("netdb: publish: %w", err)
	}
	if n := len(encodeEntry(record{ep: ep, version: 1 << 62})); n > maxBroadcast {
		return fmt.Errorf("netdb: publish endpoint %q: %d bytes encoded, the limit is %d (too many aliases?)", ep.EndpointID, n, maxBroadcast)
	}
	return db.update(func(now time.Time, fx *effects) error {
		return db.t.publish(ep, now, fx)
	})
}

// Withdraw deletes one of this node's endpoints. Withdrawing an endpoint
// that does not exist is not an error.
func (db *DB) Withdraw(network, endpointID string) error {
	return db.update(func(now time.Time, fx *effects) error {
		return db.t.withdraw(network, endpointID, now, fx)
	})
}

// Endpoints returns the visible endpoints of network, sorted by ID.
func (db *DB) Endpoints(network string) []Endpoint {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.t.endpoints(network)
}

// Get returns one visible endpoint.
func (db *DB) Get(network, endpointID string) (Endpoint, bool) {
	db.mu.Lock()
	defer db.mu.Unlock()
	e := db.t.nets[network][endpointID]
	if e == nil || !db.t.visible(e) {
		return Endpoint{}, false
	}
	return e.ep.Clone(), true
}

// Subscribe returns the visible endpoints of network ("" for every joined
// network) and a subscription to every later change there, with nothing
// missed in between.
func (db *DB) Subscribe(network string) (*Subscription, []Endpoint) {
	db.mu.Lock()
	defer db.mu.Unlock()
	s := newSubscription(db, network)
	if db.closed {
		s.stop()
		return s, nil
	}
	db.subs[s] = struct{}{}
	if network != "" {
		return s, db.t.endpoints(network)
	}
	var all []Endpoint
	for _, n := range db.t.networks() {
		all = append(all, db.t.endpoints(n)...)
	}
	return s, all
}

func (db *DB) unsubscribe(s *Subscription) {
	db.mu.Lock()
	delete(db.subs, s)
	db.mu.Unlock()
}

// update runs fn on the table under the lock and carries out its effects.
func (db *DB) update(fn func(now time.Time, fx *effects) error) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return errors.New("netdb: closed")
	}
	var fx effects
	err := fn(time.Now(), &fx)
	db.applyLocked(&fx)
	return err
}

// applyLocked tells subscribers what changed, queues this node's writes
// for gossip and wakes the syncer when membership changed.
func (db *DB) applyLocked(fx *effects) {
	for _, c := range fx.changes {
		ev := eventOf(c)
		for s := range db.subs {
			if s.wants(ev.Endpoint.NetworkID) {
				s.push(ev)
			}
		}
	}
	for _, r := range fx.writes {
		db.broadcast(entryName(r.ep), encodeEntry(r))
	}
	if fx.interest {
		in := *db.t.interests[db.cfg.NodeID]
		db.broadcast(interestName(in.node), encodeInterest(in))
	}
	db.members.Store(int64(db.t.aliveCount()))
	if fx.members {
		db.poke()
	}
}

// broadcast queues msg for gossip. A message too big for one gossip packet
// (an interest listing very many networks) is left to the push/pull
// exchange instead of waiting in the queue forever.
func (db *DB) broadcast(name string, msg []byte) {
	if len(msg) > maxBroadcast {
		db.log.Debug("netdb message too big to gossip; it will travel by push/pull", "name", name, "bytes", len(msg))
		return
	}
	db.queue.QueueBroadcast(newBroadcast(name, msg))
}

// poke wakes the sync loop.
func (db *DB) poke() {
	select {
	case db.kick <- struct{}{}:
	default:
	}
}

func (db *DB) reapLoop() {
	every := min(max(db.cfg.TombstoneTTL/4, 100*time.Millisecond), 30*time.Second)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-db.done:
			return
		case <-tick.C:
		}
		db.mu.Lock()
		now := time.Now()
		db.t.reap(now)
		for k, r := range db.relayed {
			if now.Sub(r.at) > relayMemory {
				delete(db.relayed, k)
			}
		}
		db.mu.Unlock()
	}
}
