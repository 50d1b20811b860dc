package worker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/worker/exec"
	"github.com/shoal-project/shoal/worker/taskdb"
)

// TaskManager runs the tasks assigned to this node: one runner per task
// drives its controller towards the task's desired state, every observed
// status is saved locally and reported to the managers, and a task that is
// no longer assigned has its container stopped and removed.
type TaskManager struct {
	Logger   *slog.Logger
	Executor exec.Executor
	DB       *taskdb.DB
	Reporter *Reporter
	Now      func() time.Time

	mu      sync.Mutex
	ctx     context.Context
	runners map[string]*taskRunner
	wg      sync.WaitGroup
}

// Start re-adopts the tasks recorded in the local database: their runners
// start from the last state seen, so a running container is found and kept,
// not restarted. It must be called before assignments arrive.
func (m *TaskManager) Start(ctx context.Context) error {
	m.mu.Lock()
	m.ctx = ctx
	m.runners = map[string]*taskRunner{}
	m.mu.Unlock()
	recs, err := m.DB.All()
	if err != nil {
		return err
	}
	for _, rec := range recs {
		st := rec.Status
		if st == nil {
			st = rec.Task.GetStatus()
		}
		m.startRunner(rec.Task, replayStatus(st))
	}
	return nil
}

// replayStatus is where a re-adopted task resumes: a task that had not
// finished replays its steps from the start — Prepare adopts the existing
// container and Start leaves a running one alone — and a finished one
// keeps its final status.
func replayStatus(st *shoalpb.TaskStatus) *shoalpb.TaskStatus {
	if st != nil && st.State >= shoalpb.TaskState_TASK_STATE_COMPLETE {
		return st
	}
	out := &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_ASSIGNED}
	if st != nil {
		out.Container = st.Container
	}
	return out
}

// Wait waits for every runner to end after the context given to Start
// ended. Containers are left running: a daemon that stops does not stop
// its tasks.
func (m *TaskManager) Wait() { m.wg.Wait() }

// Complete replaces the set of assigned tasks.
func (m *TaskManager) Complete(tasks []*shoalpb.Task) {
	keep := make(map[string]bool, len(tasks))
	for _, t := range tasks {
		keep[t.Id] = true
	}
	m.mu.Lock()
	var gone []string
	for id := range m.runners {
		if !keep[id] {
			gone = append(gone, id)
		}
	}
	m.mu.Unlock()
	m.Changes(tasks, gone)
}

// Changes applies updated and removed assignments.
func (m *TaskManager) Changes(updated []*shoalpb.Task, removed []string) {
	// One commit for the whole change.
	if err := m.DB.PutTasks(updated); err != nil {
		m.Logger.Error("record assigned tasks", "tasks", len(updated), "err", err)
	}
	for _, t := range updated {
		m.mu.Lock()
		r := m.runners[t.Id]
		m.mu.Unlock()
		if r != nil {
			r.update(t)
			continue
		}
		m.startRunner(t, t.GetStatus())
	}
	for _, id := range removed {
		m.mu.Lock()
		r := m.runners[id]
		m.mu.Unlock()
		if r != nil {
			r.remove()
		} else if err := m.DB.Delete(id); err != nil {
			m.Logger.Error("forget task", "task", id, "err", err)
		}
	}
}

// Running reports the IDs of the tasks that have a runner.
func (m *TaskManager) Running() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.runners))
	for id := range m.runners {
		out = append(out, id)
	}
	return out
}

// Controller returns a task's controller and the task as this node sees
// it (its observed status included), for reading the container's output
// alongside the runner; ok is false while the task has no runner or its
// runner no controller.
func (m *TaskManager) Controller(taskID string) (ctlr exec.Controller, t *shoalpb.Task, ok bool) {
	m.mu.Lock()
	r := m.runners[taskID]
	m.mu.Unlock()
	if r == nil {
		return nil, nil, false
	}
	r.mu.Lock()
	ctlr = r.ctlr
	r.mu.Unlock()
	if ctlr == nil {
		return nil, nil, false
	}
	t, _ = r.current()
	return ctlr, t, true
}

func (m *TaskManager) startRunner(t *shoalpb.Task, st *shoalpb.TaskStatus) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx == nil || m.ctx.Err() != nil || m.runners[t.Id] != nil {
		return
	}
	if st == nil {
		st = &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_ASSIGNED}
	}
	r := &taskRunner{m: m, id: t.Id, task: t, status: st, changed: make(chan struct{}, 1), gone: make(chan struct{})}
	m.runners[t.Id] = r
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		r.run(m.ctx)
	}()
}

