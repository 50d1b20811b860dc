package update_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/manager/orchestrator"
	"github.com/shoal-project/shoal/manager/orchestrator/global"
	"github.com/shoal-project/shoal/manager/orchestrator/orchestratortest"
	"github.com/shoal-project/shoal/manager/orchestrator/replicated"
	"github.com/shoal-project/shoal/manager/orchestrator/update"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

const (
	pending  = shoalpb.TaskState_TASK_STATE_PENDING
	assigned = shoalpb.TaskState_TASK_STATE_ASSIGNED
	ready    = shoalpb.TaskState_TASK_STATE_READY
	starting = shoalpb.TaskState_TASK_STATE_STARTING
	running  = shoalpb.TaskState_TASK_STATE_RUNNING
	shutdown = shoalpb.TaskState_TASK_STATE_SHUTDOWN
	failed   = shoalpb.TaskState_TASK_STATE_FAILED

	stUpdating          = shoalpb.UpdateStatus_STATE_UPDATING
	stPaused            = shoalpb.UpdateStatus_STATE_PAUSED
	stCompleted         = shoalpb.UpdateStatus_STATE_COMPLETED
	stRollbackStarted   = shoalpb.UpdateStatus_STATE_ROLLBACK_STARTED
	stRollbackPaused    = shoalpb.UpdateStatus_STATE_ROLLBACK_PAUSED
	stRollbackCompleted = shoalpb.UpdateStatus_STATE_ROLLBACK_COMPLETED
)

// outcome is what the simulated worker does with a task it is asked to run.
type outcome int

const (
	run  outcome = iota // reach RUNNING
	fail                // fail while starting
	hold                // stay STARTING until released
)

// harness is an environment with the replicated and global orchestrators,
// the updater, and a simulated scheduler and worker: tasks are placed on
// the nodes in turn, run (or fail, or hang) as a policy says, and report
// SHUTDOWN when asked to stop.
type harness struct {
	*orchestratortest.Env
	t *testing.T

	mu       sync.Mutex
	policy   func(*shoalpb.Task) outcome
	released map[string]bool
	nodes    []string
	next     int
	// stopSilently lists tasks that never report stopping.
	stopSilently map[string]bool
	// slowPrepare lists images whose tasks stay PREPARING.
	slowPrepare map[string]bool

	kick chan struct{}

	updaterCancel context.CancelFunc
	updaterDone   chan struct{}
	barriers      int
}

func newHarness(t *testing.T, nodes ...string) *harness {
	t.Helper()
	e := orchestratortest.NewEnv(t)
	h := &harness{Env: e, t: t, released: map[string]bool{}, nodes: nodes, stopSilently: map[string]bool{}, slowPrepare: map[string]bool{}, kick: make(chan struct{}, 1)}
	h.policy = func(*shoalpb.Task) outcome { return run }
	var ns []*shoalpb.Node
	for _, n := range nodes {
		ns = append(ns, orchestratortest.Node(n))
	}
	if len(ns) > 0 {
		e.AddNodes(ns...)
	}
	r, err := replicated.New(e.Config())
	if err != nil {
		t.Fatal(err)
	}
	e.Go(r.Run)
	g, err := global.New(e.Config())
	if err != nil {
		t.Fatal(err)
	}
	e.Go(g.Run)
	h.startUpdater()
	e.Go(h.simulate)
	t.Cleanup(h.stopUpdater)
	return h
}

// startUpdater runs a new updater, as a new leader would.
func (h *harness) startUpdater() {
	cfg := h.Config()
	if os.Getenv("SHOAL_TEST_LOG") != "" {
		cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	u, err := update.New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := u.Run(ctx); err != nil {
			h.t.Errorf("updater: %v", err)
		}
	}()
	h.updaterCancel, h.updaterDone = cancel, done
}

// stopUpdater stops the updater and waits for it, as when leadership is
// lost.
func (h *harness) stopUpdater() {
	if h.updaterCancel != nil {
		h.updaterCancel()
		<-h.updaterDone
		h.updaterCancel = nil
	}
}

func (h *harness) setPolicy(p func(*shoalpb.Task) outcome) {
	h.mu.Lock()
	h.policy = p
	h.mu.Unlock()
	h.poke()
}

// release lets held tasks run.
func (h *harness) release(ids ...string) {
	h.mu.Lock()
	for _, id := range ids {
		h.released[id] = true
	}
	h.mu.Unlock()
	h.poke()
}

// poke makes the simulation look at the store again.
func (h *harness) poke() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// simulate plays scheduler and worker until ctx ends, acting on the store
// after every change.
func (h *harness) simulate(ctx context.Context) error {
	events, cancel := h.Store.Watch()
	defer cancel()
	for {
		h.simulateOnce(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-h.kick:
		case _, ok := <-events:
			if !ok {
				events, cancel = h.Store.Watch()
				defer cancel()
			}
		}
	}
}

