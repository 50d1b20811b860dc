package raftstore

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// StateMachine is the replicated state. It is deterministic: it never reads
// the clock, randomness or the network, so every replica applying the same
// commands in the same order reaches the same state.
//
// raftstore calls ApplyCommand, Snapshot and Restore from a single
// goroutine; only the writer returned by Snapshot runs concurrently with
// later ApplyCommand calls.
type StateMachine interface {
	// ApplyCommand applies the data of one committed log entry at index.
	// A returned error means the command changed nothing; it is handed back
	// to the proposer (see CommandError).
	ApplyCommand(index uint64, data []byte) error

	// Snapshot captures the current state cheaply; the returned func writes
	// it later (possibly concurrently with new applies).
	Snapshot() (func(w io.Writer) error, error)

	// Restore replaces the whole state from a snapshot written by Snapshot.
	Restore(r io.Reader) error
}

// fsm adapts a StateMachine to raft.FSM and raft.BatchingFSM and tracks the
// index of the last entry applied to it.
type fsm struct {
	sm     StateMachine
	logger *slog.Logger

	applied atomic.Uint64

	mu sync.Mutex
	// advanced is closed (and replaced) whenever applied changes, waking
	// WaitApplied callers.
	advanced chan struct{}
}

var (
	_ raft.FSM         = (*fsm)(nil)
	_ raft.BatchingFSM = (*fsm)(nil)
)

func newFSM(sm StateMachine, logger *slog.Logger) *fsm {
	return &fsm{sm: sm, logger: logger, advanced: make(chan struct{})}
}

// Apply applies a single command entry. raft uses it only when batching is
// unavailable (and during RecoverCluster).
func (f *fsm) Apply(l *raft.Log) interface{} {
	var resp interface{}
	if l.Type == raft.LogCommand {
		resp = f.applyCommand(l)
	}
	f.setApplied(l.Index)
	return resp
}

// ApplyBatch applies consecutive committed entries in one call. Each entry
// gets its own response; configuration entries are not passed to the state
// machine but still advance the applied index.
func (f *fsm) ApplyBatch(logs []*raft.Log) []interface{} {
	resps := make([]interface{}, len(logs))
	for i, l := range logs {
		if l.Type == raft.LogCommand {
			resps[i] = f.applyCommand(l)
		}
	}
	if len(logs) > 0 {
		f.setApplied(logs[len(logs)-1].Index)
	}
	return resps
}

// applyCommand returns nil on success and a *CommandError otherwise. The
// value travels back to the proposer as the ApplyFuture's response.
func (f *fsm) applyCommand(l *raft.Log) interface{} {
	if err := f.sm.ApplyCommand(l.Index, l.Data); err != nil {
		return &CommandError{Index: l.Index, Err: err}
	}
	return nil
}

// Snapshot captures the state machine together with the index it reflects.
// It runs on raft's FSM goroutine, so no apply is in flight.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	write, err := f.sm.Snapshot()
	if err != nil {
		return nil, err
	}
	return &fsmSnapshot{index: f.applied.Load(), write: write}, nil
}

// Restore replaces the state machine's state from a snapshot written by
// fsmSnapshot.Persist.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	index, err := readSnapshotHeader(rc)
	if err != nil {
		return err
	}
	if err := f.sm.Restore(rc); err != nil {
		return err
	}
	f.setApplied(index)
	f.logger.Info("raftstore: restored state machine from snapshot", "applied_index", index)
	return nil
}

// setApplied records index as the last applied entry and wakes waiters.
func (f *fsm) setApplied(index uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.applied.Load() == index {
		return
	}
	f.applied.Store(index)
	close(f.advanced)
	f.advanced = make(chan struct{})
}

// waitApplied blocks until index has been applied, ctx ends or stop is
// closed. It returns nil, ctx.Err() or ErrShutdown respectively.
func (f *fsm) waitApplied(ctx context.Context, index uint64, stop <-chan struct{}) error {
	for {
		f.mu.Lock()
		if f.applied.Load() >= index {
			f.mu.Unlock()
			return nil
		}
		advanced := f.advanced
		f.mu.Unlock()

		select {
		case <-advanced:
		case <-ctx.Done():
			return ctx.Err()
		case <-stop:
			return ErrShutdown
		}
	}
}
