package logbroker

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/manager/caller"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

const testWait = 5 * time.Second

func nodeCtx(ctx context.Context, id string) context.Context {
	return caller.With(ctx, caller.Caller{NodeID: id, Role: caller.Worker})
}

type fixture struct {
	t     *testing.T
	st    *store.Store
	b     *Broker
	index uint64
}

func newFixture(t *testing.T, nodes ...string) *fixture {
	f := &fixture{t: t, st: store.New()}
	f.b = &Broker{Store: f.st, NodeTimeout: time.Second}
	var acts []*shoalpb.StoreAction
	for _, n := range nodes {
		acts = append(acts, &shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Node{Node: &shoalpb.Node{
			Id: n, Description: &shoalpb.NodeDescription{Hostname: "host-" + n},
		}}})
	}
	acts = append(acts, &shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Service{Service: &shoalpb.Service{
		Id: "svc1", Spec: &shoalpb.ServiceSpec{Name: "web"},
	}}})
	f.apply(acts...)
	return f
}

func (f *fixture) apply(acts ...*shoalpb.StoreAction) {
	f.t.Helper()
	f.index++
	if err := f.st.Apply(f.index, &shoalpb.Command{Actions: acts}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) addTask(id, node string) {
	f.apply(&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Task{Task: &shoalpb.Task{
		Id: id, ServiceId: "svc1", ServiceName: "web", NodeId: node, Slot: 1, DesiredState: shoalpb.TaskState_TASK_STATE_RUNNING,
	}}})
}

// fakeListen is a node's ListenSubscriptions stream.
type fakeListen struct {
	grpc.ServerStream
	ctx  context.Context
	msgs chan *shoalpb.SubscriptionMessage
}

func (s *fakeListen) Context() context.Context { return s.ctx }
func (s *fakeListen) Send(m *shoalpb.SubscriptionMessage) error {
	s.msgs <- m
	return nil
}

// listen opens a node's stream and waits until the broker has it.
func (f *fixture) listen(ctx context.Context, node string) *fakeListen {
	f.t.Helper()
	l := &fakeListen{ctx: nodeCtx(ctx, node), msgs: make(chan *shoalpb.SubscriptionMessage, 16)}
	go f.b.ListenSubscriptions(&shoalpb.ListenSubscriptionsRequest{}, l)
	deadline := time.Now().Add(testWait)
	for {
		f.b.mu.Lock()
		n := len(f.b.listeners[node])
		f.b.mu.Unlock()
		if n > 0 {
			return l
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("listener of %s never registered", node)
		}
		time.Sleep(5 * time.Millisecond) // polling for the goroutine above
	}
}

func (l *fakeListen) next(t *testing.T) *shoalpb.SubscriptionMessage {
	t.Helper()
	select {
	case m := <-l.msgs:
		return m
	case <-time.After(testWait):
		t.Fatal("no subscription message")
		return nil
	}
}

// fakeSub is the client's SubscribeLogs stream; gate, when set, holds
// every Send until it is closed.
type fakeSub struct {
	grpc.ServerStream
	ctx  context.Context
	gate chan struct{}
	msgs chan *shoalpb.SubscribeLogsMessage
}

func (s *fakeSub) Context() context.Context { return s.ctx }
func (s *fakeSub) Send(m *shoalpb.SubscribeLogsMessage) error {
	if s.gate != nil {
		<-s.gate
	}
	s.msgs <- m
	return nil
}

func (f *fixture) subscribe(ctx context.Context, req *shoalpb.SubscribeLogsRequest, gate chan struct{}) (*fakeSub, chan error) {
	s := &fakeSub{ctx: ctx, gate: gate, msgs: make(chan *shoalpb.SubscribeLogsMessage, 1024)}
	done := make(chan error, 1)
	go func() { done <- f.b.SubscribeLogs(req, s) }()
	return s, done
}

// fakePub replays messages as a node's PublishLogs stream.
type fakePub struct {
	grpc.ServerStream
	ctx  context.Context
	msgs []*shoalpb.PublishLogsMessage
}

