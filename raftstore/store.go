package raftstore

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

const (
	// DBFileName is the bbolt file under Config.Dir holding the raft log
	// and stable store.
	DBFileName = "raft.db"

	// SnapshotDirName is the directory under Config.Dir holding snapshots.
	SnapshotDirName = "snapshots"

	// boltLockTimeout bounds how long opening raft.db waits for the file
	// lock, so a second process on the same directory fails instead of
	// hanging.
	boltLockTimeout = 2 * time.Second
)

// storage bundles the stores one raft node runs on.
type storage struct {
	logs   raft.LogStore
	stable raft.StableStore
	snaps  raft.SnapshotStore
	bolt   *raftboltdb.BoltStore // nil in memory
	where  string                // raft.db path, or "memory"
}

func (s *storage) close() error {
	if s.bolt == nil {
		return nil
	}
	if err := s.bolt.Close(); err != nil {
		return fmt.Errorf("raftstore: close %s: %w", s.where, err)
	}
	return nil
}

// openStorage opens (creating if needed) the stores described by cfg, which
// must be normalized.
func openStorage(cfg Config) (*storage, error) {
	if cfg.InMemory {
		mem := raft.NewInmemStore()
		return &storage{logs: mem, stable: mem, snaps: raft.NewInmemSnapshotStore(), where: "memory"}, nil
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("raftstore: create data directory %s: %w", cfg.Dir, err)
	}
	path := filepath.Join(cfg.Dir, DBFileName)
	bolt, err := openBolt(path)
	if err != nil {
		return nil, err
	}
	if err := checkLog(bolt, path); err != nil {
		_ = bolt.Close()
		return nil, err
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, cfg.RetainSnapshots, newHCLogger(cfg.Logger, "raft-snapshots"))
	if err != nil {
		_ = bolt.Close()
		return nil, fmt.Errorf("raftstore: open snapshot store %s: %w", filepath.Join(cfg.Dir, SnapshotDirName), err)
	}
	return &storage{logs: bolt, stable: bolt, snaps: snaps, bolt: bolt, where: path}, nil
}

// openBolt opens the raft-boltdb store at path with fsync on. Any failure,
// including a panic inside bbolt while reading a damaged file, becomes an
// error naming the file; the file itself is never removed or rewritten.
func openBolt(path string) (store *raftboltdb.BoltStore, err error) {
	defer func() {
		if r := recover(); r != nil {
			store = nil
			err = fmt.Errorf("raftstore: open %s: database is unreadable: %v", path, r)
		}
	}()
	store, err = raftboltdb.New(raftboltdb.Options{
		Path: path,
		BoltOptions: &bbolt.Options{
			Timeout:      boltLockTimeout,
			FreelistType: bbolt.FreelistArrayType,
		},
	})
	if err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return nil, fmt.Errorf("raftstore: open %s: file is locked by another process: %w", path, err)
		}
		return nil, fmt.Errorf("raftstore: open %s: %w", path, err)
	}
	return store, nil
}

// checkLog reads the boundaries of the stored log so that damage shows up
// as an error naming the file before raft starts.
func checkLog(store *raftboltdb.BoltStore, path string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("raftstore: read %s: database is unreadable: %v", path, r)
		}
	}()
	first, err := store.FirstIndex()
	if err != nil {
		return fmt.Errorf("raftstore: read %s: first log index: %w", path, err)
	}
	last, err := store.LastIndex()
	if err != nil {
		return fmt.Errorf("raftstore: read %s: last log index: %w", path, err)
	}
	if last == 0 {
		return nil
	}
	var entry raft.Log
	for _, idx := range []uint64{first, last} {
		if err := store.GetLog(idx, &entry); err != nil {
			return fmt.Errorf("raftstore: read %s: log entry %d: %w", path, idx, err)
		}
	}
	return nil
}

