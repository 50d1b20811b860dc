package raftstore

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Apply proposes data as a command and waits until it is committed and
// applied by this node's state machine. It must be called on the leader.
//
// On success it returns the entry's log index. Otherwise:
//   - ErrNotLeader (a *NotLeaderError, possibly also ErrNoLeader): nothing
//     was proposed; retry on the leader.
//   - a *CommandError: the entry was committed at the returned index but the
//     state machine rejected it and changed nothing; errors.Is/As reach the
//     state machine's own error.
//   - ErrLeadershipLost, or the context's error if ctx ended first: the
//     outcome is unknown; the entry may still commit.
//   - ErrShutdown: the node is shut down (outcome unknown if the entry was
//     already appended).
//
// ctx bounds the whole call: its deadline is also handed to raft as the
// enqueue timeout, and Apply returns promptly when ctx ends.
func (n *Node) Apply(ctx context.Context, data []byte) (uint64, error) {
	timeout, err := n.precheck(ctx, "apply", true)
	if err != nil {
		return 0, err
	}
	f, err := n.await(ctx, "apply", func() raft.Future { return n.raft.Apply(data, timeout) })
	if err != nil {
		return 0, err
	}
	af := f.(raft.ApplyFuture)
	index := af.Index()
	if resp := af.Response(); resp != nil {
		if cmdErr, ok := resp.(*CommandError); ok {
			return index, cmdErr
		}
		return index, fmt.Errorf("raftstore: apply: unexpected state machine response %T", resp)
	}
	return index, nil
}

// Barrier waits until every entry appended before it has been applied to
// this node's state machine. It must be called on the leader.
func (n *Node) Barrier(ctx context.Context) error {
	timeout, err := n.precheck(ctx, "barrier", true)
	if err != nil {
		return err
	}
	_, err = n.await(ctx, "barrier", func() raft.Future { return n.raft.Barrier(timeout) })
	return err
}

// VerifyLeader confirms with a quorum that this node is still the leader.
// A linearizable read calls VerifyLeader and, if it succeeds, reads the
// local state machine (after the node's first Barrier of its term, which
// WatchLeader's IsLeader already guarantees).
func (n *Node) VerifyLeader(ctx context.Context) error {
	if _, err := n.precheck(ctx, "verify leader", true); err != nil {
		return err
	}
	_, err := n.await(ctx, "verify leader", n.raft.VerifyLeader)
	return err
}

// precheck fails fast on a shut-down node, an ended context, or (when
// needLeader is set) a non-leader. It returns the raft enqueue timeout
// derived from ctx's deadline (0, meaning none, without a deadline).
func (n *Node) precheck(ctx context.Context, op string, needLeader bool) (time.Duration, error) {
	if n.ctx.Err() != nil {
		return 0, fmt.Errorf("raftstore: %s: %w", op, ErrShutdown)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("raftstore: %s: %w", op, err)
	}
	if needLeader {
		switch n.raft.State() {
		case raft.Leader:
		case raft.Shutdown:
			return 0, fmt.Errorf("raftstore: %s: %w", op, ErrShutdown)
		default:
			return 0, n.notLeaderError()
		}
	}
	var timeout time.Duration
	if deadline, ok := ctx.Deadline(); ok {
		timeout = time.Until(deadline)
		if timeout <= 0 {
			return 0, fmt.Errorf("raftstore: %s: %w", op, context.DeadlineExceeded)
		}
	}
	return timeout, nil
}

type futureResult struct {
	f   raft.Future
	err error
}

// await starts a raft operation and waits for its future without letting
// raft block the caller past ctx or past Shutdown. start runs on a helper
// goroutine, because raft may block while enqueueing; that goroutine ends
// once raft answers, which it always does (at the latest with
// ErrRaftShutdown).
func (n *Node) await(ctx context.Context, op string, start func() raft.Future) (raft.Future, error) {
	done := make(chan futureResult, 1)
	go func() {
		// Skip starting the operation if the caller already gave up while
		// this goroutine was being scheduled.
		if err := ctx.Err(); err != nil {
			done <- futureResult{err: err}
			return
		}
		f := start()
		done <- futureResult{f: f, err: f.Error()}
	}()

	var stopErr error
	select {
	case r := <-done:
		return r.f, n.translate(op, r.err)
	case <-ctx.Done():
		stopErr = ctx.Err()
	case <-n.ctx.Done():
		stopErr = ErrShutdown
	}
	// Prefer a result that is already there over reporting the stop.
	select {
	case r := <-done:
		return r.f, n.translate(op, r.err)
	default:
		return nil, fmt.Errorf("raftstore: %s: %w", op, stopErr)
	}
}
