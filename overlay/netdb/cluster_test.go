package netdb

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// These tests run real memberlist instances over loopback, each on its
// own 127.0.0.x address, with node/gossip's timing.

// member is one node: a DB plugged into a memberlist.
type member struct {
	name string
	db   *DB
	ml   *memberlist.Memberlist
}

// startMember starts a member on ip; it is shut down when the test ends.
func startMember(t *testing.T, name, ip string, cfg Config) *member {
	t.Helper()
	cfg.NodeID = name
	db, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mc := memberlist.DefaultLANConfig()
	mc.Name = name
	mc.BindAddr, mc.AdvertiseAddr = ip, ip
	mc.BindPort, mc.AdvertisePort = 0, 0
	mc.SecretKey = bytes.Repeat([]byte{9}, 32)
	// The probe timing of node/gossip.
	mc.ProbeInterval = 500 * time.Millisecond
	mc.ProbeTimeout = 300 * time.Millisecond
	mc.SuspicionMult = 3
	mc.Delegate = db.Delegate()
	mc.Events = db.Events()
	mc.Logger = log.New(io.Discard, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		db.Close()
		t.Fatalf("start %s on %s: %v", name, ip, err)
	}
	db.SetTransport(mlTransport{ml})
	m := &member{name: name, db: db, ml: ml}
	t.Cleanup(m.stop)
	return m
}

// stop kills the member without telling anyone, as a crash would.
func (m *member) stop() {
	_ = m.ml.Shutdown()
	m.db.Close()
}

func (m *member) addr() string {
	n := m.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

func (m *member) join(t *testing.T, other *member) {
	t.Helper()
	if _, err := m.ml.Join([]string{other.addr()}); err != nil {
		t.Fatalf("%s joining %s: %v", m.name, other.name, err)
	}
}

// mlTransport is what node/gossip provides to a DB.
type mlTransport struct{ ml *memberlist.Memberlist }

func (tr mlTransport) SendReliable(node string, msg []byte) error {
	for _, n := range tr.ml.Members() {
		if n.Name == node {
			return tr.ml.SendReliable(n, msg)
		}
	}
	return fmt.Errorf("no member %q", node)
}

// startCluster starts members named n1…nN on 127.0.0.1…N and joins them.
func startCluster(t *testing.T, n int, cfg Config) []*member {
	t.Helper()
	ms := make([]*member, n)
	for i := range ms {
		ms[i] = startMember(t, fmt.Sprintf("n%d", i+1), fmt.Sprintf("127.0.0.%d", i+1), cfg)
		if i > 0 {
			ms[i].join(t, ms[0])
		}
	}
	return ms
}

const clusterWait = 15 * time.Second

func TestClusterConvergesUnderConcurrentUpdates(t *testing.T) {
	ms := startCluster(t, 3, Config{})
	for _, m := range ms {
		mustJoin(t, m.db, "n")
	}
	mustJoin(t, ms[2].db, "m")

	// Every node publishes, rewrites and withdraws its endpoints at once.
	var wg sync.WaitGroup
	final := make([][]Endpoint, len(ms))
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 8 {
				id := fmt.Sprintf("%s-e%d", m.name, k)
				if err := m.db.Publish(ep("n", id, m.name, byte(10*i+k))); err != nil {
					t.Error(err)
					return
				}
				if err := m.db.Publish(ep("n", id, m.name, byte(100+10*i+k))); err != nil {
					t.Error(err)
					return
				}
				if k%3 == 0 {
					if err := m.db.Withdraw("n", id); err != nil {
						t.Error(err)
					}
					continue
				}
				final[i] = append(final[i], ep("n", id, m.name, byte(100+10*i+k)))
			}
		}()
	}
	onM := mustPub(t, ms[2].db, ep("m", "only-on-m", ms[2].name, 1))
	wg.Wait()

	var want []Endpoint
	for _, f := range final {
		want = append(want, f...)
	}
	for _, m := range ms {
		waitView(t, m.db, "n", clusterWait, want...)
	}
	// Only n3 joined m: the others relay its update but do not store it.
	for _, m := range ms[:2] {
		m.db.mu.Lock()
		_, stored := m.db.t.nets["m"]
		m.db.mu.Unlock()
		if stored {
			t.Errorf("%s stores network m, which it has not joined", m.name)
		}
	}
	waitView(t, ms[2].db, "m", clusterWait, onM)
}

func TestClusterLateJoinerGetsEverything(t *testing.T) {
	ms := startCluster(t, 2, Config{})
	var want []Endpoint
	for _, m := range ms {
		mustJoin(t, m.db, "n", "m")
		want = append(want, mustPub(t, m.db, ep("n", m.name+"-e", m.name, byte(len(want)))))
	}
	onM := mustPub(t, ms[0].db, ep("m", "m-e", ms[0].name, 40))
	for _, m := range ms {
		waitView(t, m.db, "n", clusterWait, want...)
	}

	// A new node joins n and publishes before it joins the cluster, as
	// the daemon does.
	late := startMember(t, "late", "127.0.0.9", Config{})
	mustJoin(t, late.db, "n")
	mine := mustPub(t, late.db, ep("n", "late-e", "late", 50))
	late.join(t, ms[1])
	waitView(t, late.db, "n", clusterWait, append(want, mine)...)
	for _, m := range ms {
		waitView(t, m.db, "n", clusterWait, append(want, mine)...)
	}

	// Joining a network later fetches it at once; memberlist's push/pull
	// (every 30 s) would be far slower than the wait here.
	mustJoin(t, late.db, "m")
	waitView(t, late.db, "m", 5*time.Second, onM)
}

func TestClusterDeadNodesEndpointsExpire(t *testing.T) {
	ms := startCluster(t, 3, Config{})
	var all []Endpoint
	for i, m := range ms {
		mustJoin(t, m.db, "n")
		all = append(all, mustPub(t, m.db, ep("n", m.name+"-e", m.name, byte(i))))
	}
	for _, m := range ms {
		waitView(t, m.db, "n", clusterWait, all...)
	}
	subs := make([]*Subscription, 2)
	for i, m := range ms[:2] {
		subs[i], _ = m.db.Subscribe("n")
		defer subs[i].Close()
	}

	died := time.Now()
	ms[2].stop()

	// The goal: a dead node's endpoints leave every replica within 5 s.
	// Failure detection takes about 2–3 s with this probe timing and the
	// grace adds DefaultDeadGrace.
	const goal = 5 * time.Second
	for i, sub := range subs {
		ev := nextEvent(t, sub, clusterWait)
		took := time.Since(died)
		if ev.Type != Deleted || ev.Endpoint.NodeID != ms[2].name {
			t.Fatalf("%s: first event %v of %s, want the dead node's endpoint deleted", ms[i].name, ev.Type, ev.Endpoint.EndpointID)
		}
		t.Logf("%s dropped the dead node's endpoint after %s", ms[i].name, took.Round(10*time.Millisecond))
		if took > goal {
			t.Errorf("%s dropped the dead node's endpoint after %s, want at most %s", ms[i].name, took, goal)
		}
		if took < DefaultDeadGrace {
			t.Errorf("%s dropped it after %s, before the grace (%s) could even start", ms[i].name, took, DefaultDeadGrace)
		}
	}
	for _, m := range ms[:2] {
		waitView(t, m.db, "n", clusterWait, all[:2]...)
	}
}
