package worker_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/worker"
)

// waitFor bounds every wait for something that should happen promptly.
const waitFor = 5 * time.Second

// Manager addresses. The in-process fake never opens them; they are only
// names the agent passes back to Dial.
const (
	addrA = "127.0.0.1:42001"
	addrB = "127.0.0.1:42002"
	addrC = "127.0.0.1:42003"
	addrD = "127.0.0.1:42004"
)

var (
	peerA = &shoalpb.Peer{NodeId: "mgr-a", Addr: addrA}
	peerB = &shoalpb.Peer{NodeId: "mgr-b", Addr: addrB}
	peerC = &shoalpb.Peer{NodeId: "mgr-c", Addr: addrC}
	peerD = &shoalpb.Peer{NodeId: "mgr-d", Addr: addrD}
)

// answerFunc answers the nth heartbeat (from 1) sent to one manager.
type answerFunc func(ctx context.Context, n int) (*shoalpb.HeartbeatResponse, error)

type call struct {
	addr string
	req  *shoalpb.HeartbeatRequest
	at   time.Time
}

// fakeManagers answers the agent's heartbeats in process. Each address
// has its own answer; an address without one is unavailable.
type fakeManagers struct {
	mu        sync.Mutex
	answers   map[string]answerFunc
	dialErr   map[string]error
	dialBlock map[string]bool
	counts    map[string]int
	dials     map[string]int
	calls     chan call
	dialed    chan string
	dropped   atomic.Bool
}

func newFakeManagers(t *testing.T) *fakeManagers {
	f := &fakeManagers{
		answers:   map[string]answerFunc{},
		dialErr:   map[string]error{},
		dialBlock: map[string]bool{},
		counts:    map[string]int{},
		dials:     map[string]int{},
		calls:     make(chan call, 10000),
		dialed:    make(chan string, 10000),
	}
	// Tests read the calls in order; a dropped one would mislead them.
	t.Cleanup(func() {
		if f.dropped.Load() {
			t.Error("the fake managers dropped heartbeat records")
		}
	})
	return f
}

func (f *fakeManagers) answer(addr string, fn answerFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[addr] = fn
}

func (f *fakeManagers) dial(ctx context.Context, addr string) (grpc.ClientConnInterface, error) {
	f.mu.Lock()
	f.dials[addr]++
	err, block := f.dialErr[addr], f.dialBlock[addr]
	f.mu.Unlock()
	select {
	case f.dialed <- addr:
	default:
	}
	if block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, err
	}
	return &fakeConn{f: f, addr: addr}, nil
}

func (f *fakeManagers) count(addr string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[addr]
}

func (f *fakeManagers) dialCount(addr string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dials[addr]
}

// fakeConn is the connection to one fake manager.
type fakeConn struct {
	f    *fakeManagers
	addr string
}

func (c *fakeConn) Invoke(ctx context.Context, method string, args, reply any, _ ...grpc.CallOption) error {
	if method != shoalpb.Dispatcher_Heartbeat_FullMethodName {
		return status.Errorf(codes.Unimplemented, "fake manager: method %s", method)
	}
	req := proto.Clone(args.(*shoalpb.HeartbeatRequest)).(*shoalpb.HeartbeatRequest)
	c.f.mu.Lock()
	c.f.counts[c.addr]++
	n, fn := c.f.counts[c.addr], c.f.answers[c.addr]
	c.f.mu.Unlock()
	select {
	case c.f.calls <- call{addr: c.addr, req: req, at: time.Now()}:
	default:
		c.f.dropped.Store(true)
	}
	if fn == nil {
		return status.Errorf(codes.Unavailable, "fake manager %s is down", c.addr)
	}
	resp, err := fn(ctx, n)
	if err != nil {
		return err
	}
	proto.Merge(reply.(proto.Message), resp)
	return nil
}

func (c *fakeConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unimplemented, "fake manager: no streams")
}

// nextCall returns the next heartbeat any fake manager received.
func (f *fakeManagers) nextCall(t *testing.T) call {
	t.Helper()
	select {
	case c := <-f.calls:
		return c
	case <-time.After(waitFor):
		t.Fatal("no heartbeat within the deadline")
		return call{}
	}
}

// expectCalls checks that the next heartbeats went to addrs in order.
func (f *fakeManagers) expectCalls(t *testing.T, addrs ...string) []call {
	t.Helper()
	var got []call
	for i, want := range addrs {
		c := f.nextCall(t)
		got = append(got, c)
		if c.addr != want {
			var seq []string
			for _, g := range got {
				seq = append(seq, g.addr)
			}
			t.Fatalf("heartbeat %d went to %s, want %s (sequence so far %v, want %v)", i+1, c.addr, want, seq, addrs)
		}
	}
	return got
}

