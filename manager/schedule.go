package manager

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/manager/scheduler"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Scheduling loop tuning: changes are gathered for schedulingDebounce
// (at most schedulingMaxDelay) so one pass places many tasks, and one Raft
// entry carries at most maxAssignmentsPerEntry decisions.
const (
	schedulingDebounce     = 20 * time.Millisecond
	schedulingMaxDelay     = 200 * time.Millisecond
	maxAssignmentsPerEntry = 1000
	schedulingRetry        = time.Second
)

// schedulingLoop runs on the leader: it places pending tasks with the
// pure scheduler and records decisions, and the reasons of tasks it cannot
// place, in the store.
type schedulingLoop struct {
	store    *store.Store
	proposer store.Proposer
	now      func() time.Time
	log      *slog.Logger

	// waiting is set while tasks are left unplaced (or decisions could
	// not be recorded): then any change that may free capacity calls for
	// another pass, not only new pending tasks.
	waiting bool
	// failed is set when a pass could not record its decisions.
	failed bool
}

func (l *schedulingLoop) run(ctx context.Context) {
	events, cancel := l.store.Watch()
	defer func() { cancel() }()
	l.pass(ctx)
	var (
		dirty    bool
		first    time.Time
		debounce = time.NewTimer(time.Hour)
	)
	debounce.Stop()
	defer debounce.Stop()
	for {
		if l.failed && !dirty {
			// Decisions were lost: try again soon even if nothing else
			// happens in the meantime.
			l.failed = false
			dirty, first = true, time.Now()
			debounce.Reset(schedulingRetry)
		}
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				// Fell behind the store: subscribe again and re-read.
				events, cancel = l.store.Watch()
				l.pass(ctx)
				continue
			}
			if !l.relevant(ev) {
				continue
			}
			if !dirty {
				dirty, first = true, time.Now()
			}
			wait := schedulingDebounce
			if rest := schedulingMaxDelay - time.Since(first); rest < wait {
				wait = max(rest, 0)
			}
			debounce.Reset(wait)
		case <-debounce.C:
			dirty = false
			l.pass(ctx)
		}
	}
}

// relevant reports whether a change may let a task be placed or change
// why it cannot be: a task became pending, a node changed, or, while tasks
// wait, a task stopped, went or moved. Progress reports of placed tasks
// (the bulk of all writes) are not, so a busy cluster does not re-read
// every task for each of them.
func (l *schedulingLoop) relevant(ev store.Event) bool {
	switch obj := ev.Object.(type) {
	case *shoalpb.Node:
		return true
	case *shoalpb.Task:
		old, _ := ev.Old.(*shoalpb.Task)
		if ev.Kind != store.EventRemove && pendingTask(obj) && (old == nil || !pendingTask(old)) {
			return true
		}
		if !l.waiting {
			return false
		}
		return ev.Kind != store.EventUpdate || old == nil ||
			old.DesiredState != obj.DesiredState || old.NodeId != obj.NodeId ||
			old.GetStatus().GetState() < shoalpb.TaskState_TASK_STATE_COMPLETE && obj.GetStatus().GetState() >= shoalpb.TaskState_TASK_STATE_COMPLETE
	}
	return ev.Kind == store.EventRestore
}

// pendingTask reports whether the scheduler should try to place t.
func pendingTask(t *shoalpb.Task) bool {
	return t.GetStatus().GetState() == shoalpb.TaskState_TASK_STATE_PENDING && t.DesiredState <= shoalpb.TaskState_TASK_STATE_RUNNING
}

