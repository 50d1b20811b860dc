// Package taskdb is the worker's local record of its tasks, in a bbolt
// file: each task's spec as last assigned, the status last observed, and
// whether the managers still assign it. A restarted daemon reads it to
// re-adopt running containers instead of restarting them, and to know
// which containers belong to tasks it no longer owns.
//
// It must not import manager/, raftstore/ or node/.
package taskdb

import (
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

var (
	bucketTasks = []byte("tasks")
	keyTask     = []byte("task")
	keyStatus   = []byte("status")
	keyAssigned = []byte("assigned")
)

// DB is an open task database.
type DB struct {
	db   *bolt.DB
	path string
}

// Record is what the database holds for one task.
type Record struct {
	Task     *shoalpb.Task
	Status   *shoalpb.TaskStatus // nil until a status was saved
	Assigned bool
}

// Open opens (creating if needed) the database at path. A file that is not
// a valid database is an error naming it; it is never replaced.
func Open(path string) (db *DB, err error) {
	defer func() {
		// bbolt may panic on some forms of corruption.
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("task database %s is corrupt: %v", path, r)
		}
	}()
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("open task database %s: %w", path, err)
		}
		return nil, fmt.Errorf("task database %s cannot be opened (%w); refusing to start", path, err)
	}
	if err := b.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketTasks)
		return err
	}); err != nil {
		b.Close()
		return nil, fmt.Errorf("task database %s: %w", path, err)
	}
	// Status writes from many task runners share commits (see PutStatus);
	// a lone writer waits at most this long for company.
	b.MaxBatchDelay = statusBatchDelay
	return &DB{db: b, path: path}, nil
}

// statusBatchDelay bounds how long a status write waits for others to
// share its commit.
const statusBatchDelay = 2 * time.Millisecond

// Close closes the database.
func (d *DB) Close() error { return d.db.Close() }

func (d *DB) taskBucket(tx *bolt.Tx, id string, create bool) (*bolt.Bucket, error) {
	root := tx.Bucket(bucketTasks)
	if create {
		return root.CreateBucketIfNotExists([]byte(id))
	}
	return root.Bucket([]byte(id)), nil
}

func put(b *bolt.Bucket, key []byte, m proto.Message) error {
	data, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	return b.Put(key, data)
}

// PutTask saves a task as assigned.
func (d *DB) PutTask(t *shoalpb.Task) error { return d.PutTasks([]*shoalpb.Task{t}) }

// PutTasks saves tasks as assigned, in one commit: all or none.
func (d *DB) PutTasks(ts []*shoalpb.Task) error {
	for _, t := range ts {
		if t.GetId() == "" {
			return errors.New("task has no ID")
		}
	}
	if len(ts) == 0 {
		return nil
	}
	return d.db.Update(func(tx *bolt.Tx) error {
		for _, t := range ts {
			b, err := d.taskBucket(tx, t.Id, true)
			if err != nil {
				return err
			}
			if err := put(b, keyTask, t); err != nil {
				return fmt.Errorf("task %s: %w", t.Id, err)
			}
			if err := b.Put(keyAssigned, []byte{1}); err != nil {
				return err
			}
		}
		return nil
	})
}

// PutStatus saves the last observed status of a task already saved. It
// returns once the status is committed; writes made at the same moment
// (by the runners of other tasks) share one commit.
func (d *DB) PutStatus(id string, st *shoalpb.TaskStatus) error {
	// Batch may run the function more than once: it only overwrites.
	return d.db.Batch(func(tx *bolt.Tx) error {
		b, err := d.taskBucket(tx, id, false)
		if err != nil {
			return err
		}
		if b == nil {
			return fmt.Errorf("task %s is not in the task database", id)
		}
		return put(b, keyStatus, st)
	})
}

// SetAssigned records whether the managers still assign the task.
func (d *DB) SetAssigned(id string, assigned bool) error {
	return d.db.Update(func(tx *bolt.Tx) error {
		b, err := d.taskBucket(tx, id, false)
		if err != nil || b == nil {
			return err
		}
		if assigned {
			return b.Put(keyAssigned, []byte{1})
		}
		return b.Delete(keyAssigned)
	})
}

// Delete forgets a task.
func (d *DB) Delete(id string) error {
	return d.db.Update(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketTasks).DeleteBucket([]byte(id))
		if errors.Is(err, bolt.ErrBucketNotFound) {
			return nil
		}
		return err
	})
}

// Get returns one task's record, or nil when it is unknown.
func (d *DB) Get(id string) (*Record, error) {
	var rec *Record
	err := d.db.View(func(tx *bolt.Tx) error {
		b, err := d.taskBucket(tx, id, false)
		if err != nil || b == nil {
			return err
		}
		rec, err = d.decode(id, b)
		return err
	})
	return rec, err
}

// All returns every record.
func (d *DB) All() ([]*Record, error) {
	var out []*Record
	err := d.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTasks).ForEachBucket(func(k []byte) error {
			rec, err := d.decode(string(k), tx.Bucket(bucketTasks).Bucket(k))
			if err != nil {
				return err
			}
			out = append(out, rec)
			return nil
		})
	})
	return out, err
}

func (d *DB) decode(id string, b *bolt.Bucket) (*Record, error) {
	rec := &Record{Task: &shoalpb.Task{}, Assigned: b.Get(keyAssigned) != nil}
	if err := proto.Unmarshal(b.Get(keyTask), rec.Task); err != nil {
		return nil, fmt.Errorf("task database %s: task %s is corrupt: %w", d.path, id, err)
	}
	if data := b.Get(keyStatus); data != nil {
		rec.Status = &shoalpb.TaskStatus{}
		if err := proto.Unmarshal(data, rec.Status); err != nil {
			return nil, fmt.Errorf("task database %s: status of task %s is corrupt: %w", d.path, id, err)
		}
	}
	return rec, nil
}
