package raftstore

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

func TestDiskRestartRestoresState(t *testing.T) {
	dir := t.TempDir()

	if ok, err := HasState(dir); err != nil || ok {
		t.Fatalf("HasState on empty dir = %v, %v; want false, nil", ok, err)
	}
	if ok, err := HasState(filepath.Join(dir, "missing")); err != nil || ok {
		t.Fatalf("HasState on missing dir = %v, %v; want false, nil", ok, err)
	}

	// First life: bootstrap and write.
	sm1 := &listSM{}
	n1, err := Open(fastConfig(t, "solo", dir), sm1)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := n1.BootstrapSingle(); err != nil {
		t.Fatalf("BootstrapSingle: %v", err)
	}
	waitLeader(t, n1)
	for i := range 5 {
		mustApply(t, n1, fmt.Sprintf("v%d", i))
	}
	if err := n1.Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, DBFileName)); err != nil {
		t.Fatalf("raft.db missing: %v", err)
	}
	if ok, err := HasState(dir); err != nil || !ok {
		t.Fatalf("HasState after writes = %v, %v; want true, nil", ok, err)
	}

	// Second life: no snapshot yet, so the log is replayed.
	sm2 := &listSM{}
	n2, err := Open(fastConfig(t, "solo", dir), sm2)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if err := n2.BootstrapSingle(); !errors.Is(err, ErrExistingState) {
		t.Fatalf("BootstrapSingle on existing state = %v, want ErrExistingState", err)
	}
	waitLeader(t, n2) // WatchLeader's IsLeader implies the log was applied
	want := []string{"v0", "v1", "v2", "v3", "v4"}
	if got := sm2.Items(); !slices.Equal(got, want) {
		t.Fatalf("after log replay items = %v, want %v", got, want)
	}
	if sm2.Restores() != 0 {
		t.Fatalf("Restore called %d times without a snapshot", sm2.Restores())
	}

	// Snapshot, then write more so both snapshot and log are needed.
	if err := n2.raft.Snapshot().Error(); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	last := mustApply(t, n2, "v5")
	if err := n2.Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}

	// Third life: the snapshot is restored before the log tail is applied.
	sm3 := &listSM{}
	n3, err := Open(fastConfig(t, "solo", dir), sm3)
	if err != nil {
		t.Fatalf("reopen after snapshot: %v", err)
	}
	t.Cleanup(func() { _ = n3.Shutdown() })
	if sm3.Restores() != 1 {
		t.Fatalf("Restore called %d times on open, want 1", sm3.Restores())
	}
	if got := sm3.Items(); !slices.Equal(got, want) {
		t.Fatalf("restored snapshot items = %v, want %v", got, want)
	}
	if n3.AppliedIndex() == 0 || n3.AppliedIndex() >= last {
		t.Fatalf("AppliedIndex after restore = %d, want in (0, %d)", n3.AppliedIndex(), last)
	}
	waitLeader(t, n3)
	if err := n3.BootstrapSingle(); !errors.Is(err, ErrExistingState) {
		t.Fatalf("BootstrapSingle on a leader = %v, want ErrExistingState", err)
	}
	if err := n3.WaitApplied(testCtx(t), last); err != nil {
		t.Fatalf("WaitApplied(%d): %v", last, err)
	}
	if got := sm3.Items(); !slices.Equal(got, append(want, "v5")) {
		t.Fatalf("items after restart = %v", got)
	}
	mustApply(t, n3, "v6")
}

func TestOpenRefusesLockedDB(t *testing.T) {
	dir := t.TempDir()
	n, err := Open(fastConfig(t, "solo", dir), &listSM{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown() })

	// A second node on the same directory gives up after the lock timeout
	// instead of waiting forever.
	path := filepath.Join(dir, DBFileName)
	if _, err := Open(fastConfig(t, "solo", dir), &listSM{}); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("second Open on a locked raft.db = %v, want an error naming %s", err, path)
	}
}

func TestOpenRefusesCorruptDB(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, DBFileName)
	garbage := make([]byte, 64<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	if err := os.WriteFile(path, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}

	n, err := Open(fastConfig(t, "solo", dir), &listSM{})
	if err == nil {
		_ = n.Shutdown()
		t.Fatal("Open succeeded on a corrupt raft.db")
	}
	if !strings.Contains(err.Error(), path) {
		t.Fatalf("Open error %q does not name %s", err, path)
	}
	if _, err := HasState(dir); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("HasState error = %v, want one naming %s", err, path)
	}
	if err := RecoverSingle(fastConfig(t, "solo", dir), &listSM{}); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("RecoverSingle error = %v, want one naming %s", err, path)
	}

	after, err := os.Stat(path)
	if err != nil {
		t.Fatalf("raft.db gone after failed Open: %v", err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, garbage) || !after.ModTime().Equal(before.ModTime()) {
		t.Fatal("raft.db was modified by a failed Open")
	}
}

