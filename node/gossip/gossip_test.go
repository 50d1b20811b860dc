package gossip_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/node/gossip"
)

const (
	// joinWait bounds how long members take to see each other.
	joinWait = 10 * time.Second
	// deadWait bounds failure detection: probes every 500ms, then a
	// suspicion timeout of a few seconds.
	deadWait = 15 * time.Second
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// start runs a gossip member on a free loopback port; it is shut down when
// the test ends.
func start(t *testing.T, id string, key []byte) *gossip.Gossip {
	t.Helper()
	g, err := gossip.Start(gossip.Config{
		NodeID:      id,
		BindIP:      "127.0.0.1",
		Port:        0,
		AdvertiseIP: "127.0.0.1",
		Key:         key,
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	t.Cleanup(g.Shutdown)
	return g
}

// addrOf returns the gossip address g advertises for itself.
func addrOf(t *testing.T, g *gossip.Gossip, id string) string {
	t.Helper()
	addr, ok := g.Members()[id]
	if !ok {
		t.Fatalf("%s does not list itself among its members: %v", id, g.Members())
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := strconv.Atoi(port); host != "127.0.0.1" || p == 0 {
		t.Fatalf("%s advertises %s, want 127.0.0.1 and a bound port", id, addr)
	}
	return addr
}

// eventually polls cond every 50ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", d, what)
		}
		<-tick.C
	}
}

func TestStartRejectsBadKeyLength(t *testing.T) {
	for _, n := range []int{0, 8, 15, 17, 31, 33, 64} {
		g, err := gossip.Start(gossip.Config{
			NodeID: "n", BindIP: "127.0.0.1", AdvertiseIP: "127.0.0.1",
			Key: make([]byte, n), Logger: slog.New(slog.DiscardHandler),
		})
		if err == nil {
			g.Shutdown()
			t.Errorf("Start with a %d-byte key succeeded", n)
			continue
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("%d bytes", n)) {
			t.Errorf("error for a %d-byte key does not give the length: %v", n, err)
		}
	}
}

func TestStartAcceptsAESKeyLengths(t *testing.T) {
	for _, n := range []int{16, 24, 32} {
		g := start(t, fmt.Sprintf("node-%d", n), bytes.Repeat([]byte{7}, n))
		if !g.Alive(fmt.Sprintf("node-%d", n)) {
			t.Errorf("member with a %d-byte key does not see itself alive", n)
		}
	}
}

func TestMembersSeeEachOther(t *testing.T) {
	key := testKey(1)
	ids := []string{"node-a", "node-b", "node-c"}
	gs := map[string]*gossip.Gossip{}
	want := map[string]string{}
	for _, id := range ids {
		gs[id] = start(t, id, key)
		want[id] = addrOf(t, gs[id], id)
	}
	seen := map[string]string{}
	for id, addr := range want {
		if other, dup := seen[addr]; dup {
			t.Fatalf("%s and %s share address %s", id, other, addr)
		}
		seen[addr] = id
	}

	if n, err := gs["node-a"].Join(nil); n != 0 || err != nil {
		t.Errorf("Join(nil) = (%d, %v), want (0, nil)", n, err)
	}
	for _, id := range []string{"node-b", "node-c"} {
		n, err := gs[id].Join([]string{want["node-a"]})
		if err != nil || n != 1 {
			t.Fatalf("%s joining node-a: (%d, %v), want (1, nil)", id, n, err)
		}
	}

	for _, id := range ids {
		g := gs[id]
		eventually(t, joinWait, id+" sees all members", func() bool {
			return maps.Equal(g.Members(), want)
		})
		for _, other := range ids {
			if !g.Alive(other) {
				t.Errorf("%s does not see %s alive", id, other)
			}
		}
		if g.Alive("node-unknown") {
			t.Errorf("%s sees an unknown node alive", id)
		}
	}
}

func TestMemberWithOtherKeyCannotJoin(t *testing.T) {
	a := start(t, "node-a", testKey(1))
	b := start(t, "node-b", testKey(1))
	x := start(t, "node-x", testKey(2))
	addrA := addrOf(t, a, "node-a")

	n, err := x.Join([]string{addrA})
	if err == nil || n != 0 {
		t.Fatalf("join with the wrong key: (%d, %v), want an error and no contacts", n, err)
	}

	// A member with the right key still joins; by the time the two see
	// each other, the stranger has had its chance to show up too.
	if _, err := b.Join([]string{addrA}); err != nil {
		t.Fatalf("join with the right key: %v", err)
	}
	eventually(t, joinWait, "node-a and node-b see each other", func() bool {
		return a.Alive("node-b") && b.Alive("node-a")
	})
	for name, g := range map[string]*gossip.Gossip{"node-a": a, "node-b": b} {
		if g.Alive("node-x") {
			t.Errorf("%s sees the member with the wrong key alive", name)
		}
		if _, ok := g.Members()["node-x"]; ok {
			t.Errorf("%s lists the member with the wrong key: %v", name, g.Members())
		}
	}
	if got := x.Members(); len(got) != 1 {
		t.Errorf("member with the wrong key sees %v, want only itself", got)
	}
}

func TestShutdownMemberIsReportedDead(t *testing.T) {
	key := testKey(3)
	a := start(t, "node-a", key)
	b := start(t, "node-b", key)
	c := start(t, "node-c", key)
	addrA := addrOf(t, a, "node-a")
	for _, g := range []*gossip.Gossip{b, c} {
		if _, err := g.Join([]string{addrA}); err != nil {
			t.Fatal(err)
		}
	}
	for name, g := range map[string]*gossip.Gossip{"node-a": a, "node-b": b} {
		eventually(t, joinWait, name+" sees three members", func() bool { return len(g.Members()) == 3 })
	}
	deadA, deadB := a.Dead(), b.Dead()

	// No Leave: the others must find out by probing.
	c.Shutdown()

	for name, ch := range map[string]<-chan string{"node-a": deadA, "node-b": deadB} {
		select {
		case id := <-ch:
			if id != "node-c" {
				t.Fatalf("%s reported %q dead, want node-c", name, id)
			}
		case <-time.After(deadWait):
			t.Fatalf("%s did not report node-c dead within %s", name, deadWait)
		}
	}
	for name, g := range map[string]*gossip.Gossip{"node-a": a, "node-b": b} {
		if g.Alive("node-c") {
			t.Errorf("%s still sees node-c alive after reporting it dead", name)
		}
		if _, ok := g.Members()["node-c"]; ok {
			t.Errorf("%s still lists node-c: %v", name, g.Members())
		}
		if !g.Alive("node-a") || !g.Alive("node-b") {
			t.Errorf("%s lost a live member: %v", name, g.Members())
		}
	}
}

func TestLeaveIsReportedPromptly(t *testing.T) {
	key := testKey(4)
	a := start(t, "node-a", key)
	b := start(t, "node-b", key)
	if _, err := b.Join([]string{addrOf(t, a, "node-a")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, joinWait, "node-a sees node-b", func() bool { return a.Alive("node-b") })
	dead1, dead2 := a.Dead(), a.Dead()

	b.Leave(2 * time.Second)

	for i, ch := range []<-chan string{dead1, dead2} {
		select {
		case id := <-ch:
			if id != "node-b" {
				t.Fatalf("subscriber %d got %q, want node-b", i, id)
			}
		case <-time.After(deadWait):
			t.Fatalf("subscriber %d was not told node-b left", i)
		}
	}
	if a.Alive("node-b") {
		t.Error("node-b still alive after leaving")
	}
}
