package dispatcher

import (
	"context"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/manager/caller"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// maxStatusBatch bounds the status patches in one Raft entry.
const maxStatusBatch = 1000

// statusBatcher gathers task status reports from every node and writes
// them in few Raft entries: while one entry is being committed, the next
// reports queue up and go together in the following one.
type statusBatcher struct {
	mu      sync.Mutex
	running bool
	pending []*shoalpb.StoreAction
	waiters []chan error
	kick    chan struct{}
}

// submit queues actions and waits until they are committed.
func (b *statusBatcher) submit(ctx context.Context, actions []*shoalpb.StoreAction) error {
	done := make(chan error, 1)
	b.mu.Lock()
	if !b.running {
		b.mu.Unlock()
		return status.Error(codes.Unavailable, "this manager is not leading; retry")
	}
	b.pending = append(b.pending, actions...)
	b.waiters = append(b.waiters, done)
	kick := b.kick
	b.mu.Unlock()
	select {
	case kick <- struct{}{}:
	default:
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

// run writes queued reports until ctx ends.
func (b *statusBatcher) run(ctx context.Context, p store.Proposer) {
	b.mu.Lock()
	b.running = true
	b.kick = make(chan struct{}, 1)
	kick := b.kick
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.running = false
		waiters := b.waiters
		b.pending, b.waiters = nil, nil
		b.mu.Unlock()
		for _, w := range waiters {
			w <- status.Error(codes.Unavailable, "this manager stopped leading; retry")
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
		}
		b.mu.Lock()
		actions, waiters := b.pending, b.waiters
		b.pending, b.waiters = nil, nil
		b.mu.Unlock()
		var err error
		for len(actions) > 0 && err == nil {
			n := min(len(actions), maxStatusBatch)
			_, err = p.Propose(ctx, &shoalpb.Command{Actions: actions[:n]})
			actions = actions[n:]
		}
		if err != nil {
			err = status.Errorf(codes.Unavailable, "record task status: %v", err)
		}
		for _, w := range waiters {
			w <- err
		}
	}
}

// UpdateTaskStatus records the calling node's reports about its tasks.
// Reports about tasks the node does not own are refused; reports about
// tasks that no longer exist are dropped.
func (d *Dispatcher) UpdateTaskStatus(ctx context.Context, req *shoalpb.UpdateTaskStatusRequest) (*shoalpb.UpdateTaskStatusResponse, error) {
	who := caller.From(ctx)
	if who.Role == caller.Anonymous {
		return nil, status.Error(codes.Unauthenticated, "task status reports need a node certificate")
	}
	actions := make([]*shoalpb.StoreAction, 0, len(req.Updates))
	for _, u := range req.Updates {
		if u.GetStatus() == nil {
			return nil, status.Errorf(codes.InvalidArgument, "report for task %s has no status", u.GetTaskId())
		}
	}
	var bad string
	d.Store.View(func(tx store.ReadTx) {
		for _, u := range req.Updates {
			t := tx.Task(u.TaskId)
			if t == nil {
				continue
			}
			if t.NodeId != who.NodeID {
				bad = u.TaskId
				return
			}
			actions = append(actions, &shoalpb.StoreAction{Target: &shoalpb.StoreAction_TaskStatusPatch{TaskStatusPatch: &shoalpb.TaskStatusPatch{TaskId: u.TaskId, Status: u.Status}}})
		}
	})
	if bad != "" {
		return nil, status.Errorf(codes.PermissionDenied, "node %s may not report task %s", who.NodeID, bad)
	}
	if len(actions) > 0 {
		if err := d.batcher.submit(ctx, actions); err != nil {
			return nil, err
		}
	}
	return &shoalpb.UpdateTaskStatusResponse{}, nil
}
