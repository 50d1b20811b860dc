package orchestratortest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/manager/orchestrator"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Start is the fake clock's initial reading in every Env.
var Start = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// WaitTimeout bounds every wait of an Env.
const WaitTimeout = 10 * time.Second

// Env is a store with no Raft, a fake clock and predictable IDs.
type Env struct {
	T        testing.TB
	Store    *store.Store
	Proposer *CountingProposer
	Clock    *Clock
	IDs      *IDs

	mu       sync.Mutex
	barriers int
}

// NewEnv returns an empty environment.
func NewEnv(t testing.TB) *Env {
	s := store.New()
	return &Env{
		T:        t,
		Store:    s,
		Proposer: &CountingProposer{Inner: &store.LocalProposer{Store: s}},
		Clock:    NewClock(Start),
		IDs:      &IDs{Prefix: "task"},
	}
}

// Config returns a configuration on the environment, with the default
// constraint filter and a short batch delay.
func (e *Env) Config() orchestrator.Config {
	return orchestrator.Config{
		Store:      e.Store,
		Proposer:   e.Proposer,
		Now:        e.Clock.Now,
		After:      e.Clock.After,
		NewID:      e.IDs.New,
		BatchDelay: 5 * time.Millisecond,
		RetryDelay: 20 * time.Millisecond,
	}
}

// Go runs fn until the test ends; the test then cancels it and waits.
func (e *Env) Go(fn func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := fn(ctx); err != nil {
			e.T.Errorf("run: %v", err)
		}
	}()
	e.T.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

// Propose applies actions in one command, failing the test on error.
func (e *Env) Propose(actions ...*shoalpb.StoreAction) {
	e.T.Helper()
	if _, err := e.Proposer.Propose(context.Background(), &shoalpb.Command{Actions: actions}); err != nil {
		e.T.Fatalf("propose: %v", err)
	}
}

// Node returns a READY, ACTIVE worker node with the given labels
// ("key=value").
func Node(id string, labels ...string) *shoalpb.Node {
	n := &shoalpb.Node{
		Id:          id,
		Spec:        &shoalpb.NodeSpec{Labels: map[string]string{}},
		Description: &shoalpb.NodeDescription{Hostname: id},
		Status:      &shoalpb.NodeStatus{State: shoalpb.NodeState_NODE_STATE_READY},
	}
	for _, l := range labels {
		k, v, _ := strings.Cut(l, "=")
		n.Spec.Labels[k] = v
	}
	return n
}

// AddNodes creates nodes.
func (e *Env) AddNodes(nodes ...*shoalpb.Node) {
	e.T.Helper()
	var actions []*shoalpb.StoreAction
	for _, n := range nodes {
		actions = append(actions, &shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Node{Node: n}})
	}
	e.Propose(actions...)
}

// UpdateNode changes node id with mod.
func (e *Env) UpdateNode(id string, mod func(n *shoalpb.Node)) {
	e.T.Helper()
	var n *shoalpb.Node
	e.Store.View(func(tx store.ReadTx) { n = tx.Node(id) })
	if n == nil {
		e.T.Fatalf("node %s not found", id)
	}
	n = proto.Clone(n).(*shoalpb.Node)
	mod(n)
	e.Propose(&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_UPDATE, Target: &shoalpb.StoreAction_Node{Node: n}})
}

// SetNodeState sets node id's observed state.
func (e *Env) SetNodeState(id string, s shoalpb.NodeState) {
	e.T.Helper()
	e.UpdateNode(id, func(n *shoalpb.Node) { n.Status = &shoalpb.NodeStatus{State: s} })
}

// SetAvailability sets node id's availability.
func (e *Env) SetAvailability(id string, a shoalpb.NodeAvailability) {
	e.T.Helper()
	e.UpdateNode(id, func(n *shoalpb.Node) { n.Spec.Availability = a })
}

// RemoveNode deletes node id.
func (e *Env) RemoveNode(id string) {
	e.T.Helper()
	e.Propose(&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_REMOVE, Target: &shoalpb.StoreAction_Node{Node: &shoalpb.Node{Id: id}}})
}

// Replicated returns a replicated service spec.
func Replicated(id string, replicas uint64) *shoalpb.Service {
	return service(id, &shoalpb.ServiceSpec{Mode: &shoalpb.ServiceSpec_Replicated{Replicated: &shoalpb.ReplicatedService{Replicas: replicas}}})
}

// Global returns a global service.
func Global(id string) *shoalpb.Service {
	return service(id, &shoalpb.ServiceSpec{Mode: &shoalpb.ServiceSpec_Global{Global: &shoalpb.GlobalService{}}})
}

// ReplicatedJob returns a replicated job.
func ReplicatedJob(id string, maxConcurrent, total uint64) *shoalpb.Service {
	return service(id, &shoalpb.ServiceSpec{Mode: &shoalpb.ServiceSpec_ReplicatedJob{ReplicatedJob: &shoalpb.ReplicatedJob{MaxConcurrent: maxConcurrent, TotalCompletions: total}}})
}

// GlobalJob returns a global job.
func GlobalJob(id string) *shoalpb.Service {
	return service(id, &shoalpb.ServiceSpec{Mode: &shoalpb.ServiceSpec_GlobalJob{GlobalJob: &shoalpb.GlobalJob{}}})
}

