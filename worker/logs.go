package worker

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/worker/exec"
)

const (
	// publishInterval gathers lines into one message.
	publishInterval = 100 * time.Millisecond
	// maxPublishBatch and maxPublishBytes bound one message.
	maxPublishBatch = 256
	maxPublishBytes = 256 << 10
	// subscriptionLines bounds the lines waiting to be published; a full
	// buffer holds up the reading of the containers' output, nothing else.
	subscriptionLines = 1024
	// taskPollInterval is how often a followed task not running yet is
	// looked at again.
	taskPollInterval = 250 * time.Millisecond
	// managersRefresh is how often the list of managers is read again.
	managersRefresh = 2 * time.Second
)

// TaskControllers finds the controller of a task this node runs;
// *TaskManager is one.
type TaskControllers interface {
	Controller(taskID string) (exec.Controller, *shoalpb.Task, bool)
}

// LogPublisher answers the managers' log subscriptions with the output of
// this node's tasks. It keeps a ListenSubscriptions stream open to every
// manager it knows, since a subscription can start on any of them, and
// publishes each subscription's lines to the manager that announced it.
type LogPublisher struct {
	Logger   *slog.Logger
	Dial     func(ctx context.Context, addr string) (grpc.ClientConnInterface, error)
	Managers func() []*shoalpb.Peer
	Tasks    TaskControllers
	NodeID   string

	mu   sync.Mutex
	subs map[string]*logSubscription
}

// logSubscription is one subscription this node is answering.
type logSubscription struct {
	id       string
	ctx      context.Context // ends when the manager closes s or publishing fails
	cancel   context.CancelFunc
	lines    chan *shoalpb.LogMessage
	finished chan struct{} // closed once every task's reader ended
	started  map[string]bool
	active   int
}

