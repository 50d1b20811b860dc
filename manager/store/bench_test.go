package store

import (
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// benchCluster is the shape of the control-plane scale benchmark: nodes
// READY and ACTIVE, one service, its tasks created PENDING.
type benchCluster struct {
	s     *Store
	nodes []string
	tasks []string
	index uint64
}

// cpuTime is the CPU time this process has used (all its threads, the
// garbage collector's included).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchID(kind string, i int) string { return fmt.Sprintf("%s%021d", kind, i) }

func newBenchCluster(b *testing.B, nodes, tasks int) *benchCluster {
	b.Helper()
	c := &benchCluster{s: New()}
	var actions []*shoalpb.StoreAction
	for i := 0; i < nodes; i++ {
		id := benchID("node", i)
		c.nodes = append(c.nodes, id)
		actions = append(actions, &shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Node{Node: &shoalpb.Node{
			Id:          id,
			Spec:        &shoalpb.NodeSpec{Availability: shoalpb.NodeAvailability_NODE_AVAILABILITY_ACTIVE},
			Status:      &shoalpb.NodeStatus{State: shoalpb.NodeState_NODE_STATE_READY},
			Description: &shoalpb.NodeDescription{Hostname: id, Resources: &shoalpb.Resources{NanoCpus: 4e9, MemoryBytes: 8 << 30}},
		}}})
	}
	c.apply(b, actions)
	svc := &shoalpb.Service{Id: "svc0000000000000000000001", Spec: &shoalpb.ServiceSpec{Name: "scale"}}
	c.apply(b, []*shoalpb.StoreAction{{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Service{Service: svc}}})
	spec := &shoalpb.TaskSpec{Container: &shoalpb.ContainerSpec{Image: "sim/sleep:24h"}}
	for i := 0; i < tasks; i += 1000 {
		actions = actions[:0]
		for j := i; j < min(i+1000, tasks); j++ {
			id := benchID("task", j)
			c.tasks = append(c.tasks, id)
			actions = append(actions, &shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Task{Task: &shoalpb.Task{
				Id: id, ServiceId: svc.Id, ServiceName: "scale", Slot: uint64(j + 1), Spec: spec, SpecVersion: 1,
				DesiredState: shoalpb.TaskState_TASK_STATE_RUNNING,
				Status:       &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_PENDING, Message: "pending"},
			}}})
		}
		c.apply(b, actions)
	}
	return c
}

func (c *benchCluster) apply(b *testing.B, actions []*shoalpb.StoreAction) {
	data, err := proto.Marshal(&shoalpb.Command{Actions: actions})
	if err != nil {
		b.Fatal(err)
	}
	c.index++
	if err := c.s.ApplyCommand(c.index, data); err != nil {
		b.Fatal(err)
	}
}

// watchAll subscribes one assignment-stream-like watcher per node plus a
// few watchers of everything, all drained by goroutines, until stop.
func (c *benchCluster) watchAll(stop chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	drain := func(ch <-chan Event, cancel func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel()
			for {
				select {
				case <-stop:
					return
				case _, ok := <-ch:
					if !ok {
						return
					}
				}
			}
		}()
	}
	for _, n := range c.nodes {
		w := c.s.WatchNodeTasks(n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.Cancel()
			for {
				select {
				case <-stop:
					return
				case <-w.Ready():
					if _, ok := w.Take(); !ok {
						return
					}
				}
			}
		}()
	}
	for i := 0; i < 10; i++ {
		drain(c.s.Watch())
	}
	return &wg
}

