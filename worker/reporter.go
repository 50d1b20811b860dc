package worker

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/internal/pace"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// A node sends its status reports at most once per reportInterval. A
// change after a quiet spell waits only reportGather, so that changes
// made together (tasks started at once) share a call while a lone change
// — the one a rolling update or a waiting client waits for — is not held
// back for a whole interval.
const (
	reportInterval = 100 * time.Millisecond
	reportGather   = 5 * time.Millisecond
)

// maxReportBatch bounds the reports in one call.
const maxReportBatch = 500

// Reporter sends task status changes to the managers in batches. Only the
// latest status of each task is kept while a batch waits, and a batch that
// fails is kept and sent again, so no observed state is lost while the
// managers are unreachable.
type Reporter struct {
	Logger   *slog.Logger
	Dial     func(ctx context.Context, addr string) (grpc.ClientConnInterface, error)
	Managers func() []*shoalpb.Peer

	mu      sync.Mutex
	pending map[string]*shoalpb.TaskStatus
	order   []string
	kick    chan struct{}
	once    sync.Once
}

func (r *Reporter) init() {
	r.once.Do(func() {
		r.pending = map[string]*shoalpb.TaskStatus{}
		r.kick = make(chan struct{}, 1)
	})
}

// Report queues the status of a task.
func (r *Reporter) Report(taskID string, st *shoalpb.TaskStatus) {
	r.init()
	r.mu.Lock()
	if _, ok := r.pending[taskID]; !ok {
		r.order = append(r.order, taskID)
	}
	r.pending[taskID] = st
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Pending is the number of tasks whose status waits to be sent.
func (r *Reporter) Pending() int {
	r.init()
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

// Run sends queued reports until ctx ends.
func (r *Reporter) Run(ctx context.Context) {
	r.init()
	backoff := reportInterval
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		}
		// Let more changes join the batch.
		select {
		case <-ctx.Done():
			return
		case <-time.After(pace.Wait(reportInterval, reportGather, last, time.Now())):
		}
		for r.Pending() > 0 && ctx.Err() == nil {
			if err := r.flush(ctx); err != nil {
				r.Logger.Debug("task status report failed; retrying", "err", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(backoff*2, 2*time.Second)
				continue
			}
			backoff = reportInterval
		}
		last = time.Now()
	}
}

// flush sends one batch; on success the sent statuses leave the queue
// unless a newer one arrived meanwhile.
func (r *Reporter) flush(ctx context.Context) error {
	r.mu.Lock()
	n := min(len(r.order), maxReportBatch)
	batch := make([]*shoalpb.TaskStatusUpdate, 0, n)
	for _, id := range r.order[:n] {
		batch = append(batch, &shoalpb.TaskStatusUpdate{TaskId: id, Status: r.pending[id]})
	}
	r.mu.Unlock()

	var lastErr error = status.Error(codes.Unavailable, "no manager is known")
	for _, m := range r.Managers() {
		conn, err := r.Dial(ctx, m.Addr)
		if err != nil {
			lastErr = err
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = shoalpb.NewDispatcherClient(conn).UpdateTaskStatus(cctx, &shoalpb.UpdateTaskStatusRequest{Updates: batch})
		cancel()
		if err != nil {
			lastErr = err
			continue
		}
		r.mu.Lock()
		for _, u := range batch {
			if r.pending[u.TaskId] == u.Status {
				delete(r.pending, u.TaskId)
			}
		}
		kept := r.order[:0]
		for _, id := range r.order {
			if _, ok := r.pending[id]; ok {
				kept = append(kept, id)
			}
		}
		r.order = kept
		r.mu.Unlock()
		return nil
	}
	return lastErr
}
