package worker_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/worker"
	"github.com/shoal-project/shoal/worker/exec"
	"github.com/shoal-project/shoal/worker/taskdb"
)

// fakeRuntime is a container runtime in memory: containers survive the
// task manager (as real ones survive a daemon restart).
type fakeRuntime struct {
	mu         sync.Mutex
	containers map[string]*fakeContainer
	creates    int
}

type fakeContainer struct {
	started, exited, removed bool
	exit                     chan struct{}
}

func (rt *fakeRuntime) Describe(context.Context) (*shoalpb.NodeDescription, error) {
	return &shoalpb.NodeDescription{}, nil
}

func (rt *fakeRuntime) Controller(t *shoalpb.Task) (exec.Controller, error) {
	return &fakeController{rt: rt, id: t.Id}, nil
}

func (rt *fakeRuntime) get(id string) *fakeContainer {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.containers[id]
}

type fakeController struct {
	rt *fakeRuntime
	id string
}

func (c *fakeController) Prepare(context.Context) error {
	c.rt.mu.Lock()
	defer c.rt.mu.Unlock()
	if c.rt.containers[c.id] == nil {
		c.rt.containers[c.id] = &fakeContainer{exit: make(chan struct{})}
		c.rt.creates++
	}
	return nil
}

func (c *fakeController) Start(context.Context) error {
	c.rt.mu.Lock()
	defer c.rt.mu.Unlock()
	c.rt.containers[c.id].started = true
	return nil
}

func (c *fakeController) Wait(ctx context.Context) error {
	ctr := c.rt.get(c.id)
	select {
	case <-ctr.exit:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *fakeController) stop() {
	c.rt.mu.Lock()
	defer c.rt.mu.Unlock()
	if ctr := c.rt.containers[c.id]; ctr != nil && !ctr.exited {
		ctr.exited = true
		close(ctr.exit)
	}
}

func (c *fakeController) Shutdown(context.Context) error  { c.stop(); return nil }
func (c *fakeController) Terminate(context.Context) error { c.stop(); return nil }
func (c *fakeController) Remove(context.Context) error {
	c.stop()
	c.rt.mu.Lock()
	defer c.rt.mu.Unlock()
	if ctr := c.rt.containers[c.id]; ctr != nil {
		ctr.removed = true
	}
	return nil
}
func (c *fakeController) Close() error { return nil }

type managerEnv struct {
	t    *testing.T
	rt   *fakeRuntime
	path string
	db   *taskdb.DB
	tm   *worker.TaskManager
	stop func()
}

func startManager(t *testing.T, rt *fakeRuntime, path string) *managerEnv {
	t.Helper()
	db, err := taskdb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	rep := &worker.Reporter{
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Dial:     func(context.Context, string) (grpc.ClientConnInterface, error) { return nil, context.Canceled },
		Managers: func() []*shoalpb.Peer { return nil },
	}
	tm := &worker.TaskManager{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Executor: rt, DB: db, Reporter: rep, Now: time.Now}
	ctx, cancel := context.WithCancel(context.Background())
	if err := tm.Start(ctx); err != nil {
		t.Fatal(err)
	}
	e := &managerEnv{t: t, rt: rt, path: path, db: db, tm: tm}
	e.stop = func() { cancel(); tm.Wait(); db.Close() }
	return e
}

func (e *managerEnv) status(id string) shoalpb.TaskState {
	rec, err := e.db.Get(id)
	if err != nil || rec == nil || rec.Status == nil {
		return -1
	}
	return rec.Status.State
}

func assignedTask(id string, desired shoalpb.TaskState) *shoalpb.Task {
	return &shoalpb.Task{Id: id, ServiceId: "svc", NodeId: "n1", DesiredState: desired,
		Spec:   &shoalpb.TaskSpec{Container: &shoalpb.ContainerSpec{Image: "img"}},
		Status: &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_ASSIGNED}}
}

func TestTaskManagerRunsStopsRemovesAndReadopts(t *testing.T) {
	rt := &fakeRuntime{containers: map[string]*fakeContainer{}}
	path := filepath.Join(t.TempDir(), "tasks.db")
	e := startManager(t, rt, path)

	e.tm.Complete([]*shoalpb.Task{assignedTask("a", shoalpb.TaskState_TASK_STATE_RUNNING), assignedTask("b", shoalpb.TaskState_TASK_STATE_RUNNING)})
	waitTrue(t, "both tasks running", func() bool {
		return e.status("a") == shoalpb.TaskState_TASK_STATE_RUNNING && e.status("b") == shoalpb.TaskState_TASK_STATE_RUNNING
	})
	if e.tm.Reporter.Pending() == 0 {
		t.Fatal("no status was queued for the managers")
	}

	// The managers want a stopped: the wait on its container is
	// interrupted and it is shut down.
	e.tm.Changes([]*shoalpb.Task{assignedTask("a", shoalpb.TaskState_TASK_STATE_SHUTDOWN)}, nil)
	waitTrue(t, "task a shut down", func() bool { return e.status("a") == shoalpb.TaskState_TASK_STATE_SHUTDOWN })

	// The daemon stops; b's container keeps running. A new task manager on
	// the same database adopts it without creating another container.
	e.stop()
	if c := rt.get("b"); c == nil || c.exited {
		t.Fatal("stopping the task manager stopped a container")
	}
	creates := rt.creates
	e = startManager(t, rt, path)
	defer e.stop()
	waitTrue(t, "task b re-adopted", func() bool { return e.status("b") == shoalpb.TaskState_TASK_STATE_RUNNING && len(e.tm.Running()) == 2 })
	if rt.creates != creates {
		t.Fatalf("re-adoption created %d new containers", rt.creates-creates)
	}

	// The first complete set after the restart no longer lists a: its
	// container is removed and the task forgotten; b stays.
	e.tm.Complete([]*shoalpb.Task{assignedTask("b", shoalpb.TaskState_TASK_STATE_RUNNING)})
	waitTrue(t, "task a forgotten", func() bool {
		rec, _ := e.db.Get("a")
		return rec == nil && rt.get("a").removed
	})
	if c := rt.get("b"); c.exited || c.removed {
		t.Fatal("task b was disturbed")
	}
}