// BenchmarkApplyAssignments applies scheduling passes' entries: 1,000
// assignments each, spread over the nodes, then the workers' RUNNING
// reports for them, as the scale benchmark's managers do.
func BenchmarkApplyAssignmentsAndReports(b *testing.B) {
	for _, watchers := range []bool{false, true} {
		b.Run(fmt.Sprintf("watchers=%v", watchers), func(b *testing.B) {
			const nodes, tasks = 1000, 20000
			c := newBenchCluster(b, nodes, tasks)
			if watchers {
				stop := make(chan struct{})
				wg := c.watchAll(stop)
				defer func() { close(stop); wg.Wait() }()
			}
			var entries [][]byte
			for i := 0; i < tasks; i += 1000 {
				var assign, report []*shoalpb.StoreAction
				for j := i; j < i+1000; j++ {
					assign = append(assign, &shoalpb.StoreAction{Target: &shoalpb.StoreAction_TaskAssignment{TaskAssignment: &shoalpb.TaskAssignment{
						TaskId: c.tasks[j], NodeId: c.nodes[j%nodes],
						Status: &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_ASSIGNED, Timestamp: 1, Message: "scheduler assigned task to node"},
					}}})
					report = append(report, &shoalpb.StoreAction{Target: &shoalpb.StoreAction_TaskStatusPatch{TaskStatusPatch: &shoalpb.TaskStatusPatch{
						TaskId: c.tasks[j],
						Status: &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_RUNNING, Timestamp: 2, Message: "started",
							Container: &shoalpb.ContainerStatus{ContainerId: "c" + c.tasks[j], Pid: 1234}},
					}}})
				}
				a, _ := proto.Marshal(&shoalpb.Command{Actions: assign})
				r, _ := proto.Marshal(&shoalpb.Command{Actions: report})
				entries = append(entries, a, r)
			}
			base := c.index
			var cpu time.Duration
			b.ResetTimer()
			for n := 0; n < b.N; n++ {
				// Each round re-applies the same entries to a fresh copy
				// of the tasks: PENDING again, so assignments apply.
				b.StopTimer()
				if n > 0 {
					c.s.mu.Lock()
					txn := c.s.db.Load().Txn(true)
					for _, id := range c.tasks {
						old := getTask(txn, id)
						t := patchCopy(old)
						t.NodeId = ""
						t.Status = &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_PENDING}
						if err := putTask(txn, old, t); err != nil {
							b.Fatal(err)
						}
					}
					txn.Commit()
					c.s.mu.Unlock()
				}
				b.StartTimer()
				before := cpuTime()
				for i, e := range entries {
					if err := c.s.ApplyCommand(base+uint64(n*len(entries)+i+1), e); err != nil {
						b.Fatal(err)
					}
				}
				cpu += cpuTime() - before
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*tasks*2), "ns/action")
			// CPU time moves less than wall time on a shared machine.
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*tasks*2), "cpu-ns/action")
		})
	}
}

// BenchmarkReadTasks lists the tasks as the leader's loops do: every task
// of the service (orchestrators), and every node's tasks (a scheduling
// pass), with the 20,000 tasks placed on 1,000 nodes.
func BenchmarkReadTasks(b *testing.B) {
	const nodes, tasks = 1000, 20000
	c := newBenchCluster(b, nodes, tasks)
	var assign []*shoalpb.StoreAction
	for j, id := range c.tasks {
		assign = append(assign, &shoalpb.StoreAction{Target: &shoalpb.StoreAction_TaskAssignment{TaskAssignment: &shoalpb.TaskAssignment{
			TaskId: id, NodeId: c.nodes[j%nodes], Status: &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_ASSIGNED},
		}}})
	}
	c.apply(b, assign)
	b.Run("by-service", func(b *testing.B) {
		for n := 0; n < b.N; n++ {
			c.s.View(func(tx ReadTx) {
				if got := len(tx.TasksByService("svc0000000000000000000001")); got != tasks {
					b.Fatalf("%d tasks", got)
				}
			})
		}
	})
	b.Run("by-node", func(b *testing.B) {
		for n := 0; n < b.N; n++ {
			c.s.View(func(tx ReadTx) {
				total := 0
				for _, node := range tx.Nodes() {
					total += len(tx.TasksByNode(node.Id))
				}
				if total != tasks {
					b.Fatalf("%d tasks", total)
				}
			})
		}
	})
}