func TestRecoverSingleFromClusterData(t *testing.T) {
	base := t.TempDir()
	dirFor := func(id string) string { return filepath.Join(base, id) }
	c := newTestCluster(t, 3, newListSM, dirFor)
	leader := c.Leader(t)

	var want []string
	for i := range 10 {
		v := fmt.Sprintf("v%d", i)
		mustApply(t, leader, v)
		want = append(want, v)
	}
	// Give the node we recover a snapshot plus a log tail.
	survivor := "n2"
	if leader.ID() == survivor {
		survivor = "n3"
	}
	idx := mustApply(t, leader, "v10")
	want = append(want, "v10")
	c.WaitApplied(t, idx)
	if err := c.Node(survivor).raft.Snapshot().Error(); err != nil {
		t.Fatalf("Snapshot on %s: %v", survivor, err)
	}
	for i := 11; i < 15; i++ {
		v := fmt.Sprintf("v%d", i)
		idx = mustApply(t, leader, v)
		want = append(want, v)
	}
	c.WaitApplied(t, idx)

	// Lose the whole cluster.
	for _, id := range c.IDs() {
		c.Stop(id)
	}

	cfg := fastConfig(t, survivor, dirFor(survivor))
	cfg.Transport = nil // RecoverSingle does not need one
	if err := RecoverSingle(cfg, &listSM{}); err != nil {
		t.Fatalf("RecoverSingle: %v", err)
	}
	if err := RecoverSingle(fastConfig(t, "fresh", filepath.Join(base, "fresh")), &listSM{}); err == nil {
		t.Fatal("RecoverSingle succeeded on a directory without state")
	}

	sm := &listSM{}
	n, err := Open(fastConfig(t, survivor, dirFor(survivor)), sm)
	if err != nil {
		t.Fatalf("Open after recovery: %v", err)
	}
	t.Cleanup(func() { _ = n.Shutdown() })
	waitLeader(t, n)
	if got := sm.Items(); !slices.Equal(got, want) {
		t.Fatalf("recovered items = %v, want %v", got, want)
	}
	servers, err := n.Servers()
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 1 || servers[0].ID != survivor || !servers[0].Voter {
		t.Fatalf("Servers after recovery = %+v, want only %s", servers, survivor)
	}
	after := mustApply(t, n, "post-recovery")
	if after <= idx {
		t.Fatalf("new entry index %d not after recovered index %d", after, idx)
	}
	if got := sm.Items(); got[len(got)-1] != "post-recovery" {
		t.Fatalf("items after new write = %v", got)
	}
}

func TestSnapshotRoundTripCarriesAppliedIndex(t *testing.T) {
	src := newFSM(&listSM{}, testLogger(t))
	resps := src.ApplyBatch([]*raft.Log{
		{Index: 3, Type: raft.LogCommand, Data: []byte("a")},
		{Index: 4, Type: raft.LogConfiguration},
		{Index: 5, Type: raft.LogCommand, Data: []byte("fail")},
		{Index: 6, Type: raft.LogCommand, Data: []byte("b")},
	})
	if len(resps) != 4 || resps[0] != nil || resps[1] != nil || resps[3] != nil {
		t.Fatalf("ApplyBatch responses = %#v", resps)
	}
	if ce, ok := resps[2].(*CommandError); !ok || ce.Index != 5 || !errors.Is(ce, errRejected) {
		t.Fatalf("response for rejected command = %#v", resps[2])
	}
	if src.applied.Load() != 6 {
		t.Fatalf("applied = %d, want 6", src.applied.Load())
	}

	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Applies after capture must not leak into the snapshot.
	src.Apply(&raft.Log{Index: 7, Type: raft.LogCommand, Data: []byte("c")})
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	snap.Release()
	if !sink.closed || sink.cancelled {
		t.Fatalf("sink closed=%v cancelled=%v", sink.closed, sink.cancelled)
	}

	dst := newFSM(&listSM{}, testLogger(t))
	if err := dst.Restore(&readCloser{bytes.NewReader(sink.Bytes())}); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if dst.applied.Load() != 6 {
		t.Fatalf("restored applied index = %d, want 6", dst.applied.Load())
	}
	if got := dst.sm.(*listSM).Items(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("restored items = %v", got)
	}
}

func TestRestoreRejectsForeignSnapshot(t *testing.T) {
	f := newFSM(&listSM{}, testLogger(t))
	rc := &readCloser{bytes.NewReader([]byte(`["some", "other", "format"]`))}
	if err := f.Restore(rc); err == nil || !strings.Contains(err.Error(), "unknown format") {
		t.Fatalf("Restore of a foreign snapshot = %v, want unknown format error", err)
	}
	if f.applied.Load() != 0 {
		t.Fatal("failed restore changed the applied index")
	}
}

type readCloser struct{ *bytes.Reader }

func (*readCloser) Close() error { return nil }

// memSink is a raft.SnapshotSink kept in memory.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