func reply(period time.Duration, leader string, managers ...*shoalpb.Peer) answerFunc {
	return func(context.Context, int) (*shoalpb.HeartbeatResponse, error) {
		return &shoalpb.HeartbeatResponse{PeriodNs: int64(period), LeaderId: leader, Managers: managers}, nil
	}
}

func fail(code codes.Code) answerFunc {
	return func(context.Context, int) (*shoalpb.HeartbeatResponse, error) {
		return nil, status.Error(code, "fake manager says "+code.String())
	}
}

func peers(ps ...*shoalpb.Peer) func() []*shoalpb.Peer {
	return func() []*shoalpb.Peer { return ps }
}

func baseConfig(f *fakeManagers, managers func() []*shoalpb.Peer) worker.Config {
	return worker.Config{
		Logger:        slog.New(slog.DiscardHandler),
		Dial:          f.dial,
		Managers:      managers,
		Describe:      func() *shoalpb.NodeDescription { return &shoalpb.NodeDescription{Hostname: "worker-host"} },
		AdvertiseAddr: "127.0.0.1:2377",
		GossipAddr:    "127.0.0.1:7946",
		InitialPeriod: time.Hour,
	}
}

// runAgent runs an agent until the test ends and returns the function that
// cancels it and the channel closed when Run returns.
func runAgent(t *testing.T, cfg worker.Config) (cancel func(), done <-chan struct{}) {
	t.Helper()
	ctx, cancelCtx := context.WithCancel(context.Background())
	d := make(chan struct{})
	go func() {
		defer close(d)
		worker.NewAgent(cfg).Run(ctx)
	}()
	t.Cleanup(func() {
		cancelCtx()
		select {
		case <-d:
		case <-time.After(waitFor):
			t.Error("Run did not return after its context was cancelled")
		}
	})
	return cancelCtx, d
}

func TestAgentSendsDescriptionAndAddresses(t *testing.T) {
	f := newFakeManagers(t)
	resp := &shoalpb.HeartbeatResponse{
		PeriodNs:    int64(10 * time.Millisecond),
		DesiredRole: shoalpb.NodeRole_NODE_ROLE_MANAGER,
		Managers:    []*shoalpb.Peer{peerA},
		LeaderId:    "mgr-a",
	}
	f.answer(addrA, func(context.Context, int) (*shoalpb.HeartbeatResponse, error) {
		return proto.Clone(resp).(*shoalpb.HeartbeatResponse), nil
	})

	var desc atomic.Pointer[shoalpb.NodeDescription]
	desc.Store(&shoalpb.NodeDescription{Hostname: "host-1", EngineVersion: "1.2.3", EngineLabels: map[string]string{"zone": "a"}})
	responses := make(chan *shoalpb.HeartbeatResponse, 100)
	cfg := baseConfig(f, peers(peerA))
	cfg.Describe = func() *shoalpb.NodeDescription { return desc.Load() }
	cfg.AdvertiseAddr = "127.0.0.1:2377"
	cfg.GossipAddr = "127.0.0.1:7946"
	cfg.OnResponse = func(r *shoalpb.HeartbeatResponse) {
		select {
		case responses <- r:
		default:
		}
	}
	runAgent(t, cfg)

	c := f.expectCalls(t, addrA)[0]
	if !proto.Equal(c.req.GetDescription(), desc.Load()) {
		t.Errorf("description %v, want %v", c.req.GetDescription(), desc.Load())
	}
	if c.req.GetAdvertiseAddr() != "127.0.0.1:2377" || c.req.GetGossipAddr() != "127.0.0.1:7946" {
		t.Errorf("addresses (%q, %q), want (127.0.0.1:2377, 127.0.0.1:7946)", c.req.GetAdvertiseAddr(), c.req.GetGossipAddr())
	}
	select {
	case got := <-responses:
		if !proto.Equal(got, resp) {
			t.Errorf("OnResponse got %v, want %v", got, resp)
		}
	case <-time.After(waitFor):
		t.Fatal("OnResponse was not called")
	}

	// Every heartbeat describes the node as it is now.
	desc.Store(&shoalpb.NodeDescription{Hostname: "host-2"})
	deadline := time.Now().Add(waitFor)
	for {
		c := f.nextCall(t)
		if c.req.GetDescription().GetHostname() == "host-2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("heartbeats never carried the new description")
		}
	}
}

