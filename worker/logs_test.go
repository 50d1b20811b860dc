package worker_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/worker"
	"github.com/shoal-project/shoal/worker/exec"
)

// logsServer is a manager's Logs service: the test pushes subscriptions
// and reads what the node publishes.
type logsServer struct {
	shoalpb.UnimplementedLogsServer
	listeners atomic.Int32
	subs      chan *shoalpb.SubscriptionMessage
	published chan *shoalpb.PublishLogsMessage
}

func (s *logsServer) ListenSubscriptions(_ *shoalpb.ListenSubscriptionsRequest, stream grpc.ServerStreamingServer[shoalpb.SubscriptionMessage]) error {
	s.listeners.Add(1)
	defer s.listeners.Add(-1)
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case m := <-s.subs:
			if err := stream.Send(m); err != nil {
				return err
			}
		}
	}
}

func (s *logsServer) PublishLogs(stream grpc.ClientStreamingServer[shoalpb.PublishLogsMessage, shoalpb.PublishLogsResponse]) error {
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&shoalpb.PublishLogsResponse{})
		}
		if err != nil {
			return err
		}
		s.published <- m
	}
}

func serveLogs(t *testing.T) (string, *logsServer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ls := &logsServer{subs: make(chan *shoalpb.SubscriptionMessage, 16), published: make(chan *shoalpb.PublishLogsMessage, 1024)}
	srv := grpc.NewServer()
	shoalpb.RegisterLogsServer(srv, ls)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return ln.Addr().String(), ls
}

// logController is a controller whose container wrote lines; with follow
// it also sends what arrives on more until its context ends.
type logController struct {
	fakeController
	lines     []exec.LogLine
	more      chan exec.LogLine
	cancelled atomic.Bool
}

func (c *logController) Logs(ctx context.Context, opts exec.LogOptions, fn func(exec.LogLine) error) error {
	lines := c.lines
	if opts.Tail >= 0 && opts.Tail < len(lines) {
		lines = lines[len(lines)-opts.Tail:]
	}
	for _, l := range lines {
		if err := fn(l); err != nil {
			return err
		}
	}
	if !opts.Follow {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			c.cancelled.Store(true)
			return ctx.Err()
		case l := <-c.more:
			if err := fn(l); err != nil {
				return err
			}
		}
	}
}

// taskSet is the node's tasks as the publisher sees them.
type taskSet struct {
	mu    sync.Mutex
	tasks map[string]*shoalpb.Task
	ctlrs map[string]exec.Controller
}

func (s *taskSet) put(t *shoalpb.Task, c exec.Controller) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tasks[t.Id], s.ctlrs[t.Id] = t, c
}

func (s *taskSet) Controller(id string) (exec.Controller, *shoalpb.Task, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.ctlrs[id]
	return c, s.tasks[id], ok
}

func runningTask(id string) *shoalpb.Task {
	return &shoalpb.Task{Id: id, ServiceId: "svc", Status: &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_RUNNING}}
}

func startPublisher(t *testing.T, tasks *taskSet, addrs ...string) {
	t.Helper()
	var peers []*shoalpb.Peer
	for _, a := range addrs {
		peers = append(peers, &shoalpb.Peer{Addr: a})
	}
	cache := &connCache{conns: map[string]*grpc.ClientConn{}}
	p := &worker.LogPublisher{
		Logger: slog.New(slog.DiscardHandler), Dial: cache.dial, NodeID: "node-1", Tasks: tasks,
		Managers: func() []*shoalpb.Peer { return peers },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; cache.close() })
}

func waitListening(t *testing.T, servers ...*logsServer) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, s := range servers {
		for s.listeners.Load() == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the node did not listen to every manager")
			}
			time.Sleep(10 * time.Millisecond) // polling the servers' stream count
		}
	}
}

// received reads published messages until one closes the part.
func received(t *testing.T, s *logsServer) (lines []string, first *shoalpb.PublishLogsMessage) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case m := <-s.published:
			if first == nil {
				first = m
			}
			for _, l := range m.Messages {
				lines = append(lines, l.TaskId+"/"+l.ServiceId+"/"+l.NodeId+"/"+l.Stream.String()+"/"+string(l.Data))
			}
			if m.Close {
				return lines, first
			}
		case <-timeout:
			t.Fatalf("the node's part never closed; got %q", lines)
		}
	}
}