func (p *fakePub) Context() context.Context { return p.ctx }
func (p *fakePub) Recv() (*shoalpb.PublishLogsMessage, error) {
	if len(p.msgs) == 0 {
		return nil, io.EOF
	}
	m := p.msgs[0]
	p.msgs = p.msgs[1:]
	return m, nil
}
func (p *fakePub) SendAndClose(*shoalpb.PublishLogsResponse) error { return nil }

func (f *fixture) publish(node string, msgs ...*shoalpb.PublishLogsMessage) error {
	return f.b.PublishLogs(&fakePub{ctx: nodeCtx(context.Background(), node), msgs: msgs})
}

func line(task, data string) *shoalpb.LogMessage {
	return &shoalpb.LogMessage{TaskId: task, ServiceId: "svc1", Stream: shoalpb.LogStream_LOG_STREAM_STDOUT, Data: []byte(data)}
}

// collect reads the subscriber's messages until its stream ends.
func collect(t *testing.T, s *fakeSub, done chan error) (lines, warnings []string) {
	t.Helper()
	timeout := time.After(testWait)
	for {
		select {
		case m := <-s.msgs:
			for _, l := range m.Messages {
				lines = append(lines, l.NodeId+":"+l.TaskId+":"+string(l.Data))
			}
			warnings = append(warnings, m.Warnings...)
		case err := <-done:
			for {
				select {
				case m := <-s.msgs:
					for _, l := range m.Messages {
						lines = append(lines, l.NodeId+":"+l.TaskId+":"+string(l.Data))
					}
					warnings = append(warnings, m.Warnings...)
					continue
				default:
				}
				if err != nil {
					t.Fatalf("subscription: %v", err)
				}
				return lines, warnings
			}
		case <-timeout:
			t.Fatal("subscription did not end")
		}
	}
}

func serviceReq(follow bool) *shoalpb.SubscribeLogsRequest {
	return &shoalpb.SubscribeLogsRequest{
		Selector: &shoalpb.LogSelector{ServiceIds: []string{"web"}},
		Options:  &shoalpb.LogSubscriptionOptions{Follow: follow, Tail: -1},
	}
}

func TestFanOutAndCompletion(t *testing.T) {
	f := newFixture(t, "n1", "n2", "n3")
	f.addTask("t1", "n1")
	f.addTask("t2", "n2")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l1, l2, l3 := f.listen(ctx, "n1"), f.listen(ctx, "n2"), f.listen(ctx, "n3")
	s, done := f.subscribe(ctx, serviceReq(false), nil)

	m1, m2 := l1.next(t), l2.next(t)
	if strings.Join(m1.TaskIds, ",") != "t1" || strings.Join(m2.TaskIds, ",") != "t2" || m1.Id != m2.Id {
		t.Fatalf("announced %v to n1 and %v to n2", m1, m2)
	}
	if err := f.publish("n3", &shoalpb.PublishLogsMessage{SubscriptionId: m1.Id}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("node not asked may publish: %v", err)
	}
	if err := f.publish("n1", &shoalpb.PublishLogsMessage{SubscriptionId: m1.Id, Messages: []*shoalpb.LogMessage{line("t1", "a"), line("t2", "forged")}},
		&shoalpb.PublishLogsMessage{SubscriptionId: m1.Id, Messages: []*shoalpb.LogMessage{line("t1", "b")}, Close: true}); err != nil {
		t.Fatal(err)
	}
	if err := f.publish("n2", &shoalpb.PublishLogsMessage{SubscriptionId: m1.Id, Messages: []*shoalpb.LogMessage{line("t2", "c")}, Close: true}); err != nil {
		t.Fatal(err)
	}
	lines, warnings := collect(t, s, done)
	if got := strings.Join(lines, " "); got != "n1:t1:a n1:t1:b n2:t2:c" {
		t.Errorf("lines %q", got)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings %q", warnings)
	}
	select {
	case m := <-l3.msgs:
		t.Errorf("n3 runs no task but got %v", m)
	default:
	}
}

