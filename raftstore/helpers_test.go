package raftstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// errRejected is what listSM returns for commands starting with "fail".
var errRejected = errors.New("command rejected")

// rejectError is listSM's typed rejection, to check errors.As through Apply.
type rejectError struct{ cmd string }

func (e *rejectError) Error() string { return fmt.Sprintf("reject %q", e.cmd) }
func (e *rejectError) Unwrap() error { return errRejected }

// listSM is an append-only list of command strings. Commands starting with
// "fail" are rejected deterministically and change nothing.
type listSM struct {
	mu       sync.Mutex
	items    []string
	restores int
}

func newListSM(string) StateMachine { return &listSM{} }

func (s *listSM) ApplyCommand(_ uint64, data []byte) error {
	cmd := string(data)
	if strings.HasPrefix(cmd, "fail") {
		return &rejectError{cmd: cmd}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.items = append(s.items, cmd)
	return nil
}

func (s *listSM) Snapshot() (func(io.Writer) error, error) {
	s.mu.Lock()
	items := append([]string(nil), s.items...)
	s.mu.Unlock()
	return func(w io.Writer) error { return json.NewEncoder(w).Encode(items) }, nil
}

func (s *listSM) Restore(r io.Reader) error {
	var items []string
	if err := json.NewDecoder(r).Decode(&items); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.items = items
	s.restores++
	return nil
}

func (s *listSM) Items() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.items...)
}

func (s *listSM) Restores() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restores
}

// listOf returns the listSM behind a node.
func listOf(n *Node) *listSM { return n.fsm.sm.(*listSM) }

// testCtx returns a context bounded by TestWaitTimeout.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), TestWaitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// mustApply proposes cmd on n and fails the test on any error.
func mustApply(t testing.TB, n *Node, cmd string) uint64 {
	t.Helper()
	idx, err := n.Apply(testCtx(t), []byte(cmd))
	if err != nil {
		t.Fatalf("apply %q on %s: %v", cmd, n.ID(), err)
	}
	return idx
}

// waitFor waits until pred holds for a LeaderChange published by n.
func waitFor(t testing.TB, n *Node, what string, pred func(LeaderChange) bool) LeaderChange {
	t.Helper()
	ch, cancel := n.WatchLeader()
	defer cancel()
	deadline := time.NewTimer(TestWaitTimeout)
	defer deadline.Stop()
	for {
		select {
		case v, ok := <-ch:
			if ok && pred(v) {
				return v
			}
			if !ok {
				t.Fatalf("%s: leadership channel of %s closed before %s", t.Name(), n.ID(), what)
			}
		case <-deadline.C:
			t.Fatalf("%s: %s not reached by %s within %s", t.Name(), what, n.ID(), TestWaitTimeout)
		}
	}
}

func waitLeader(t testing.TB, n *Node) {
	t.Helper()
	waitFor(t, n, "leadership", func(v LeaderChange) bool { return v.IsLeader })
}

// fastConfig is a single-node configuration with test timings on its own
// in-memory transport.
func fastConfig(t testing.TB, id, dir string) Config {
	t.Helper()
	addr, trans := raft.NewInmemTransport(raft.ServerAddress("inmem-" + id))
	return Config{
		NodeID:             id,
		Addr:               string(addr),
		Dir:                dir,
		Transport:          trans,
		Logger:             testLogger(t),
		HeartbeatTimeout:   testHeartbeatTimeout,
		ElectionTimeout:    testElectionTimeout,
		LeaderLeaseTimeout: testLeaderLeaseTimeout,
		CommitTimeout:      testCommitTimeout,
	}
}

func testLogger(t testing.TB) *slog.Logger {
	w := &testLogWriter{t: t}
	t.Cleanup(w.stop)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
