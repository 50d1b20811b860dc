package logbroker

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/manager/caller"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// SubscribeLogs resolves the selector in this manager's store, announces
// the subscription to the nodes running the tasks selected and relays
// their output until they are done (or, with follow, until the client
// leaves).
func (b *Broker) SubscribeLogs(req *shoalpb.SubscribeLogsRequest, stream grpc.ServerStreamingServer[shoalpb.SubscribeLogsMessage]) error {
	opts := req.GetOptions()
	if opts == nil {
		opts = &shoalpb.LogSubscriptionOptions{Tail: -1}
	}
	if opts.Tail < -1 {
		return status.Errorf(codes.InvalidArgument, "log tail %d is neither -1 (all) nor a line count", opts.Tail)
	}
	sel := req.GetSelector()
	if len(sel.GetServiceIds()) == 0 && len(sel.GetTaskIds()) == 0 {
		return status.Error(codes.InvalidArgument, "the log selector names no service and no task")
	}
	s := &subscription{
		id: newID(), opts: opts, services: map[string]bool{},
		out: make(chan []*shoalpb.LogMessage, subscriberBuffer), changed: make(chan struct{}, 1),
		nodes: map[string]*nodePart{},
	}
	var resolveErr error
	resolve := func(tx store.ReadTx) { resolveErr = resolveSelector(tx, sel, s) }
	var (
		events  <-chan store.Event
		unwatch = func() {}
	)
	if opts.Follow {
		events, unwatch = b.Store.ViewAndWatch(resolve)
	} else {
		b.Store.View(resolve)
	}
	defer func() { unwatch() }()
	if resolveErr != nil {
		return resolveErr
	}
	b.addSubscription(s)
	defer b.removeSubscription(s)
	s.poke() // nothing may be selected: look once whether all is done

	ctx := stream.Context()
	tick := time.NewTicker(min(b.nodeTimeout()/4, time.Second))
	defer tick.Stop()
	send := func(batch []*shoalpb.LogMessage) error {
		b.mu.Lock()
		notes := s.takeNotesLocked()
		b.mu.Unlock()
		if len(batch) == 0 && len(notes) == 0 {
			return nil
		}
		return stream.Send(&shoalpb.SubscribeLogsMessage{Messages: batch, Warnings: notes})
	}
	for {
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case batch := <-s.out:
			if err := send(batch); err != nil {
				return err
			}
		case <-tick.C:
			b.expire(s)
		case ev, ok := <-events:
			if !ok {
				// Fell behind the store: watch again and look for any task
				// missed meanwhile.
				events, unwatch = b.Store.ViewAndWatch(func(tx store.ReadTx) {
					for id := range s.services {
						for _, t := range tx.TasksByService(id) {
							b.followTask(s, t)
						}
					}
				})
				continue
			}
			b.handleEvent(s, ev)
		case <-s.changed:
			if err := send(nil); err != nil {
				return err
			}
			b.mu.Lock()
			finished := !opts.Follow && s.allDoneLocked()
			b.mu.Unlock()
			if !finished {
				continue
			}
			// Every part is in: what was published is queued already.
			for {
				select {
				case batch := <-s.out:
					if err := send(batch); err != nil {
						return err
					}
					continue
				default:
				}
				return send(nil)
			}
		}
	}
}

// resolveSelector fills s with the tasks selected, grouped by node.
func resolveSelector(tx store.ReadTx, sel *shoalpb.LogSelector, s *subscription) error {
	add := func(t *shoalpb.Task) {
		if t.GetNodeId() == "" {
			return // never scheduled: no output anywhere
		}
		p := s.nodes[t.NodeId]
		if p == nil {
			p = &nodePart{tasks: map[string]bool{}}
			s.nodes[t.NodeId] = p
		}
		p.tasks[t.Id] = true
	}
	for _, ref := range sel.GetServiceIds() {
		svc, err := tx.FindService(ref)
		if err != nil {
			return storeError("service", ref, err)
		}
		s.services[svc.Id] = true
		for _, t := range tx.TasksByService(svc.Id) {
			add(t)
		}
	}
	for _, ref := range sel.GetTaskIds() {
		t, err := findTask(tx, ref)
		if err != nil {
			return storeError("task", ref, err)
		}
		add(t)
	}
	return nil
}

func findTask(tx store.ReadTx, ref string) (*shoalpb.Task, error) {
	if ref == "" {
		return nil, fmt.Errorf("task reference is empty: %w", store.ErrNotExist)
	}
	if t := tx.Task(ref); t != nil {
		return t, nil
	}
	var found []*shoalpb.Task
	for _, t := range tx.Tasks() {
		if strings.HasPrefix(t.Id, ref) {
			found = append(found, t)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return nil, fmt.Errorf("task %s not found: %w", ref, store.ErrNotExist)
	}
	return nil, fmt.Errorf("task %s: %d task IDs start with it: %w", ref, len(found), store.ErrAmbiguous)
}

func storeError(kind, ref string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotExist):
		return status.Errorf(codes.NotFound, "no such %s: %s", kind, ref)
	case errors.Is(err, store.ErrAmbiguous):
		return status.Errorf(codes.InvalidArgument, "%s %q is ambiguous: %v", kind, ref, err)
	}
	return status.Errorf(codes.Internal, "look up %s %q: %v", kind, ref, err)
}