// HasState reports whether dir holds raft state: a raft.db with a current
// term or log entries, or snapshots. A missing directory or raft.db is not
// an error. Errors name the offending path. It must not be called while a
// Node has dir open.
func HasState(dir string) (bool, error) {
	path := filepath.Join(dir, DBFileName)
	var logs raft.LogStore = raft.NewInmemStore()
	var stable raft.StableStore = raft.NewInmemStore()
	switch _, err := os.Stat(path); {
	case err == nil:
		bolt, err := openBolt(path)
		if err != nil {
			return false, err
		}
		defer bolt.Close()
		logs, stable = bolt, bolt
	case errors.Is(err, fs.ErrNotExist):
	default:
		return false, fmt.Errorf("raftstore: %s: %w", path, err)
	}

	var snaps raft.SnapshotStore = raft.NewInmemSnapshotStore()
	snapDir := filepath.Join(dir, SnapshotDirName)
	switch _, err := os.Stat(snapDir); {
	case err == nil:
		discard := newHCLogger(slog.New(slog.DiscardHandler), "")
		fss, err := raft.NewFileSnapshotStoreWithLogger(dir, DefaultRetainSnapshots, discard)
		if err != nil {
			return false, fmt.Errorf("raftstore: open snapshot store %s: %w", snapDir, err)
		}
		snaps = fss
	case errors.Is(err, fs.ErrNotExist):
	default:
		return false, fmt.Errorf("raftstore: %s: %w", snapDir, err)
	}

	ok, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		return false, fmt.Errorf("raftstore: inspect %s: %w", dir, err)
	}
	return ok, nil
}

// RecoverSingle rewrites the raft state in cfg.Dir so that the cluster
// configuration contains only this node (cfg.NodeID at cfg.Addr), keeping
// every committed entry and snapshot. It is the force-new-cluster escape
// hatch after losing quorum: run it with the node stopped, then Open the
// node normally (without bootstrapping) and it elects itself leader; other
// managers must then join afresh with empty state.
//
// sm is used only to replay the existing snapshot and log and to write the
// new snapshot; it must be a fresh instance and should be discarded
// afterwards (Open restores the state again from disk). cfg.Transport may
// be nil here. RecoverSingle refuses to run on in-memory configs or on a
// directory without state.
func RecoverSingle(cfg Config, sm StateMachine) error {
	if cfg.InMemory {
		return errors.New("raftstore: recover: in-memory nodes have nothing to recover")
	}
	if sm == nil {
		return errors.New("raftstore: recover: state machine is required")
	}
	if cfg.Transport == nil {
		if cfg.Addr == "" {
			return errors.New("raftstore: recover: Addr is required")
		}
		// Only used to encode the configuration into the snapshot.
		_, trans := raft.NewInmemTransport(raft.ServerAddress(cfg.Addr))
		defer trans.Close()
		cfg.Transport = trans
	}
	cfg, err := cfg.normalized()
	if err != nil {
		return err
	}
	rc, err := cfg.raftConfig()
	if err != nil {
		return err
	}
	st, err := openStorage(cfg)
	if err != nil {
		return err
	}
	configuration := raft.Configuration{Servers: []raft.Server{{
		Suffrage: raft.Voter,
		ID:       raft.ServerID(cfg.NodeID),
		Address:  raft.ServerAddress(cfg.Addr),
	}}}
	recErr := raft.RecoverCluster(rc, newFSM(sm, cfg.Logger), st.logs, st.stable, st.snaps, cfg.Transport, configuration)
	closeErr := st.close()
	if recErr != nil {
		return errors.Join(fmt.Errorf("raftstore: recover %s: %w", cfg.Dir, recErr), closeErr)
	}
	if closeErr != nil {
		return closeErr
	}
	cfg.Logger.Warn("raftstore: forced a new single-node cluster configuration",
		"node_id", cfg.NodeID, "addr", cfg.Addr, "dir", cfg.Dir)
	return nil
}