func TestLogPublisherAnswersEveryManager(t *testing.T) {
	addrA, a := serveLogs(t)
	addrB, b := serveLogs(t)
	tasks := &taskSet{tasks: map[string]*shoalpb.Task{}, ctlrs: map[string]exec.Controller{}}
	tasks.put(runningTask("t1"), &logController{lines: []exec.LogLine{
		{Stream: exec.StreamStdout, Data: []byte("one")},
		{Stream: exec.StreamStderr, Data: []byte("two")},
		{Stream: exec.StreamStdout, Data: []byte("three")},
	}})
	startPublisher(t, tasks, addrA, addrB)
	waitListening(t, a, b)

	b.subs <- &shoalpb.SubscriptionMessage{Id: "s1", TaskIds: []string{"t1", "gone"}, Options: &shoalpb.LogSubscriptionOptions{Tail: -1}}
	lines, first := received(t, b)
	if first.SubscriptionId != "s1" {
		t.Errorf("first message %v", first)
	}
	want := "t1/svc/node-1/LOG_STREAM_STDOUT/one t1/svc/node-1/LOG_STREAM_STDERR/two t1/svc/node-1/LOG_STREAM_STDOUT/three"
	if got := strings.Join(lines, " "); got != want {
		t.Errorf("published %q\nwant %q", got, want)
	}

	a.subs <- &shoalpb.SubscriptionMessage{Id: "s2", TaskIds: []string{"t1"}, Options: &shoalpb.LogSubscriptionOptions{Tail: 1}}
	if lines, _ := received(t, a); strings.Join(lines, " ") != "t1/svc/node-1/LOG_STREAM_STDOUT/three" {
		t.Errorf("tail 1 published %q", lines)
	}
	// A subscription of tasks this node does not have closes at once.
	a.subs <- &shoalpb.SubscriptionMessage{Id: "s3", TaskIds: []string{"gone"}, Options: &shoalpb.LogSubscriptionOptions{Tail: -1}}
	if lines, _ := received(t, a); len(lines) != 0 {
		t.Errorf("published %q for an unknown task", lines)
	}
}

func TestLogPublisherFollow(t *testing.T) {
	addr, m := serveLogs(t)
	tasks := &taskSet{tasks: map[string]*shoalpb.Task{}, ctlrs: map[string]exec.Controller{}}
	ctlr := &logController{more: make(chan exec.LogLine)}
	tasks.put(runningTask("t1"), ctlr)
	startPublisher(t, tasks, addr)
	waitListening(t, m)

	m.subs <- &shoalpb.SubscriptionMessage{Id: "s1", TaskIds: []string{"t1"}, Options: &shoalpb.LogSubscriptionOptions{Follow: true, Tail: 0}}
	next := func() string {
		t.Helper()
		timeout := time.After(5 * time.Second)
		for {
			select {
			case p := <-m.published:
				if len(p.Messages) > 0 {
					return p.Messages[0].TaskId + "/" + string(p.Messages[0].Data)
				}
			case <-timeout:
				t.Fatal("no line published")
			}
		}
	}
	ctlr.more <- exec.LogLine{Stream: exec.StreamStdout, Data: []byte("later")}
	if got := next(); got != "t1/later" {
		t.Fatalf("got %q", got)
	}
	// A task added to the subscription before its container runs is read
	// once it does.
	late := &logController{lines: []exec.LogLine{{Stream: exec.StreamStdout, Data: []byte("hi")}}, more: make(chan exec.LogLine)}
	starting := runningTask("t2")
	starting.Status.State = shoalpb.TaskState_TASK_STATE_STARTING
	tasks.put(starting, late)
	m.subs <- &shoalpb.SubscriptionMessage{Id: "s1", TaskIds: []string{"t2"}, Options: &shoalpb.LogSubscriptionOptions{Follow: true, Tail: -1}}
	tasks.put(runningTask("t2"), late)
	if got := next(); got != "t2/hi" {
		t.Fatalf("got %q", got)
	}
	m.subs <- &shoalpb.SubscriptionMessage{Id: "s1", Close: true}
	deadline := time.Now().Add(5 * time.Second)
	for !ctlr.cancelled.Load() || !late.cancelled.Load() {
		if time.Now().After(deadline) {
			t.Fatal("closing the subscription did not stop reading the logs")
		}
		time.Sleep(10 * time.Millisecond) // polling the controllers
	}
}