func (h *harness) simulateOnce(ctx context.Context) {
	var tasks []*shoalpb.Task
	var nodes orchestrator.Nodes
	h.Store.View(func(tx store.ReadTx) {
		tasks = tx.Tasks()
		nodes = orchestrator.ReadNodes(tx)
	})
	now := h.Clock.Now().UnixNano()
	st := func(s shoalpb.TaskState, msg string) *shoalpb.TaskStatus {
		return &shoalpb.TaskStatus{State: s, Timestamp: now, Message: msg}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var actions []*shoalpb.StoreAction
	for _, t := range tasks {
		state := t.GetStatus().GetState()
		switch {
		case state >= shoalpb.TaskState_TASK_STATE_COMPLETE:
		case t.DesiredState >= shutdown:
			if state >= assigned && !h.stopSilently[t.Id] {
				actions = append(actions, orchestrator.StatusAction(t.Id, st(shutdown, "shutdown")))
			}
		case state == pending:
			node := t.NodeId
			if node == "" {
				if len(h.nodes) == 0 {
					continue
				}
				node = h.nodes[h.next%len(h.nodes)]
				h.next++
			}
			if n := nodes[node]; !orchestrator.AcceptsTasks(n) {
				continue
			}
			actions = append(actions, &shoalpb.StoreAction{Target: &shoalpb.StoreAction_TaskAssignment{TaskAssignment: &shoalpb.TaskAssignment{
				TaskId: t.Id, NodeId: node, Status: st(assigned, "assigned"),
			}}})
		case state < shoalpb.TaskState_TASK_STATE_PREPARING:
			actions = append(actions, orchestrator.StatusAction(t.Id, st(shoalpb.TaskState_TASK_STATE_PREPARING, "preparing")))
		case state < ready:
			if !h.slowPrepare[t.GetSpec().GetContainer().GetImage()] {
				actions = append(actions, orchestrator.StatusAction(t.Id, st(ready, "prepared")))
			}
		case t.DesiredState == ready:
		case state < starting:
			actions = append(actions, orchestrator.StatusAction(t.Id, st(starting, "starting")))
		case state == starting:
			switch h.policy(t) {
			case run:
				actions = append(actions, orchestrator.StatusAction(t.Id, st(running, "started")))
			case fail:
				s := st(failed, "starting failed")
				s.Err = "simulated failure"
				actions = append(actions, orchestrator.StatusAction(t.Id, s))
			case hold:
				if h.released[t.Id] {
					actions = append(actions, orchestrator.StatusAction(t.Id, st(running, "started")))
				}
			}
		}
	}
	if len(actions) > 0 {
		if _, err := h.Proposer.Propose(ctx, &shoalpb.Command{Actions: actions}); err != nil && ctx.Err() == nil {
			h.t.Errorf("simulated worker: %v", err)
		}
	}
}

// byImage returns a policy by container image.
func byImage(m map[string]outcome) func(*shoalpb.Task) outcome {
	return func(t *shoalpb.Task) outcome { return m[t.GetSpec().GetContainer().GetImage()] }
}

func svcOf(id string, replicas uint64, image string) *shoalpb.Service {
	var s *shoalpb.Service
	if replicas == 0 {
		s = orchestratortest.Global(id)
	} else {
		s = orchestratortest.Replicated(id, replicas)
	}
	s.Spec.Task.Container.Image = image
	return s
}

// service reads a service.
func (h *harness) service(id string) *shoalpb.Service {
	var s *shoalpb.Service
	h.Store.View(func(tx store.ReadTx) { s = tx.Service(id) })
	return s
}

// update changes the spec of service id as the control API does: the
// previous spec is kept, the spec version moves on when the task spec
// changed, and the update starts.
func (h *harness) update(id string, mod func(*shoalpb.ServiceSpec)) *shoalpb.Service {
	h.t.Helper()
	cur := h.service(id)
	svc := proto.Clone(cur).(*shoalpb.Service)
	mod(svc.Spec)
	svc.PreviousSpec = cur.Spec
	svc.PreviousSpecVersion = cur.SpecVersion
	if !proto.Equal(cur.Spec.Task, svc.Spec.Task) {
		svc.SpecVersion++
		svc.UpdateStatus = &shoalpb.UpdateStatus{State: stUpdating, StartedAt: h.Clock.Now().UnixNano(), Message: "update in progress"}
	}
	h.Propose(&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_UPDATE, Target: &shoalpb.StoreAction_Service{Service: svc}})
	return h.service(id)
}

