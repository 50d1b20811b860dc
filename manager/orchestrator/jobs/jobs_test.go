package jobs_test

import (
	"testing"
	"time"

	"github.com/shoal-project/shoal/manager/orchestrator/jobs"
	"github.com/shoal-project/shoal/manager/orchestrator/orchestratortest"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

const (
	running  = shoalpb.TaskState_TASK_STATE_RUNNING
	ready    = shoalpb.TaskState_TASK_STATE_READY
	shutdown = shoalpb.TaskState_TASK_STATE_SHUTDOWN
	failed   = shoalpb.TaskState_TASK_STATE_FAILED
	complete = shoalpb.TaskState_TASK_STATE_COMPLETE
)

func newEnv(t *testing.T) *orchestratortest.Env {
	t.Helper()
	e := orchestratortest.NewEnv(t)
	o, err := jobs.New(e.Config())
	if err != nil {
		t.Fatal(err)
	}
	e.Go(o.Run)
	return e
}

func barrier(e *orchestratortest.Env) {
	e.Barrier(func(id string) *shoalpb.Service { return orchestratortest.ReplicatedJob(id, 1, 1) })
}

// runnableSlots returns the runnable tasks by slot.
func runnableSlots(tasks []*shoalpb.Task) map[uint64]*shoalpb.Task {
	out := map[uint64]*shoalpb.Task{}
	for _, t := range orchestratortest.Runnable(tasks) {
		out[t.Slot] = t
	}
	return out
}

func slotsAre(slots ...uint64) func([]*shoalpb.Task) bool {
	return func(tasks []*shoalpb.Task) bool {
		got := runnableSlots(tasks)
		if len(got) != len(slots) || len(orchestratortest.Runnable(tasks)) != len(slots) {
			return false
		}
		for _, s := range slots {
			if got[s] == nil {
				return false
			}
		}
		return true
	}
}

func TestReplicatedJobRunsToTotalCompletions(t *testing.T) {
	e := newEnv(t)
	job := orchestratortest.ReplicatedJob("batch", 2, 4)
	job.JobStatus = &shoalpb.JobStatus{JobIteration: 7}
	e.CreateService(job)
	tasks := e.WaitTasks("batch", "slots 1 and 2", slotsAre(1, 2))
	for _, task := range tasks {
		if task.JobIteration != 7 || task.DesiredState != running {
			t.Fatalf("task %v: want job iteration 7, desired RUNNING", task)
		}
	}
	s := runnableSlots(tasks)
	e.Report(map[string]shoalpb.TaskState{s[1].Id: complete})
	tasks = e.WaitTasks("batch", "slot 3 after slot 1 completed", slotsAre(2, 3))
	s = runnableSlots(tasks)
	e.Report(map[string]shoalpb.TaskState{s[2].Id: complete, s[3].Id: complete})
	tasks = e.WaitTasks("batch", "slot 4 after slots 2 and 3 completed", slotsAre(4))
	e.Report(map[string]shoalpb.TaskState{runnableSlots(tasks)[4].Id: complete})
	e.WaitTasks("batch", "no runnable task once 4 completed", slotsAre())
	barrier(e)
	tasks = e.Tasks("batch")
	if len(tasks) != 4 {
		t.Fatalf("%d tasks, want exactly the 4 that completed:\n%s", len(tasks), orchestratortest.Dump(tasks))
	}
	for _, task := range tasks {
		if task.Status.State != complete || task.DesiredState != shutdown {
			t.Fatalf("task %s: observed %v desired %v, want COMPLETE and SHUTDOWN", task.Id, task.Status.State, task.DesiredState)
		}
	}
}

func TestFailingJobTaskIsRetried(t *testing.T) {
	e := newEnv(t)
	e.CreateService(orchestratortest.ReplicatedJob("batch", 1, 1))
	first := e.WaitTasks("batch", "slot 1", slotsAre(1))[0]
	e.Report(map[string]shoalpb.TaskState{first.Id: failed})
	tasks := e.WaitTasks("batch", "a retry in slot 1", func(tasks []*shoalpb.Task) bool {
		r := runnableSlots(tasks)[1]
		return r != nil && r.Id != first.Id
	})
	if r := runnableSlots(tasks)[1]; r.DesiredState != ready {
		t.Fatalf("retry desired %v, want READY for the restart delay", r.DesiredState)
	}
	e.Clock.Advance(5 * time.Second)
	tasks = e.WaitTasks("batch", "the retry raised to RUNNING", func(tasks []*shoalpb.Task) bool {
		r := runnableSlots(tasks)[1]
		return r != nil && r.DesiredState == running
	})
	e.Report(map[string]shoalpb.TaskState{runnableSlots(tasks)[1].Id: complete})
	e.WaitTasks("batch", "the job done", slotsAre())
	barrier(e)
	if n := len(e.Tasks("batch")); n != 2 {
		t.Fatalf("%d tasks, want the failed one and its completed retry", n)
	}
}

func TestJobSlotAbandonedWhenPolicyGivesUp(t *testing.T) {
	e := newEnv(t)
	job := orchestratortest.ReplicatedJob("batch", 2, 2)
	job.Spec.Task.Restart = &shoalpb.RestartPolicy{Condition: shoalpb.RestartPolicy_CONDITION_NONE}
	e.CreateService(job)
	s := runnableSlots(e.WaitTasks("batch", "slots 1 and 2", slotsAre(1, 2)))
	e.Report(map[string]shoalpb.TaskState{s[1].Id: failed})
	e.WaitTasks("batch", "slot 1 given up", slotsAre(2))
	barrier(e)
	if tasks := e.Tasks("batch"); len(tasks) != 2 {
		t.Fatalf("a failed task was retried under condition none:\n%s", orchestratortest.Dump(tasks))
	}
}

func TestNewIterationStartsAfresh(t *testing.T) {
	e := newEnv(t)
	e.CreateService(orchestratortest.ReplicatedJob("batch", 2, 2))
	s := runnableSlots(e.WaitTasks("batch", "slots 1 and 2", slotsAre(1, 2)))
	e.Report(map[string]shoalpb.TaskState{s[1].Id: complete})
	e.WaitTasks("batch", "slot 2 left", slotsAre(2))
	e.UpdateService("batch", func(svc *shoalpb.Service) { svc.JobStatus = &shoalpb.JobStatus{JobIteration: 1} })
	tasks := e.WaitTasks("batch", "both slots run again in iteration 1", func(tasks []*shoalpb.Task) bool {
		r := runnableSlots(tasks)
		return slotsAre(1, 2)(tasks) && r[1].JobIteration == 1 && r[2].JobIteration == 1
	})
	for _, task := range tasks {
		if task.Id == s[2].Id && task.DesiredState != shutdown {
			t.Fatalf("the running task of iteration 0 was not shut down")
		}
	}
}

func TestGlobalJob(t *testing.T) {
	e := newEnv(t)
	e.AddNodes(orchestratortest.Node("n1"), orchestratortest.Node("n2"))
	e.CreateService(orchestratortest.GlobalJob("sweep"))
	onNodes := func(nodes ...string) func([]*shoalpb.Task) bool {
		return func(tasks []*shoalpb.Task) bool {
			r := orchestratortest.Runnable(tasks)
			if len(r) != len(nodes) {
				return false
			}
			want := map[string]bool{}
			for _, n := range nodes {
				want[n] = true
			}
			for _, task := range r {
				if !want[task.NodeId] {
					return false
				}
			}
			return true
		}
	}
	tasks := e.WaitTasks("sweep", "a task on each node", onNodes("n1", "n2"))
	byNode := map[string]*shoalpb.Task{}
	for _, task := range tasks {
		byNode[task.NodeId] = task
	}
	e.Report(map[string]shoalpb.TaskState{byNode["n1"].Id: complete, byNode["n2"].Id: failed})
	e.WaitTasks("sweep", "n2 retried, n1 done", func(tasks []*shoalpb.Task) bool {
		return onNodes("n2")(tasks) && len(tasks) == 3
	})
	e.AddNodes(orchestratortest.Node("n3"))
	e.WaitTasks("sweep", "the new node gets a task", onNodes("n2", "n3"))
	e.Barrier(orchestratortest.GlobalJob)
	if n := len(e.Tasks("sweep")); n != 4 {
		t.Fatalf("%d tasks, want 4 (n1 completed, n2 failed and retried, n3)", n)
	}
}
