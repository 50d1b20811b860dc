package store

import (
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Snapshot captures the store; the returned function writes it.
func (s *Store) Snapshot() (func(w io.Writer) error, error) {
	var snap shoalpb.StoreSnapshot
	s.View(func(tx ReadTx) {
		snap.Nodes = tx.Nodes()
		if c := tx.Cluster(); c != nil {
			snap.Clusters = append(snap.Clusters, c)
		}
		snap.Services = tx.Services()
		snap.Tasks = tx.Tasks()
		snap.Networks = tx.Networks()
		snap.Stacks = tx.Stacks()
	})
	return func(w io.Writer) error {
		b, err := proto.Marshal(&snap)
		if err != nil {
			return fmt.Errorf("encode store snapshot: %w", err)
		}
		_, err = w.Write(b)
		return err
	}, nil
}

// Restore replaces the whole store with a snapshot written by Snapshot.
func (s *Store) Restore(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("read store snapshot: %w", err)
	}
	var snap shoalpb.StoreSnapshot
	if err := proto.Unmarshal(b, &snap); err != nil {
		return fmt.Errorf("decode store snapshot: %w", err)
	}
	db := mustNewDB()
	txn := db.Txn(true)
	var last uint64
	for _, n := range snap.Nodes {
		if err := txn.Insert(tableNode, n); err != nil {
			txn.Abort()
			return fmt.Errorf("restore node %s: %w", n.Id, err)
		}
		last = max(last, n.GetMeta().GetVersion())
	}
	for _, c := range snap.Clusters {
		if err := txn.Insert(tableCluster, c); err != nil {
			txn.Abort()
			return fmt.Errorf("restore cluster %s: %w", c.Id, err)
		}
		last = max(last, c.GetMeta().GetVersion())
	}
	for _, o := range snap.Services {
		if err := txn.Insert(tableService, o); err != nil {
			txn.Abort()
			return fmt.Errorf("restore service %s: %w", o.Id, err)
		}
		last = max(last, o.GetMeta().GetVersion())
	}
	for _, o := range snap.Tasks {
		if err := putTask(txn, nil, o); err != nil {
			txn.Abort()
			return fmt.Errorf("restore task %s: %w", o.Id, err)
		}
		last = max(last, o.GetMeta().GetVersion())
	}
	for _, o := range snap.Networks {
		if err := txn.Insert(tableNetwork, o); err != nil {
			txn.Abort()
			return fmt.Errorf("restore network %s: %w", o.Id, err)
		}
		last = max(last, o.GetMeta().GetVersion())
	}
	for _, o := range snap.Stacks {
		if err := txn.Insert(tableStack, o); err != nil {
			txn.Abort()
			return fmt.Errorf("restore stack %s: %w", o.Id, err)
		}
		last = max(last, o.GetMeta().GetVersion())
	}
	txn.Commit()
	s.mu.Lock()
	s.db.Store(db)
	s.setApplied(last)
	s.mu.Unlock()
	s.events.publish(last, []Event{{Kind: EventRestore}})
	return nil
}