func service(id string, spec *shoalpb.ServiceSpec) *shoalpb.Service {
	spec.Name = id
	spec.Task = &shoalpb.TaskSpec{Container: &shoalpb.ContainerSpec{Image: "busybox"}}
	return &shoalpb.Service{Id: id, Spec: spec, SpecVersion: 1}
}

// CreateService stores svc.
func (e *Env) CreateService(svc *shoalpb.Service) {
	e.T.Helper()
	e.Propose(&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Service{Service: svc}})
}

// UpdateService changes service id with mod and bumps its spec version.
func (e *Env) UpdateService(id string, mod func(svc *shoalpb.Service)) {
	e.T.Helper()
	var svc *shoalpb.Service
	e.Store.View(func(tx store.ReadTx) { svc = tx.Service(id) })
	if svc == nil {
		e.T.Fatalf("service %s not found", id)
	}
	svc = proto.Clone(svc).(*shoalpb.Service)
	mod(svc)
	svc.SpecVersion++
	e.Propose(&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_UPDATE, Target: &shoalpb.StoreAction_Service{Service: svc}})
}

// RemoveService deletes service id.
func (e *Env) RemoveService(id string) {
	e.T.Helper()
	e.Propose(&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_REMOVE, Target: &shoalpb.StoreAction_Service{Service: &shoalpb.Service{Id: id}}})
}

// Report records observed states for tasks, as a worker would, in one
// command: pairs of task ID and state.
func (e *Env) Report(states map[string]shoalpb.TaskState) {
	e.T.Helper()
	var actions []*shoalpb.StoreAction
	ts := e.Clock.Now().UnixNano()
	for id, s := range states {
		actions = append(actions, orchestrator.StatusAction(id, &shoalpb.TaskStatus{State: s, Timestamp: ts, Message: strings.ToLower(strings.TrimPrefix(s.String(), "TASK_STATE_"))}))
	}
	e.Propose(actions...)
}

// Assign puts task id on node, as the scheduler would.
func (e *Env) Assign(id, node string) {
	e.T.Helper()
	var t *shoalpb.Task
	e.Store.View(func(tx store.ReadTx) { t = tx.Task(id) })
	if t == nil {
		e.T.Fatalf("task %s not found", id)
	}
	t = proto.Clone(t).(*shoalpb.Task)
	t.NodeId = node
	t.Status = &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_ASSIGNED, Timestamp: e.Clock.Now().UnixNano()}
	e.Propose(&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_UPDATE, Target: &shoalpb.StoreAction_Task{Task: t}})
}

// Tasks returns the tasks of a service, oldest first.
func (e *Env) Tasks(serviceID string) []*shoalpb.Task {
	var out []*shoalpb.Task
	e.Store.View(func(tx store.ReadTx) { out = tx.TasksByService(serviceID) })
	orchestrator.SortByAge(out)
	return out
}

// Runnable returns the tasks the managers still want running.
func Runnable(tasks []*shoalpb.Task) []*shoalpb.Task {
	var out []*shoalpb.Task
	for _, t := range tasks {
		if orchestrator.IsRunnable(t) {
			out = append(out, t)
		}
	}
	return out
}

// WaitTasks polls the tasks of a service until cond holds and returns
// them; the test fails after WaitTimeout.
func (e *Env) WaitTasks(serviceID, what string, cond func(tasks []*shoalpb.Task) bool) []*shoalpb.Task {
	e.T.Helper()
	var tasks []*shoalpb.Task
	e.WaitFor(what, func(store.ReadTx) bool {
		tasks = e.Tasks(serviceID)
		return cond(tasks)
	}, func() string { return Dump(tasks) })
	return tasks
}

// WaitFor polls the store until cond holds; after WaitTimeout it fails the
// test, showing what dump returns (if not nil).
func (e *Env) WaitFor(what string, cond func(tx store.ReadTx) bool, dump func() string) {
	e.T.Helper()
	deadline := time.NewTimer(WaitTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		var ok bool
		e.Store.View(func(tx store.ReadTx) { ok = cond(tx) })
		if ok {
			return
		}
		select {
		case <-deadline.C:
			msg := ""
			if dump != nil {
				msg = "\n" + dump()
			}
			e.T.Fatalf("timed out waiting for %s%s", what, msg)
		case <-tick.C:
		}
	}
}

// Dump formats tasks one a line, for failure messages.
func Dump(tasks []*shoalpb.Task) string {
	var sb strings.Builder
	for _, t := range tasks {
		fmt.Fprintf(&sb, "  %s slot=%d node=%q spec=%d iter=%d desired=%s observed=%s err=%q\n", t.Id, t.Slot, t.NodeId, t.SpecVersion, t.JobIteration,
			strings.TrimPrefix(t.DesiredState.String(), "TASK_STATE_"), strings.TrimPrefix(t.GetStatus().GetState().String(), "TASK_STATE_"), t.GetStatus().GetErr())
	}
	return sb.String()
}

// Barrier creates a new service made by mk and waits until it has a task.
// Loops handle events in order, so once the task exists the loop that made
// it has reconciled every change committed before the service was.
func (e *Env) Barrier(mk func(id string) *shoalpb.Service) {
	e.T.Helper()
	e.mu.Lock()
	e.barriers++
	id := fmt.Sprintf("barrier-%d", e.barriers)
	e.mu.Unlock()
	e.CreateService(mk(id))
	e.WaitTasks(id, "a task of "+id, func(tasks []*shoalpb.Task) bool { return len(tasks) > 0 })
}