// handleEvent picks the new tasks of followed services out of a store
// change.
func (b *Broker) handleEvent(s *subscription, ev store.Event) {
	switch ev.Kind {
	case store.EventCreate, store.EventUpdate:
		if t, ok := ev.Object.(*shoalpb.Task); ok {
			b.followTask(s, t)
		}
	case store.EventRestore:
		b.Store.View(func(tx store.ReadTx) {
			for id := range s.services {
				for _, t := range tx.TasksByService(id) {
					b.followTask(s, t)
				}
			}
		})
	}
}

// followTask adds t to s when it is a live, placed task of a followed
// service.
func (b *Broker) followTask(s *subscription, t *shoalpb.Task) {
	if !s.services[t.GetServiceId()] || t.GetNodeId() == "" || t.GetDesiredState() > shoalpb.TaskState_TASK_STATE_RUNNING {
		return
	}
	b.addTask(s, t)
}

// ListenSubscriptions sends the calling node the subscriptions concerning
// it until it leaves.
func (b *Broker) ListenSubscriptions(_ *shoalpb.ListenSubscriptionsRequest, stream grpc.ServerStreamingServer[shoalpb.SubscriptionMessage]) error {
	ctx := stream.Context()
	nodeID := caller.From(ctx).NodeID
	if nodeID == "" {
		return status.Error(codes.Unauthenticated, "listening for log subscriptions needs a node certificate")
	}
	l := b.addListener(nodeID)
	defer b.removeListener(l)
	for {
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-l.cut:
			return status.Errorf(codes.ResourceExhausted, "node %s fell behind its log subscriptions; listen again", nodeID)
		case m := <-l.ch:
			if err := stream.Send(m); err != nil {
				return err
			}
		}
	}
}

// PublishLogs receives one node's output for a subscription. It never
// waits for the subscriber: what does not fit its buffer is dropped and
// counted.
func (b *Broker) PublishLogs(stream grpc.ClientStreamingServer[shoalpb.PublishLogsMessage, shoalpb.PublishLogsResponse]) error {
	nodeID := caller.From(stream.Context()).NodeID
	if nodeID == "" {
		return status.Error(codes.Unauthenticated, "publishing logs needs a node certificate")
	}
	var s *subscription
	for {
		m, err := stream.Recv()
		if err != nil {
			if s != nil {
				b.closePart(s, nodeID, err)
			}
			if errors.Is(err, io.EOF) {
				return stream.SendAndClose(&shoalpb.PublishLogsResponse{})
			}
			return err
		}
		if s == nil {
			if s, err = b.publisherSub(m.SubscriptionId, nodeID); err != nil {
				return err
			}
		} else if m.SubscriptionId != "" && m.SubscriptionId != s.id {
			return status.Errorf(codes.InvalidArgument, "publish stream of subscription %s got a message for subscription %s", s.id, m.SubscriptionId)
		}
		if err := b.publish(s, nodeID, m.Messages); err != nil {
			return err
		}
		if m.Close {
			b.closePart(s, nodeID, nil)
			return stream.SendAndClose(&shoalpb.PublishLogsResponse{})
		}
	}
}

// publisherSub finds the subscription a node publishes for, checking that
// the node was asked.
func (b *Broker) publisherSub(id, nodeID string) (*subscription, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.subs[id]
	if s == nil {
		return nil, status.Errorf(codes.NotFound, "log subscription %q is not open on this manager", id)
	}
	if s.nodes[nodeID] == nil {
		return nil, status.Errorf(codes.PermissionDenied, "log subscription %s did not ask node %s for logs", id, nodeID)
	}
	return s, nil
}

// publish queues msgs for the subscriber, keeping only lines of the tasks
// the node was asked about.
func (b *Broker) publish(s *subscription, nodeID string, msgs []*shoalpb.LogMessage) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.ended {
		return status.Errorf(codes.Canceled, "log subscription %s ended", s.id)
	}
	p := s.nodes[nodeID]
	p.deadline = b.now().Add(b.nodeTimeout())
	batch := make([]*shoalpb.LogMessage, 0, len(msgs))
	for _, m := range msgs {
		if !p.tasks[m.TaskId] {
			continue
		}
		m.NodeId = nodeID
		batch = append(batch, m)
	}
	if len(batch) == 0 {
		return nil
	}
	select {
	case s.out <- batch:
	default:
		s.dropped += len(batch)
		s.poke()
	}
	return nil
}

// closePart records that a node finished its part, or broke off (err not
// nil and not io.EOF).
func (b *Broker) closePart(s *subscription, nodeID string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := s.nodes[nodeID]
	if p.done || s.ended {
		return
	}
	p.done = true
	if err != nil && !errors.Is(err, io.EOF) {
		s.warnings = append(s.warnings, fmt.Sprintf("node %s broke off its log stream: %v", b.nodeName(nodeID), status.Convert(err).Message()))
	}
	s.poke()
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