// Run keeps a listening loop per known manager until ctx ends.
func (p *LogPublisher) Run(ctx context.Context) {
	loops := map[string]context.CancelFunc{}
	var wg sync.WaitGroup
	defer func() {
		for _, cancel := range loops {
			cancel()
		}
		wg.Wait()
	}()
	tick := time.NewTicker(managersRefresh)
	defer tick.Stop()
	for {
		known := map[string]bool{}
		for _, m := range p.Managers() {
			known[m.Addr] = true
			if loops[m.Addr] != nil {
				continue
			}
			lctx, cancel := context.WithCancel(ctx)
			loops[m.Addr] = cancel
			wg.Add(1)
			go func(addr string) {
				defer wg.Done()
				p.listen(lctx, addr)
			}(m.Addr)
		}
		for addr, cancel := range loops {
			if !known[addr] {
				cancel()
				delete(loops, addr)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// listen keeps a ListenSubscriptions stream open to one manager,
// reconnecting with a backoff, until ctx ends.
func (p *LogPublisher) listen(ctx context.Context, addr string) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		started := time.Now()
		err := p.listenOnce(ctx, addr)
		if ctx.Err() != nil {
			return
		}
		p.Logger.Debug("log subscription stream ended", "manager", addr, "err", err)
		if time.Since(started) > 10*time.Second {
			backoff = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

func (p *LogPublisher) listenOnce(ctx context.Context, addr string) error {
	conn, err := p.Dial(ctx, addr)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := shoalpb.NewLogsClient(conn).ListenSubscriptions(sctx, &shoalpb.ListenSubscriptionsRequest{})
	if err != nil {
		return err
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			return err
		}
		p.handle(ctx, conn, m)
	}
}

// handle starts, extends or closes a subscription.
func (p *LogPublisher) handle(ctx context.Context, conn grpc.ClientConnInterface, m *shoalpb.SubscriptionMessage) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.subs == nil {
		p.subs = map[string]*logSubscription{}
	}
	s := p.subs[m.Id]
	if m.Close {
		if s != nil {
			s.cancel()
		}
		return
	}
	if s == nil {
		sctx, cancel := context.WithCancel(ctx)
		s = &logSubscription{
			id: m.Id, ctx: sctx, cancel: cancel, started: map[string]bool{},
			lines: make(chan *shoalpb.LogMessage, subscriptionLines), finished: make(chan struct{}),
		}
		p.subs[m.Id] = s
		go p.publish(conn, s)
		defer func() {
			if s.active == 0 {
				p.finishLocked(s) // nothing of this node to read
			}
		}()
	}
	for _, id := range m.TaskIds {
		if s.started[id] {
			continue
		}
		s.started[id] = true
		s.active++
		go func() {
			p.readTask(s, id, m.GetOptions())
			p.mu.Lock()
			defer p.mu.Unlock()
			if s.active--; s.active == 0 {
				p.finishLocked(s)
			}
		}()
	}
}

// finishLocked forgets s once its readers ended; its publisher sends what
// is left and closes the node's part. p.mu must be held.
func (p *LogPublisher) finishLocked(s *logSubscription) {
	if p.subs[s.id] == s {
		delete(p.subs, s.id)
	}
	close(s.finished)
}

// readTask sends one task's output to s. With follow, a task that does
// not run yet is waited for.
func (p *LogPublisher) readTask(s *logSubscription, taskID string, opts *shoalpb.LogSubscriptionOptions) {
	ctx := s.ctx
	for ctx.Err() == nil {
		ctlr, t, ok := p.Tasks.Controller(taskID)
		if ok && (!opts.GetFollow() || t.GetStatus().GetState() >= shoalpb.TaskState_TASK_STATE_RUNNING) {
			reader, ok := ctlr.(exec.ControllerLogs)
			if !ok {
				p.Logger.Debug("task runtime cannot read logs", "task", taskID)
				return
			}
			err := reader.Logs(ctx, logOptions(opts), func(l exec.LogLine) error {
				select {
				case s.lines <- toLogMessage(t, p.NodeID, l):
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
			if err != nil && ctx.Err() == nil && !errors.Is(err, exec.ErrTaskNotFound) {
				p.Logger.Debug("read task logs", "task", taskID, "err", err)
			}
			return
		}
		if !ok && !opts.GetFollow() {
			return // not a task of this node (any more)
		}
		select {
		case <-ctx.Done():
		case <-time.After(taskPollInterval):
		}
	}
}

func logOptions(o *shoalpb.LogSubscriptionOptions) exec.LogOptions {
	out := exec.LogOptions{Follow: o.GetFollow(), Tail: int(o.GetTail()), Timestamps: o.GetTimestamps()}
	if o == nil {
		out.Tail = -1
	}
	if o.GetSinceNs() > 0 {
		out.Since = time.Unix(0, o.GetSinceNs())
	}
	return out
}

func toLogMessage(t *shoalpb.Task, nodeID string, l exec.LogLine) *shoalpb.LogMessage {
	m := &shoalpb.LogMessage{TaskId: t.GetId(), ServiceId: t.GetServiceId(), NodeId: nodeID, Data: bytes.Clone(l.Data)}
	switch l.Stream {
	case exec.StreamStdout:
		m.Stream = shoalpb.LogStream_LOG_STREAM_STDOUT
	case exec.StreamStderr:
		m.Stream = shoalpb.LogStream_LOG_STREAM_STDERR
	}
	if !l.Time.IsZero() {
		m.TimestampNs = l.Time.UnixNano()
	}
	return m
}

// publish sends s's lines in batches over one PublishLogs stream, and
// closes the node's part once every reader ended. A failed stream ends s.
func (p *LogPublisher) publish(conn grpc.ClientConnInterface, s *logSubscription) {
	defer s.cancel()
	stream, err := shoalpb.NewLogsClient(conn).PublishLogs(s.ctx)
	if err == nil {
		err = stream.Send(&shoalpb.PublishLogsMessage{SubscriptionId: s.id})
	}
	if err != nil {
		p.Logger.Debug("open log publishing stream", "subscription", s.id, "err", err)
		return
	}
	var (
		batch []*shoalpb.LogMessage
		size  int
	)
	flush := func(closing bool) error {
		if len(batch) == 0 && !closing {
			return nil
		}
		err := stream.Send(&shoalpb.PublishLogsMessage{SubscriptionId: s.id, Messages: batch, Close: closing})
		batch, size = nil, 0
		return err
	}
	add := func(m *shoalpb.LogMessage) error {
		batch = append(batch, m)
		size += len(m.Data)
		if len(batch) >= maxPublishBatch || size >= maxPublishBytes {
			return flush(false)
		}
		return nil
	}
	tick := time.NewTicker(publishInterval)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case m := <-s.lines:
			err = add(m)
		case <-tick.C:
			err = flush(false)
		case <-s.finished:
			// Every reader ended: what they wrote is in s.lines.
			for err == nil {
				select {
				case m := <-s.lines:
					err = add(m)
					continue
				default:
				}
				break
			}
			if err == nil {
				err = flush(true)
			}
			if err == nil {
				_, err = stream.CloseAndRecv()
			}
			if err != nil && s.ctx.Err() == nil {
				p.Logger.Debug("publish logs", "subscription", s.id, "err", err)
			}
			return
		}
		if err != nil {
			if s.ctx.Err() == nil {
				p.Logger.Debug("publish logs", "subscription", s.id, "err", err)
			}
			return
		}
	}
}