func TestSilentNodeEndsWithWarning(t *testing.T) {
	f := newFixture(t, "n1", "n2", "n3")
	f.b.NodeTimeout = 200 * time.Millisecond
	f.addTask("t1", "n1")
	f.addTask("t2", "n2")
	f.addTask("t3", "n3") // n3 never listens
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l1 := f.listen(ctx, "n1")
	f.listen(ctx, "n2") // listens, never answers
	start := time.Now()
	s, done := f.subscribe(ctx, serviceReq(false), nil)
	m := l1.next(t)
	if err := f.publish("n1", &shoalpb.PublishLogsMessage{SubscriptionId: m.Id, Messages: []*shoalpb.LogMessage{line("t1", "a")}, Close: true}); err != nil {
		t.Fatal(err)
	}
	lines, warnings := collect(t, s, done)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %v with a node timeout of 200ms", took)
	}
	if strings.Join(lines, " ") != "n1:t1:a" {
		t.Errorf("lines %q", lines)
	}
	all := strings.Join(warnings, "\n")
	if !strings.Contains(all, "host-n2 (n2) did not answer") || !strings.Contains(all, "host-n3 (n3) is not connected") {
		t.Errorf("warnings %q", warnings)
	}
}

func TestFollowPicksUpNewTask(t *testing.T) {
	f := newFixture(t, "n1", "n2")
	f.addTask("t1", "n1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l1, l2 := f.listen(ctx, "n1"), f.listen(ctx, "n2")
	sctx, stop := context.WithCancel(ctx)
	s, done := f.subscribe(sctx, serviceReq(true), nil)
	m1 := l1.next(t)
	f.addTask("t2", "n2")
	m2 := l2.next(t)
	if m2.Id != m1.Id || strings.Join(m2.TaskIds, ",") != "t2" || m2.Options.Tail != -1 || !m2.Options.Follow {
		t.Fatalf("new task announced as %v", m2)
	}
	if err := f.publish("n2", &shoalpb.PublishLogsMessage{SubscriptionId: m2.Id, Messages: []*shoalpb.LogMessage{line("t2", "new")}}); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-s.msgs:
		if len(got.Messages) != 1 || string(got.Messages[0].Data) != "new" {
			t.Fatalf("got %v", got)
		}
	case <-time.After(testWait):
		t.Fatal("line of the new task never arrived")
	}
	stop()
	select {
	case <-done:
	case <-time.After(testWait):
		t.Fatal("follow did not end with its client")
	}
	// n1 still sends its part (n2's stream ended): it is told to stop.
	if m := l1.next(t); !m.Close || m.Id != m1.Id {
		t.Errorf("expected a close, got %v", m)
	}
}

func TestSlowSubscriberDoesNotBlockPublishers(t *testing.T) {
	f := newFixture(t, "n1")
	f.addTask("t1", "n1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l1 := f.listen(ctx, "n1")
	gate := make(chan struct{})
	s, done := f.subscribe(ctx, serviceReq(false), gate)
	m := l1.next(t)
	var msgs []*shoalpb.PublishLogsMessage
	for i := 0; i < 4*subscriberBuffer; i++ {
		msgs = append(msgs, &shoalpb.PublishLogsMessage{SubscriptionId: m.Id, Messages: []*shoalpb.LogMessage{line("t1", "x")}})
	}
	msgs = append(msgs, &shoalpb.PublishLogsMessage{SubscriptionId: m.Id, Close: true})
	published := make(chan error, 1)
	go func() { published <- f.publish("n1", msgs...) }()
	select {
	case err := <-published:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testWait):
		t.Fatal("publisher blocked by a subscriber that does not read")
	}
	close(gate)
	lines, warnings := collect(t, s, done)
	if len(lines) == 0 || len(lines) >= 4*subscriberBuffer {
		t.Errorf("%d lines relayed", len(lines))
	}
	if !strings.Contains(strings.Join(warnings, "\n"), "dropped") {
		t.Errorf("no note of dropped lines: %q", warnings)
	}
}

func TestUnknownSelector(t *testing.T) {
	f := newFixture(t, "n1")
	_, done := f.subscribe(context.Background(), &shoalpb.SubscribeLogsRequest{Selector: &shoalpb.LogSelector{ServiceIds: []string{"nope"}}}, nil)
	if err := <-done; status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("got %v", err)
	}
	_, done = f.subscribe(context.Background(), &shoalpb.SubscribeLogsRequest{Selector: &shoalpb.LogSelector{TaskIds: []string{"zz"}}}, nil)
	if err := <-done; status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "zz") {
		t.Fatalf("got %v", err)
	}
}
