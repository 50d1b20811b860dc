package dispatcher

import (
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/internal/pace"
	"github.com/shoal-project/shoal/manager/caller"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Assignment stream tuning: a stream sends at most one batch of changes
// per assignmentFlush, of at most maxAssignmentBatch tasks per message, so
// no message grows with the size of the cluster. A change arriving after a
// quiet spell waits only assignmentGather, so that the changes committed
// together (a scheduling pass, an update's batch) travel together, and
// the node does not wait a whole flush period for a lone change.
const (
	maxAssignmentBatch = 500
	assignmentFlush    = 50 * time.Millisecond
	assignmentGather   = 5 * time.Millisecond
)

// assigned reports whether a task belongs on its node's list: the
// scheduler has placed it there. It stays on the list until it is deleted
// from the store, so the node can stop and clean up what it runs.
func assigned(t *shoalpb.Task, nodeID string) bool {
	return t.NodeId == nodeID && t.GetStatus().GetState() >= shoalpb.TaskState_TASK_STATE_ASSIGNED
}

// sameAssignment reports whether two versions of a task ask the same of
// the node running it: they differ at most in their observed status and
// meta, which the node either reported itself or does not act on.
func sameAssignment(a, b *shoalpb.Task) bool {
	return a.DesiredState == b.DesiredState &&
		a.NodeId == b.NodeId &&
		a.SpecVersion == b.SpecVersion &&
		a.JobIteration == b.JobIteration &&
		(a.Spec == b.Spec || proto.Equal(a.Spec, b.Spec)) &&
		(a.Endpoint == b.Endpoint || proto.Equal(a.Endpoint, b.Endpoint)) &&
		slices.EqualFunc(a.Networks, b.Networks, func(x, y *shoalpb.NetworkAttachment) bool { return x == y || proto.Equal(x, y) })
}

// Assignments streams the calling node's tasks: the complete set first,
// then changes. A watcher that falls behind the store ends the stream; the
// node reconnects and receives the complete set again.
func (d *Dispatcher) Assignments(_ *shoalpb.AssignmentsRequest, stream shoalpb.Dispatcher_AssignmentsServer) error {
	who := caller.From(stream.Context())
	if who.Role == caller.Anonymous {
		return status.Error(codes.Unauthenticated, "assignments need a node certificate")
	}
	if err := d.ready(); err != nil {
		return err
	}
	var (
		known bool
		tasks []*shoalpb.Task
	)
	// Only changes of tasks that are or were on this node matter: the
	// store routes them to this node's watch alone.
	watch := d.Store.ViewAndWatchNodeTasks(who.NodeID, func(tx store.ReadTx) {
		known = tx.Node(who.NodeID) != nil
		for _, t := range tx.TasksByNode(who.NodeID) {
			if assigned(t, who.NodeID) {
				tasks = append(tasks, t)
			}
		}
	})
	defer watch.Cancel()
	if !known {
		return status.Errorf(codes.NotFound, "node %s is not part of the swarm; it may have been removed", who.NodeID)
	}
	sent := make(map[string]bool, len(tasks))
	for _, t := range tasks {
		sent[t.Id] = true
	}
	if err := sendChunks(stream, shoalpb.AssignmentsMessage_TYPE_COMPLETE, tasks, nil); err != nil {
		return err
	}

	updates := map[string]*shoalpb.Task{}
	removals := map[string]bool{}
	// Changes are sent pace.Wait after the first one since the last
	// send; an idle stream has no timer (a node's stream must cost nothing
	// while its tasks do not change).
	var lastSend time.Time
	var flushC <-chan time.Time
	var flushT *time.Timer
	defer func() {
		if flushT != nil {
			flushT.Stop()
		}
	}()
	for {
		if flushC == nil && (len(updates) > 0 || len(removals) > 0) {
			flushT = time.NewTimer(pace.Wait(assignmentFlush, assignmentGather, lastSend, time.Now()))
			flushC = flushT.C
		}
		select {
		case <-stream.Context().Done():
			return nil
		case <-watch.Ready():
			events, ok := watch.Take()
			if !ok {
				return status.Error(codes.Unavailable, "the assignment stream fell behind the store; reconnect")
			}
			for _, ev := range events {
				if ev.Kind == store.EventRestore {
					return status.Error(codes.Unavailable, "the store was restored from a snapshot; reconnect")
				}
				t, ok := ev.Object.(*shoalpb.Task)
				if !ok {
					continue
				}
				switch {
				case ev.Kind != store.EventRemove && assigned(t, who.NodeID):
					if old, _ := ev.Old.(*shoalpb.Task); sent[t.Id] && old != nil && assigned(old, who.NodeID) && sameAssignment(old, t) {
						// Only what the node itself reported (or the meta)
						// changed: echoing it back would make every status
						// report cost the node a round of work.
						continue
					}
					updates[t.Id] = t
					delete(removals, t.Id)
				case sent[t.Id]:
					removals[t.Id] = true
					delete(updates, t.Id)
				}
			}
		case <-flushC:
			flushC, flushT = nil, nil
			up := make([]*shoalpb.Task, 0, len(updates))
			for _, t := range updates {
				up = append(up, t)
				sent[t.Id] = true
			}
			rm := make([]string, 0, len(removals))
			for id := range removals {
				rm = append(rm, id)
				delete(sent, id)
			}
			clear(updates)
			clear(removals)
			if err := sendChunks(stream, shoalpb.AssignmentsMessage_TYPE_INCREMENTAL, up, rm); err != nil {
				return err
			}
			lastSend = time.Now()
		}
	}
}

// sendChunks sends tasks and removals in messages of bounded size; the
// last message of the sequence is marked. At least one message is sent.
func sendChunks(stream shoalpb.Dispatcher_AssignmentsServer, typ shoalpb.AssignmentsMessage_Type, tasks []*shoalpb.Task, removed []string) error {
	for {
		msg := &shoalpb.AssignmentsMessage{Type: typ}
		n := min(len(tasks), maxAssignmentBatch)
		msg.UpdateTasks, tasks = tasks[:n], tasks[n:]
		r := min(len(removed), maxAssignmentBatch-n)
		msg.RemoveTasks, removed = removed[:r], removed[r:]
		msg.Last = len(tasks) == 0 && len(removed) == 0
		if err := stream.Send(msg); err != nil {
			return err
		}
		if msg.Last {
			return nil
		}
	}
}