// setStatus writes the update status of service id.
func (h *harness) setStatus(id string, st *shoalpb.UpdateStatus) {
	h.t.Helper()
	svc := proto.Clone(h.service(id)).(*shoalpb.Service)
	svc.UpdateStatus = st
	h.Propose(&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_UPDATE, Target: &shoalpb.StoreAction_Service{Service: svc}})
}

// waitStatus waits until service id's update status has state.
func (h *harness) waitStatus(id string, state shoalpb.UpdateStatus_State) *shoalpb.Service {
	h.t.Helper()
	var svc *shoalpb.Service
	h.WaitFor(fmt.Sprintf("%s update state %v", id, state), func(tx store.ReadTx) bool {
		svc = tx.Service(id)
		return svc.GetUpdateStatus().GetState() == state
	}, func() string {
		return fmt.Sprintf("status %v\n%s", svc.GetUpdateStatus(), orchestratortest.Dump(h.Tasks(id)))
	})
	return svc
}

// runningWanted returns the tasks that run and should.
func runningWanted(tasks []*shoalpb.Task) []*shoalpb.Task {
	var out []*shoalpb.Task
	for _, t := range tasks {
		if t.DesiredState == running && t.GetStatus().GetState() == running {
			out = append(out, t)
		}
	}
	return out
}

// ofVersion returns the tasks of spec version v.
func ofVersion(tasks []*shoalpb.Task, v uint64) []*shoalpb.Task {
	var out []*shoalpb.Task
	for _, t := range tasks {
		if t.SpecVersion == v {
			out = append(out, t)
		}
	}
	return out
}

// converged reports whether the service runs n tasks of version v, and
// nothing else is wanted.
func converged(n int, v uint64) func([]*shoalpb.Task) bool {
	return func(tasks []*shoalpb.Task) bool {
		r := runningWanted(tasks)
		if len(r) != n || len(orchestratortest.Runnable(tasks)) != n {
			return false
		}
		for _, t := range r {
			if t.SpecVersion != v {
				return false
			}
		}
		return true
	}
}

// barrier returns once the updater has handled every change made before
// it: it creates a service whose only task is outdated and waits for the
// updater to mark its update started. Loops handle events in order, and a
// pass that was due (a fired timer) runs no later than the pass this
// event causes.
func (h *harness) barrier() {
	h.t.Helper()
	h.mu.Lock()
	h.barriers++
	id := fmt.Sprintf("zz-barrier-%d", h.barriers)
	h.mu.Unlock()
	svc := svcOf(id, 1, "barrier:2")
	svc.SpecVersion = 2
	old := orchestrator.NewTask(svc, 1, "", id+"-old", h.Clock.Now())
	old.SpecVersion = 1
	old.Spec.Container.Image = "barrier:1"
	h.Propose(
		&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Service{Service: svc}},
		orchestrator.CreateTaskAction(old),
	)
	h.WaitFor("updater handled "+id, func(tx store.ReadTx) bool {
		return tx.Service(id).GetUpdateStatus() != nil
	}, nil)
}

// watchRunning records, for every change of the store from now on, how
// many tasks of service id run and should; stop returns the lowest and
// highest counts seen.
func (h *harness) watchRunning(id string) (stop func() (lo, hi int)) {
	events, cancel := h.Store.Watch()
	tasks := map[string]*shoalpb.Task{}
	for _, t := range h.Tasks(id) {
		tasks[t.Id] = t
	}
	count := func() int {
		n := 0
		for _, t := range tasks {
			if t.DesiredState == running && t.GetStatus().GetState() == running {
				n++
			}
		}
		return n
	}
	lo, hi := count(), count()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range events {
			t, ok := ev.Object.(*shoalpb.Task)
			if !ok || t.ServiceId != id {
				continue
			}
			if ev.Kind == store.EventRemove {
				delete(tasks, t.Id)
			} else {
				tasks[t.Id] = t
			}
			n := count()
			lo, hi = min(lo, n), max(hi, n)
		}
	}()
	return func() (int, int) {
		cancel()
		<-done
		return lo, hi
	}
}

// dump shows a service's tasks and status.
func (h *harness) dump(id string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "status %v\n", h.service(id).GetUpdateStatus())
	sb.WriteString(orchestratortest.Dump(h.Tasks(id)))
	return sb.String()
}

// startAndConverge creates svc and waits until its n tasks run.
func (h *harness) startAndConverge(svc *shoalpb.Service, n int) []*shoalpb.Task {
	h.t.Helper()
	h.CreateService(svc)
	tasks := h.WaitTasks(svc.Id, fmt.Sprintf("%d running tasks", n), converged(n, svc.SpecVersion))
	// Later tasks are made strictly after these.
	h.Clock.Advance(time.Second)
	return tasks
}

func i64(v time.Duration) *int64 { return proto.Int64(int64(v)) }