func TestAgentFollowsPeriodFromResponses(t *testing.T) {
	const period = 30 * time.Millisecond
	f := newFakeManagers(t)
	// Only the first answer sets a period; later ones leave it alone.
	f.answer(addrA, func(_ context.Context, n int) (*shoalpb.HeartbeatResponse, error) {
		if n == 1 {
			return &shoalpb.HeartbeatResponse{PeriodNs: int64(period)}, nil
		}
		return &shoalpb.HeartbeatResponse{}, nil
	})
	cfg := baseConfig(f, peers(peerA))
	cfg.InitialPeriod = time.Hour // never reached if the response is followed
	runAgent(t, cfg)

	calls := f.expectCalls(t, addrA, addrA, addrA, addrA, addrA)
	for i := 1; i < len(calls); i++ {
		// The agent waits between 90% and 100% of the period.
		if gap := calls[i].at.Sub(calls[i-1].at); gap < period*9/10 {
			t.Errorf("heartbeat %d came %s after the previous one, want at least %s", i+1, gap, period*9/10)
		}
	}
}

func TestAgentUsesInitialPeriodUntilToldOtherwise(t *testing.T) {
	for _, tc := range []struct {
		name    string
		initial time.Duration
		want    time.Duration
		beats   int
	}{
		{"configured", 40 * time.Millisecond, 40 * time.Millisecond, 4},
		{"default of one second", 0, time.Second, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeManagers(t)
			f.answer(addrA, reply(0, ""))
			cfg := baseConfig(f, peers(peerA))
			cfg.InitialPeriod = tc.initial
			runAgent(t, cfg)
			addrs := make([]string, tc.beats)
			for i := range addrs {
				addrs[i] = addrA
			}
			calls := f.expectCalls(t, addrs...)
			for i := 1; i < len(calls); i++ {
				if gap := calls[i].at.Sub(calls[i-1].at); gap < tc.want*9/10 {
					t.Errorf("heartbeat %d came %s after the previous one, want at least %s", i+1, gap, tc.want*9/10)
				}
			}
		})
	}
}

func TestAgentPrefersLeader(t *testing.T) {
	t.Run("leader from the response", func(t *testing.T) {
		f := newFakeManagers(t)
		all := []*shoalpb.Peer{peerA, peerB, peerC}
		f.answer(addrA, reply(10*time.Millisecond, "mgr-c", all...))
		// Leadership moves to mgr-b; mgr-c says so.
		f.answer(addrC, reply(10*time.Millisecond, "mgr-b", all...))
		f.answer(addrB, reply(10*time.Millisecond, "mgr-b", all...))
		runAgent(t, baseConfig(f, peers(all...)))
		f.expectCalls(t, addrA, addrC, addrB, addrB, addrB)
	})
	t.Run("leader the node did not know yet", func(t *testing.T) {
		f := newFakeManagers(t)
		f.answer(addrA, reply(10*time.Millisecond, "mgr-d", peerA, peerD))
		f.answer(addrD, reply(10*time.Millisecond, "mgr-d", peerA, peerD))
		runAgent(t, baseConfig(f, peers(peerA)))
		f.expectCalls(t, addrA, addrD, addrD)
	})
	t.Run("leader unknown", func(t *testing.T) {
		f := newFakeManagers(t)
		// The leader ID is not among the listed managers, so there is no
		// address to prefer: the agent keeps to its own order.
		f.answer(addrA, reply(10*time.Millisecond, "mgr-z", peerA, peerB))
		f.answer(addrB, reply(10*time.Millisecond, "mgr-z", peerA, peerB))
		runAgent(t, baseConfig(f, peers(peerA, peerB)))
		f.expectCalls(t, addrA, addrA, addrA)
	})
}

func TestAgentFailsOverInTurn(t *testing.T) {
	f := newFakeManagers(t)
	all := []*shoalpb.Peer{peerA, peerB, peerC}
	// mgr-a names mgr-c leader, then goes down; mgr-c is down; mgr-b
	// answers without naming a leader.
	f.answer(addrA, func(ctx context.Context, n int) (*shoalpb.HeartbeatResponse, error) {
		if n == 1 {
			return reply(10*time.Millisecond, "mgr-c", all...)(ctx, n)
		}
		return fail(codes.Unavailable)(ctx, n)
	})
	f.answer(addrB, reply(10*time.Millisecond, "", all...))
	removed := make(chan error, 10)
	responses := make(chan *shoalpb.HeartbeatResponse, 100)
	cfg := baseConfig(f, peers(all...))
	cfg.OnRemoved = func(err error) { removed <- err }
	cfg.OnResponse = func(r *shoalpb.HeartbeatResponse) {
		select {
		case responses <- r:
		default:
		}
	}
	runAgent(t, cfg)

	// Beat 1: list order. Beat 2: the leader first, then the rest in list
	// order. Beat 3: no leader named, list order again.
	f.expectCalls(t, addrA, addrC, addrA, addrB, addrA, addrB)
	if n := len(responses); n < 2 {
		t.Errorf("OnResponse called %d times, want one per successful beat (2 so far)", n)
	}
	select {
	case err := <-removed:
		t.Errorf("OnRemoved called for an unavailable manager: %v", err)
	default:
	}
}

