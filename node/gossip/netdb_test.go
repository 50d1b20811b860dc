package gossip_test

import (
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/node/gossip"
	"github.com/shoal-project/shoal/overlay/netdb"
)

// startWithTable runs a gossip member carrying an endpoint table.
func startWithTable(t *testing.T, id string, key []byte) (*gossip.Gossip, *netdb.DB) {
	t.Helper()
	db, err := netdb.New(netdb.Config{NodeID: id})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	g, err := gossip.Start(gossip.Config{
		NodeID: id, BindIP: "127.0.0.1", AdvertiseIP: "127.0.0.1", Key: key,
		Logger:   slog.New(slog.DiscardHandler),
		Delegate: db.Delegate(),
		Events:   db.Events(),
	})
	if err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	t.Cleanup(g.Shutdown)
	db.SetTransport(g)
	return g, db
}

func endpoint(network, id, node string, last byte) netdb.Endpoint {
	return netdb.Endpoint{
		NetworkID: network, EndpointID: id, NodeID: node,
		IP:   netip.AddrFrom4([4]byte{198, 19, 0, last}),
		MAC:  net.HardwareAddr{2, 0x42, 198, 19, 0, last},
		VTEP: netip.MustParseAddr("198.18.0.1"), ServiceName: "web",
	}
}

// waitCount follows db's view of network until it holds n endpoints.
func waitCount(t *testing.T, name string, db *netdb.DB, network string, n int) {
	t.Helper()
	sub, snap := db.Subscribe(network)
	defer sub.Close()
	have := map[string]bool{}
	for _, e := range snap {
		have[e.EndpointID] = true
	}
	deadline := time.After(joinWait)
	for len(have) != n {
		select {
		case ev := <-sub.Events():
			if ev.Type == netdb.Deleted {
				delete(have, ev.Endpoint.EndpointID)
			} else {
				have[ev.Endpoint.EndpointID] = true
			}
		case <-deadline:
			t.Fatalf("%s sees %v on %s, want %d endpoints", name, have, network, n)
		}
	}
}

func TestEndpointTableRidesGossip(t *testing.T) {
	key := testKey(5)
	ga, a := startWithTable(t, "node-a", key)
	gb, b := startWithTable(t, "node-b", key)
	gc, c := startWithTable(t, "node-c", key)
	for _, db := range []*netdb.DB{a, b, c} {
		if err := db.JoinNetwork("net-1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.JoinNetwork("net-2"); err != nil {
		t.Fatal(err)
	}
	// Endpoints are published before the members join, as the daemon does.
	for db, e := range map[*netdb.DB]netdb.Endpoint{
		a: endpoint("net-1", "a1", "node-a", 1),
		c: endpoint("net-1", "c1", "node-c", 3),
	} {
		if err := db.Publish(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Publish(endpoint("net-2", "a2", "node-a", 2)); err != nil {
		t.Fatal(err)
	}
	for _, g := range []*gossip.Gossip{gb, gc} {
		if _, err := g.Join([]string{addrOf(t, ga, "node-a")}); err != nil {
			t.Fatal(err)
		}
	}
	for name, db := range map[string]*netdb.DB{"node-a": a, "node-b": b, "node-c": c} {
		waitCount(t, name, db, "net-1", 2)
	}

	// Joining a network later fetches it over SendReliable.
	if err := b.JoinNetwork("net-2"); err != nil {
		t.Fatal(err)
	}
	waitCount(t, "node-b", b, "net-2", 1)

	// A crashed member's endpoints go, and Dead still reports it.
	deadCh := ga.Dead()
	gc.Shutdown()
	waitCount(t, "node-a", a, "net-1", 1)
	waitCount(t, "node-b", b, "net-1", 1)
	select {
	case id := <-deadCh:
		if id != "node-c" {
			t.Fatalf("Dead reported %q, want node-c", id)
		}
	case <-time.After(deadWait):
		t.Fatal("Dead did not report node-c")
	}
}

func TestSendReliableToUnknownMember(t *testing.T) {
	g := start(t, "node-a", testKey(6))
	err := g.SendReliable("node-x", []byte("hello"))
	if err == nil || !strings.Contains(err.Error(), "node-x: not a live member") {
		t.Fatalf("sending to an unknown member: %v, want a not-a-member error", err)
	}
}