// taskRunner drives one task.
type taskRunner struct {
	m       *TaskManager
	id      string // the task's; never changes, so read without mu
	mu      sync.Mutex
	task    *shoalpb.Task
	status  *shoalpb.TaskStatus
	removed bool
	// persisted is the status last written to the task database.
	persisted *shoalpb.TaskStatus
	ctlr      exec.Controller // set while the runner holds one
	changed   chan struct{}
	gone      chan struct{}
	once      sync.Once
}

func (r *taskRunner) update(t *shoalpb.Task) {
	r.mu.Lock()
	r.task = t
	r.mu.Unlock()
	r.poke()
}

func (r *taskRunner) remove() {
	r.mu.Lock()
	r.removed = true
	r.mu.Unlock()
	r.once.Do(func() { close(r.gone) })
}

func (r *taskRunner) poke() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// current returns the task as the runner sees it: the managers' spec and
// desired state with the status this node observed.
func (r *taskRunner) current() (*shoalpb.Task, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := proto.Clone(r.task).(*shoalpb.Task)
	t.Status = r.status
	return t, r.removed
}

func (r *taskRunner) run(ctx context.Context) {
	log := r.m.Logger.With("task", r.id)
	t, _ := r.current()
	ctlr, err := r.m.Executor.Controller(t)
	if err != nil {
		r.setStatus(&shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_REJECTED, Timestamp: r.m.Now().UnixNano(), Message: "rejected", Err: err.Error()})
		ctlr = nil
	}
	r.mu.Lock()
	r.ctlr = ctlr
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.ctlr = nil
		r.mu.Unlock()
		if ctlr != nil {
			ctlr.Close()
		}
	}()
	for {
		t, removed := r.current()
		if removed {
			r.cleanup(ctx, ctlr)
			return
		}
		if ctlr == nil {
			if !r.idle(ctx) {
				return
			}
			continue
		}
		stepCtx, cancel := context.WithCancel(ctx)
		stop := make(chan struct{})
		go func() {
			// A change of the assignment interrupts a long step (waiting
			// for the container) so the new desired state is acted on.
			select {
			case <-r.changed:
				cancel()
			case <-r.gone:
				cancel()
			case <-stop:
			}
		}()
		st, err := exec.Do(stepCtx, t, ctlr, r.m.Now)
		close(stop)
		cancel()
		if st != nil && !proto.Equal(st, t.Status) {
			r.setStatus(st)
		}
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			continue
		case errors.Is(err, exec.ErrTaskNoop):
			if !r.idle(ctx) {
				return
			}
		case errors.Is(err, context.Canceled):
			// Interrupted by a change: look again at once.
		default:
			log.Warn("task step failed; retrying", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-r.changed:
			case <-r.gone:
			case <-time.After(time.Second):
			}
		}
	}
}

// idle waits for the assignment to change; false when ctx ended.
func (r *taskRunner) idle(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return false
	case <-r.changed:
	case <-r.gone:
	}
	return true
}

func (r *taskRunner) setStatus(st *shoalpb.TaskStatus) {
	r.mu.Lock()
	r.status = st
	id := r.id
	persist := mustPersist(r.persisted, st)
	if persist {
		r.persisted = st
	}
	r.mu.Unlock()
	if persist {
		if err := r.m.DB.PutStatus(id, st); err != nil {
			r.m.Logger.Warn("record task status", "task", id, "err", err)
		}
	}
	r.m.Reporter.Report(id, st)
}

// mustPersist reports whether a new status is worth a commit to the task
// database: a first status, a change of container details (what a
// restarted daemon re-adopts, see replayStatus), or a new state from
// RUNNING on. The states before RUNNING are replayed from the start after
// a restart anyway, so writing each of them would only cost commits.
func mustPersist(last, st *shoalpb.TaskStatus) bool {
	return last == nil ||
		(st.State >= shoalpb.TaskState_TASK_STATE_RUNNING && st.State != last.State) ||
		!proto.Equal(last.Container, st.Container)
}

// cleanup stops and removes the container of a task no longer assigned,
// then forgets the task.
func (r *taskRunner) cleanup(ctx context.Context, ctlr exec.Controller) {
	id := r.id
	if ctlr != nil {
		if err := ctlr.Shutdown(ctx); err != nil && !errors.Is(err, exec.ErrTaskNotFound) {
			r.m.Logger.Debug("stop removed task", "task", id, "err", err)
		}
		if err := ctlr.Remove(ctx); err != nil {
			r.m.Logger.Warn("remove container of removed task", "task", id, "err", err)
			return // kept in the database: retried after a restart
		}
	}
	if err := r.m.DB.Delete(id); err != nil {
		r.m.Logger.Warn("forget task", "task", id, "err", err)
	}
	r.m.mu.Lock()
	delete(r.m.runners, id)
	r.m.mu.Unlock()
}