func TestAgentStartsOverAfterAllManagersFail(t *testing.T) {
	f := newFakeManagers(t)
	all := []*shoalpb.Peer{peerA, peerB, peerC}
	f.answer(addrA, func(ctx context.Context, n int) (*shoalpb.HeartbeatResponse, error) {
		switch n {
		case 1:
			return reply(10*time.Millisecond, "mgr-c", all...)(ctx, n)
		case 2:
			return fail(codes.Unavailable)(ctx, n)
		default:
			return reply(10*time.Millisecond, "", all...)(ctx, n)
		}
	})
	f.answer(addrB, fail(codes.Unavailable))
	f.answer(addrC, fail(codes.Unavailable))
	runAgent(t, baseConfig(f, peers(all...)))

	// Beat 2 fails everywhere, so beat 3 no longer prefers mgr-c.
	calls := f.expectCalls(t, addrA, addrC, addrA, addrB, addrA)
	if gap := calls[4].at.Sub(calls[3].at); gap < 100*time.Millisecond {
		t.Errorf("retried %s after a failed beat, want a back-off of at least 100ms", gap)
	}
}

func TestAgentBacksOffWhileManagersFail(t *testing.T) {
	f := newFakeManagers(t)
	f.answer(addrA, func(ctx context.Context, n int) (*shoalpb.HeartbeatResponse, error) {
		if n <= 4 {
			return fail(codes.Unavailable)(ctx, n)
		}
		return reply(0, "")(ctx, n)
	})
	responded := make(chan struct{}, 1)
	cfg := baseConfig(f, peers(peerA))
	cfg.OnResponse = func(*shoalpb.HeartbeatResponse) {
		select {
		case responded <- struct{}{}:
		default:
		}
	}
	runAgent(t, cfg)

	calls := f.expectCalls(t, addrA, addrA, addrA, addrA, addrA)
	// The back-off starts at 100ms and doubles (the period of an hour
	// does not cap it yet).
	for i, want := range []time.Duration{100, 200, 400, 800} {
		want *= time.Millisecond
		if gap := calls[i+1].at.Sub(calls[i].at); gap < want {
			t.Errorf("retry %d came after %s, want at least %s", i+1, gap, want)
		}
	}
	select {
	case <-responded:
	case <-time.After(waitFor):
		t.Fatal("OnResponse not called once a manager answered")
	}
}

func TestAgentDialFailureTriesNextManager(t *testing.T) {
	f := newFakeManagers(t)
	f.dialErr[addrA] = errors.New("connection refused")
	f.answer(addrA, reply(10*time.Millisecond, ""))
	f.answer(addrB, reply(10*time.Millisecond, ""))
	runAgent(t, baseConfig(f, peers(peerA, peerB)))

	f.expectCalls(t, addrB, addrB)
	if n := f.dialCount(addrA); n < 2 {
		t.Errorf("dialled mgr-a %d times, want it tried first on every beat", n)
	}
	if n := f.count(addrA); n != 0 {
		t.Errorf("mgr-a got %d heartbeats although it could not be dialled", n)
	}
}

func TestAgentReportsRemoval(t *testing.T) {
	for _, code := range []codes.Code{codes.NotFound, codes.PermissionDenied} {
		t.Run(code.String(), func(t *testing.T) {
			f := newFakeManagers(t)
			f.answer(addrA, fail(code))
			f.answer(addrB, reply(10*time.Millisecond, ""))
			removed := make(chan error, 100)
			var responses atomic.Int32
			cfg := baseConfig(f, peers(peerA, peerB))
			cfg.OnRemoved = func(err error) {
				select {
				case removed <- err:
				default:
				}
			}
			cfg.OnResponse = func(*shoalpb.HeartbeatResponse) { responses.Add(1) }
			runAgent(t, cfg)

			for i := range 2 {
				select {
				case err := <-removed:
					if status.Code(err) != code {
						t.Errorf("OnRemoved got %v, want code %v", err, code)
					}
				case <-time.After(waitFor):
					t.Fatalf("OnRemoved call %d missing", i+1)
				}
			}
			// A manager that does not know the node speaks for the
			// cluster: the agent does not shop around for another.
			if n := f.count(addrB); n != 0 {
				t.Errorf("mgr-b got %d heartbeats after mgr-a refused the node", n)
			}
			if n := responses.Load(); n != 0 {
				t.Errorf("OnResponse called %d times", n)
			}
		})
	}
}