// pass places what it can and records why the rest cannot be placed.
func (l *schedulingLoop) pass(ctx context.Context) {
	var (
		infos   []scheduler.NodeInfo
		free    []*shoalpb.Task
		preset  = map[string][]*shoalpb.Task{}
		byID    = map[string]*shoalpb.Task{}
		nodeIdx = map[string]int{}
	)
	l.store.View(func(tx store.ReadTx) {
		// One pass over all tasks sorts them: those waiting for placement,
		// and each node's others. Tasks still waiting (global tasks made
		// for a node) are offered below; counting them with their node's
		// as well would charge their reservations twice.
		placed := map[string][]*shoalpb.Task{}
		for _, t := range tx.Tasks() {
			if !pendingTask(t) {
				if t.NodeId != "" {
					placed[t.NodeId] = append(placed[t.NodeId], t)
				}
				continue
			}
			byID[t.Id] = t
			if t.NodeId == "" {
				free = append(free, t)
			} else {
				preset[t.NodeId] = append(preset[t.NodeId], t)
			}
		}
		for _, n := range tx.Nodes() {
			nodeIdx[n.Id] = len(infos)
			infos = append(infos, scheduler.NewNodeInfo(n, placed[n.Id]))
		}
	})
	l.waiting = false
	if len(byID) == 0 {
		return
	}
	res := scheduler.Schedule(infos, free)
	// Tasks made for one node (global services) are checked against that
	// node alone.
	for nodeID, tasks := range preset {
		i, ok := nodeIdx[nodeID]
		if !ok {
			for _, t := range tasks {
				res.Unplaced = append(res.Unplaced, scheduler.Unplaced{TaskID: t.Id, Reason: "node " + nodeID + " is not part of the swarm"})
			}
			continue
		}
		// The scheduler places tasks that have no node yet: offer copies
		// without it, with only their own node to choose from.
		loose := make([]*shoalpb.Task, len(tasks))
		for j, t := range tasks {
			c := proto.Clone(t).(*shoalpb.Task)
			c.NodeId = ""
			loose[j] = c
		}
		r := scheduler.Schedule([]scheduler.NodeInfo{infos[i]}, loose)
		res.Assigned = append(res.Assigned, r.Assigned...)
		res.Unplaced = append(res.Unplaced, r.Unplaced...)
	}

	// Decisions go out grouped by node: a pass spreads its tasks over the
	// nodes, and in the scheduler's order each entry of a large pass
	// would hold a few tasks of almost every node, so every node would
	// get (and record) its share of the pass in as many assignment
	// messages as there are entries. Grouped, a node's tasks of one pass
	// arrive together.
	slices.SortStableFunc(res.Assigned, func(a, b scheduler.Decision) int { return strings.Compare(a.NodeID, b.NodeID) })
	now := l.now().UnixNano()
	var actions []*shoalpb.StoreAction
	for _, d := range res.Assigned {
		actions = append(actions, &shoalpb.StoreAction{Target: &shoalpb.StoreAction_TaskAssignment{TaskAssignment: &shoalpb.TaskAssignment{
			TaskId: d.TaskID, NodeId: d.NodeID,
			Status: &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_ASSIGNED, Timestamp: now, Message: "scheduler assigned task to node"},
		}}})
	}
	for _, u := range res.Unplaced {
		t := byID[u.TaskID]
		if t == nil || t.GetStatus().GetErr() == u.Reason {
			continue // unchanged reasons are not written again
		}
		st := &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_PENDING, Timestamp: now, Message: "pending task scheduling", Err: u.Reason}
		actions = append(actions, &shoalpb.StoreAction{Target: &shoalpb.StoreAction_TaskStatusPatch{TaskStatusPatch: &shoalpb.TaskStatusPatch{TaskId: u.TaskID, Status: st}}})
	}
	l.waiting = len(res.Unplaced) > 0
	for len(actions) > 0 {
		n := min(len(actions), maxAssignmentsPerEntry)
		if _, err := l.proposer.Propose(ctx, &shoalpb.Command{Actions: actions[:n]}); err != nil {
			if ctx.Err() == nil {
				l.log.Warn("record scheduling decisions", "err", err)
			}
			l.waiting, l.failed = true, true
			return
		}
		actions = actions[n:]
	}
}
