package worker

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// AssignmentsConfig configures the assignment session.
type AssignmentsConfig struct {
	Logger   *slog.Logger
	Dial     func(ctx context.Context, addr string) (grpc.ClientConnInterface, error)
	Managers func() []*shoalpb.Peer
	// OnComplete receives the whole set of tasks assigned to this node;
	// it replaces whatever was known before.
	OnComplete func(tasks []*shoalpb.Task)
	// OnChanges receives later changes.
	OnChanges func(updated []*shoalpb.Task, removed []string)
}

// RunAssignments keeps a stream of assignments open to some manager,
// moving to the next one whenever a stream fails, until ctx ends. Every new
// stream starts with the complete set.
func RunAssignments(ctx context.Context, cfg AssignmentsConfig) {
	backoff := 100 * time.Millisecond
	next := 0
	for ctx.Err() == nil {
		managers := cfg.Managers()
		if len(managers) > 0 {
			m := managers[next%len(managers)]
			next++
			started := time.Now()
			err := streamAssignments(ctx, cfg, m.Addr)
			if ctx.Err() != nil {
				return
			}
			cfg.Logger.Debug("assignment stream ended", "manager", m.Addr, "err", err)
			if time.Since(started) > 10*time.Second {
				backoff = 100 * time.Millisecond // it had been healthy
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

func streamAssignments(ctx context.Context, cfg AssignmentsConfig, addr string) error {
	conn, err := cfg.Dial(ctx, addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := shoalpb.NewDispatcherClient(conn).Assignments(ctx, &shoalpb.AssignmentsRequest{})
	if err != nil {
		return err
	}
	var complete []*shoalpb.Task
	inComplete := false
	for {
		msg, err := stream.Recv()
		if err != nil {
			return err
		}
		switch msg.Type {
		case shoalpb.AssignmentsMessage_TYPE_COMPLETE:
			if !inComplete {
				complete, inComplete = nil, true
			}
			complete = append(complete, msg.UpdateTasks...)
			if msg.Last {
				inComplete = false
				cfg.OnComplete(complete)
				complete = nil
			}
		case shoalpb.AssignmentsMessage_TYPE_INCREMENTAL:
			cfg.OnChanges(msg.UpdateTasks, msg.RemoveTasks)
		}
	}
}