func TestAgentDoesNotReportRemovalForOtherErrors(t *testing.T) {
	for _, code := range []codes.Code{codes.Unavailable, codes.DeadlineExceeded, codes.Internal, codes.Unauthenticated} {
		t.Run(code.String(), func(t *testing.T) {
			f := newFakeManagers(t)
			f.answer(addrA, fail(code))
			var removed atomic.Int32
			cfg := baseConfig(f, peers(peerA))
			cfg.OnRemoved = func(error) { removed.Add(1) }
			runAgent(t, cfg)
			f.expectCalls(t, addrA, addrA, addrA)
			if n := removed.Load(); n != 0 {
				t.Errorf("OnRemoved called %d times for %v", n, code)
			}
		})
	}
}

func TestAgentWaitsForManagersToBeKnown(t *testing.T) {
	f := newFakeManagers(t)
	f.answer(addrA, reply(10*time.Millisecond, ""))
	var known atomic.Pointer[[]*shoalpb.Peer]
	asked := make(chan struct{}, 100)
	cfg := baseConfig(f, func() []*shoalpb.Peer {
		select {
		case asked <- struct{}{}:
		default:
		}
		if p := known.Load(); p != nil {
			return *p
		}
		return nil
	})
	runAgent(t, cfg)

	// The agent keeps asking while no manager is known.
	for i := range 2 {
		select {
		case <-asked:
		case <-time.After(waitFor):
			t.Fatalf("Managers not consulted again (%d times so far)", i)
		}
	}
	f.mu.Lock()
	dials := len(f.dials)
	f.mu.Unlock()
	if dials != 0 {
		t.Fatalf("dialled %d addresses with no manager known", dials)
	}
	known.Store(&[]*shoalpb.Peer{peerA})
	f.expectCalls(t, addrA)
}

func TestAgentStopsWhenCancelled(t *testing.T) {
	t.Run("between heartbeats", func(t *testing.T) {
		f := newFakeManagers(t)
		f.answer(addrA, reply(time.Hour, ""))
		cancel, done := runAgent(t, baseConfig(f, peers(peerA)))
		f.expectCalls(t, addrA)
		cancel()
		expectReturn(t, done, waitFor)
	})
	t.Run("during a heartbeat", func(t *testing.T) {
		f := newFakeManagers(t)
		// The manager never answers; only the caller's context ends the
		// call.
		f.answer(addrA, func(ctx context.Context, _ int) (*shoalpb.HeartbeatResponse, error) {
			<-ctx.Done()
			return nil, status.FromContextError(ctx.Err()).Err()
		})
		var callbacks atomic.Int32
		cfg := baseConfig(f, peers(peerA))
		cfg.OnRemoved = func(error) { callbacks.Add(1) }
		cfg.OnResponse = func(*shoalpb.HeartbeatResponse) { callbacks.Add(1) }
		cancel, done := runAgent(t, cfg)
		f.expectCalls(t, addrA)
		cancel()
		// Well before the 5s bound on one heartbeat.
		expectReturn(t, done, 2*time.Second)
		if n := callbacks.Load(); n != 0 {
			t.Errorf("%d callbacks after cancellation", n)
		}
	})
	t.Run("while dialling", func(t *testing.T) {
		f := newFakeManagers(t)
		f.dialBlock[addrA] = true
		cancel, done := runAgent(t, baseConfig(f, peers(peerA)))
		select {
		case <-f.dialed:
		case <-time.After(waitFor):
			t.Fatal("the agent never dialled")
		}
		cancel()
		expectReturn(t, done, 2*time.Second)
	})
	t.Run("already cancelled", func(t *testing.T) {
		f := newFakeManagers(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			worker.NewAgent(baseConfig(f, peers(peerA))).Run(ctx)
		}()
		expectReturn(t, done, waitFor)
	})
}

func expectReturn(t *testing.T, done <-chan struct{}, within time.Duration) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(within):
		t.Fatalf("Run did not return within %s of cancellation", within)
	}
}
