// Package gossip runs the node's memberlist: encrypted gossip that finds
// the cluster's members and suspects failures fast. Gossip is never a source
// of truth for cluster state; it informs liveness and reachability and
// carries the overlay endpoint table (overlay/netdb), which plugs in through
// Config.Delegate and Config.Events and reaches single members through
// SendReliable.
//
// It must not import manager/, worker/ or raftstore/.
package gossip

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// DefaultPort is the gossip port.
const DefaultPort = 7946

// Config configures gossip.
type Config struct {
	NodeID string
	// BindIP and Port are where gossip listens (TCP and UDP).
	BindIP string
	Port   int
	// AdvertiseIP is the address other members reach this one at.
	AdvertiseIP string
	// Key encrypts all gossip (16, 24 or 32 bytes).
	Key    []byte
	Logger *slog.Logger
	// Delegate, if set, carries application data over gossip: its
	// broadcasts piggyback on gossip messages, its state rides the
	// periodic push/pull and it receives the messages sent with
	// SendReliable. overlay/netdb's DB.Delegate is one.
	Delegate memberlist.Delegate
	// Events, if set, is told of every membership change after Gossip
	// itself has handled it. It is called from memberlist's own goroutines
	// with memberlist's locks held: it must not block, nor call back into
	// Gossip.
	Events memberlist.EventDelegate
}

// Gossip is a running member of the cluster's gossip pool.
type Gossip struct {
	ml     *memberlist.Memberlist
	log    *slog.Logger
	events memberlist.EventDelegate
	mu     sync.Mutex
	subs   []chan string
}

// Start joins nobody yet: it opens the gossip listener.
func Start(cfg Config) (*Gossip, error) {
	if len(cfg.Key) != 16 && len(cfg.Key) != 24 && len(cfg.Key) != 32 {
		return nil, fmt.Errorf("gossip key has %d bytes; want 16, 24 or 32", len(cfg.Key))
	}
	g := &Gossip{log: cfg.Logger, events: cfg.Events}
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.NodeID
	mc.BindAddr = cfg.BindIP
	mc.BindPort = cfg.Port
	mc.AdvertiseAddr = cfg.AdvertiseIP
	mc.AdvertisePort = cfg.Port
	mc.SecretKey = cfg.Key
	mc.GossipVerifyIncoming = true
	mc.GossipVerifyOutgoing = true
	// Faster failure detection than the LAN defaults: probe twice a second
	// and confirm suspicion within a few seconds on small clusters.
	mc.ProbeInterval = 500 * time.Millisecond
	mc.ProbeTimeout = 300 * time.Millisecond
	mc.SuspicionMult = 3
	mc.Events = g
	mc.Delegate = cfg.Delegate
	mc.Logger = log.New(&levelWriter{log: cfg.Logger}, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("start gossip on %s:%d: %w", cfg.BindIP, cfg.Port, err)
	}
	g.ml = ml
	return g, nil
}

// Join contacts the given gossip addresses (host:port); it succeeds if any
// answered.
func (g *Gossip) Join(addrs []string) (int, error) {
	if len(addrs) == 0 {
		return 0, nil
	}
	return g.ml.Join(addrs)
}

// Alive reports whether nodeID is a member gossip has not declared dead.
// A member under suspicion still counts as alive: memberlist (v0.5) keeps
// the suspect state private, so a failure shows here only once the
// suspicion is confirmed (about 2–3 s with the timing set in Start).
func (g *Gossip) Alive(nodeID string) bool {
	for _, m := range g.ml.Members() {
		if m.Name == nodeID {
			return m.State == memberlist.StateAlive
		}
	}
	return false
}

// Members returns the IDs and gossip addresses of the members gossip has
// not declared dead or gone: alive ones and suspect ones. A suspect member
// stays listed because suspicion is often wrong (a busy or restarting node
// refutes it) and memberlist reports no event when it clears, so a list
// taken during the suspicion would otherwise lack the node until the next
// membership change.
func (g *Gossip) Members() map[string]string {
	out := map[string]string{}
	for _, m := range g.ml.Members() {
		out[m.Name] = net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port)))
	}
	return out
}

// Dead returns a channel that receives the ID of every member gossip
// declares dead or gone. Slow readers miss events rather than block gossip.
func (g *Gossip) Dead() <-chan string {
	ch := make(chan string, 64)
	g.mu.Lock()
	g.subs = append(g.subs, ch)
	g.mu.Unlock()
	return ch
}

// SendReliable sends msg to the member nodeID over a TCP stream, encrypted
// like all gossip; the member's Config.Delegate receives it in NotifyMsg.
func (g *Gossip) SendReliable(nodeID string, msg []byte) error {
	for _, m := range g.ml.Members() {
		if m.Name == nodeID {
			if err := g.ml.SendReliable(m, msg); err != nil {
				return fmt.Errorf("gossip send to %s: %w", nodeID, err)
			}
			return nil
		}
	}
	return fmt.Errorf("gossip send to %s: not a live member", nodeID)
}

// NotifyJoin implements memberlist.EventDelegate.
func (g *Gossip) NotifyJoin(n *memberlist.Node) {
	g.log.Debug("gossip member alive", "node", n.Name, "addr", n.Address())
	if g.events != nil {
		g.events.NotifyJoin(n)
	}
}

// NotifyLeave implements memberlist.EventDelegate.
func (g *Gossip) NotifyLeave(n *memberlist.Node) {
	g.log.Info("gossip member gone", "node", n.Name, "addr", n.Address())
	g.mu.Lock()
	for _, ch := range g.subs {
		select {
		case ch <- n.Name:
		default:
		}
	}
	g.mu.Unlock()
	if g.events != nil {
		g.events.NotifyLeave(n)
	}
}

// NotifyUpdate implements memberlist.EventDelegate.
func (g *Gossip) NotifyUpdate(n *memberlist.Node) {
	if g.events != nil {
		g.events.NotifyUpdate(n)
	}
}

// Leave tells the others this member is going, then stops.
func (g *Gossip) Leave(timeout time.Duration) {
	if err := g.ml.Leave(timeout); err != nil {
		g.log.Debug("gossip leave", "err", err)
	}
	g.Shutdown()
}

// Shutdown stops gossip without telling anyone (as a crash would).
func (g *Gossip) Shutdown() {
	if err := g.ml.Shutdown(); err != nil {
		g.log.Debug("gossip shutdown", "err", err)
	}
}

// levelWriter turns memberlist's "[LEVEL] memberlist: msg" lines into slog.
type levelWriter struct{ log *slog.Logger }

var _ io.Writer = (*levelWriter)(nil)

func (w *levelWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	lvl := slog.LevelInfo
	for prefix, l := range map[string]slog.Level{"[DEBUG]": slog.LevelDebug, "[WARN]": slog.LevelWarn, "[ERR]": slog.LevelError, "[INFO]": slog.LevelInfo} {
		if len(line) >= len(prefix) && line[:len(prefix)] == prefix {
			lvl, line = l, string(bytes.TrimSpace([]byte(line[len(prefix):])))
			break
		}
	}
	w.log.Log(context.Background(), lvl, line, "component", "gossip")
	return len(p), nil
}
