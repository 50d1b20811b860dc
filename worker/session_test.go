package worker_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/worker"
)

// taskDispatcher serves scripted assignment streams and records status
// reports.
type taskDispatcher struct {
	shoalpb.UnimplementedDispatcherServer
	streams chan []*shoalpb.AssignmentsMessage // one script per stream, then the stream fails

	mu      sync.Mutex
	fail    bool
	reports map[string]*shoalpb.TaskStatus
	calls   int
}

func (d *taskDispatcher) Assignments(_ *shoalpb.AssignmentsRequest, s shoalpb.Dispatcher_AssignmentsServer) error {
	select {
	case script := <-d.streams:
		for _, m := range script {
			if err := s.Send(m); err != nil {
				return err
			}
		}
		return status.Error(codes.Unavailable, "scripted end of stream")
	case <-s.Context().Done():
		return nil
	}
}

func (d *taskDispatcher) UpdateTaskStatus(_ context.Context, req *shoalpb.UpdateTaskStatusRequest) (*shoalpb.UpdateTaskStatusResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	if d.fail {
		return nil, status.Error(codes.Unavailable, "no leader")
	}
	for _, u := range req.Updates {
		d.reports[u.TaskId] = u.Status
	}
	return &shoalpb.UpdateTaskStatusResponse{}, nil
}

func serveTaskDispatcher(t *testing.T) (*taskDispatcher, string, *grpc.ClientConn) {
	t.Helper()
	d := &taskDispatcher{streams: make(chan []*shoalpb.AssignmentsMessage, 4), reports: map[string]*shoalpb.TaskStatus{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	shoalpb.RegisterDispatcherServer(srv, d)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///"+ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return d, ln.Addr().String(), conn
}

func tk(id string) *shoalpb.Task { return &shoalpb.Task{Id: id} }

func TestAssignmentsCompleteChunksThenChangesAndReconnect(t *testing.T) {
	d, addr, conn := serveTaskDispatcher(t)
	d.streams <- []*shoalpb.AssignmentsMessage{
		{Type: shoalpb.AssignmentsMessage_TYPE_COMPLETE, UpdateTasks: []*shoalpb.Task{tk("a"), tk("b")}},
		{Type: shoalpb.AssignmentsMessage_TYPE_COMPLETE, UpdateTasks: []*shoalpb.Task{tk("c")}, Last: true},
		{Type: shoalpb.AssignmentsMessage_TYPE_INCREMENTAL, UpdateTasks: []*shoalpb.Task{tk("d")}, RemoveTasks: []string{"a"}, Last: true},
	}
	d.streams <- []*shoalpb.AssignmentsMessage{
		{Type: shoalpb.AssignmentsMessage_TYPE_COMPLETE, UpdateTasks: []*shoalpb.Task{tk("x")}, Last: true},
	}
	var mu sync.Mutex
	var events []string
	got := make(chan struct{}, 10)
	record := func(s string) {
		mu.Lock()
		events = append(events, s)
		mu.Unlock()
		got <- struct{}{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		worker.RunAssignments(ctx, worker.AssignmentsConfig{
			Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
			Dial:     func(context.Context, string) (grpc.ClientConnInterface, error) { return conn, nil },
			Managers: func() []*shoalpb.Peer { return []*shoalpb.Peer{{Addr: addr}} },
			OnComplete: func(ts []*shoalpb.Task) {
				s := "complete:"
				for _, t := range ts {
					s += t.Id
				}
				record(s)
			},
			OnChanges: func(up []*shoalpb.Task, rm []string) {
				s := "changes:"
				for _, t := range up {
					s += "+" + t.Id
				}
				for _, id := range rm {
					s += "-" + id
				}
				record(s)
			},
		})
	}()
	deadline := time.After(10 * time.Second)
	for i := 0; i < 3; i++ {
		select {
		case <-got:
		case <-deadline:
			t.Fatalf("timed out; events so far %v", events)
		}
	}
	cancel()
	<-done
	want := []string{"complete:abc", "changes:+d-a", "complete:x"}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != len(want) {
		t.Fatalf("events = %v, want %v", events, want)
	}
	for i := range want {
		if events[i] != want[i] {
			t.Fatalf("events = %v, want %v", events, want)
		}
	}
}

func TestReporterKeepsLatestAndRetries(t *testing.T) {
	d, addr, conn := serveTaskDispatcher(t)
	d.mu.Lock()
	d.fail = true
	d.mu.Unlock()
	r := &worker.Reporter{
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Dial:     func(context.Context, string) (grpc.ClientConnInterface, error) { return conn, nil },
		Managers: func() []*shoalpb.Peer { return []*shoalpb.Peer{{Addr: addr}} },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	defer func() { cancel(); <-done }()

	r.Report("a", &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_STARTING})
	r.Report("a", &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_RUNNING})
	r.Report("b", &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_FAILED})
	waitTrue(t, "a failed attempt", func() bool { d.mu.Lock(); defer d.mu.Unlock(); return d.calls > 0 })
	if r.Pending() != 2 {
		t.Fatalf("pending after a failed send = %d, want 2", r.Pending())
	}
	d.mu.Lock()
	d.fail = false
	d.mu.Unlock()
	waitTrue(t, "the reports delivered", func() bool { return r.Pending() == 0 })
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.reports["a"].GetState() != shoalpb.TaskState_TASK_STATE_RUNNING || d.reports["b"].GetState() != shoalpb.TaskState_TASK_STATE_FAILED {
		t.Fatalf("delivered %v", d.reports)
	}
}

func waitTrue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval of the wait
	}
}
