package store

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	memdb "github.com/hashicorp/go-memdb"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Errors returned by Apply; they travel back to the proposer unchanged.
var (
	ErrNotExist         = errors.New("object does not exist")
	ErrExist            = errors.New("object already exists")
	ErrSequenceConflict = errors.New("update out of sequence")
	ErrInvalidCommand   = errors.New("invalid command")
)

const (
	tableNode    = "node"
	tableCluster = "cluster"
	tableService = "service"
	tableTask    = "task"
	tableNetwork = "network"
	tableStack   = "stack"
	indexID      = "id"
	indexName    = "name"
	indexService = "service"
	// The tasks of each node are listed in a table of their own (taskRef),
	// not by an index of the task table: memdb writes an object into every
	// index of its table on every update, and most task updates (status
	// reports) do not change the node. The tasks of a service keep an
	// index: the orchestrators read them all, often, and an index reads
	// them ten times faster than references to look up.
	tableNodeTasks = "node_tasks"
)

func schema() *memdb.DBSchema {
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		tableNode: {
			Name: tableNode,
			Indexes: map[string]*memdb.IndexSchema{
				indexID: {Name: indexID, Unique: true, Indexer: fieldIndex[*shoalpb.Node]{"node ID", (*shoalpb.Node).GetId}},
			},
		},
		tableCluster: {
			Name: tableCluster,
			Indexes: map[string]*memdb.IndexSchema{
				indexID: {Name: indexID, Unique: true, Indexer: fieldIndex[*shoalpb.Cluster]{"cluster ID", (*shoalpb.Cluster).GetId}},
			},
		},
		tableService: {
			Name: tableService,
			Indexes: map[string]*memdb.IndexSchema{
				indexID:   {Name: indexID, Unique: true, Indexer: fieldIndex[*shoalpb.Service]{"service ID", (*shoalpb.Service).GetId}},
				indexName: {Name: indexName, Unique: true, Indexer: serviceNameIndex},
			},
		},
		tableTask: {
			Name: tableTask,
			Indexes: map[string]*memdb.IndexSchema{
				indexID:      {Name: indexID, Unique: true, Indexer: fieldIndex[*shoalpb.Task]{"task ID", (*shoalpb.Task).GetId}},
				indexService: {Name: indexService, Indexer: fieldIndex[*shoalpb.Task]{"task service", (*shoalpb.Task).GetServiceId}},
			},
		},
		tableNodeTasks: {
			Name: tableNodeTasks,
			Indexes: map[string]*memdb.IndexSchema{
				indexID: {Name: indexID, Unique: true, Indexer: taskRefIndex{}},
			},
		},
		tableNetwork: {
			Name: tableNetwork,
			Indexes: map[string]*memdb.IndexSchema{
				indexID:   {Name: indexID, Unique: true, Indexer: fieldIndex[*shoalpb.Network]{"network ID", (*shoalpb.Network).GetId}},
				indexName: {Name: indexName, Unique: true, Indexer: networkNameIndex},
			},
		},
		tableStack: {
			Name: tableStack,
			Indexes: map[string]*memdb.IndexSchema{
				indexID:   {Name: indexID, Unique: true, Indexer: fieldIndex[*shoalpb.Stack]{"stack ID", (*shoalpb.Stack).GetId}},
				indexName: {Name: indexName, Unique: true, Indexer: stackNameIndex},
			},
		},
	}}
}

// fieldIndex indexes objects of type T by a string field, as memdb's
// StringFieldIndex does (an empty value is a missing one) but without
// reflection: every write computes every index of the object twice (new
// and old value), which made the reflective lookups a visible share of
// applying a task status report.
type fieldIndex[T any] struct {
	what  string
	field func(T) string
}

func (ix fieldIndex[T]) FromObject(obj any) (bool, []byte, error) {
	o, ok := obj.(T)
	if !ok {
		return false, nil, fmt.Errorf("%s index: unexpected %T", ix.what, obj)
	}
	v := ix.field(o)
	if v == "" {
		return false, nil, nil
	}
	return true, indexKey(v), nil
}

func (ix fieldIndex[T]) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("%s index: want one argument, got %d", ix.what, len(args))
	}
	v, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("%s index: argument is %T, not a string", ix.what, args[0])
	}
	return indexKey(v), nil
}

// indexKey is a string index value: the string and a NUL terminator, so
// no key is a prefix of another.
func indexKey(v string) []byte {
	b := make([]byte, len(v)+1)
	copy(b, v)
	return b
}

// Store is the replicated cluster state of one manager.
type Store struct {
	mu      sync.Mutex // serialises writers (Apply, Restore)
	db      atomic.Pointer[memdb.MemDB]
	applied atomic.Uint64
	events  *broadcaster
}

// New returns an empty store.
func New() *Store {
	s := &Store{events: newBroadcaster()}
	s.db.Store(mustNewDB())
	return s
}

// mustNewDB returns an empty database. It is a snapshot of a new one: a
// snapshot works like the original except that its writes do not track
// and close the watch channels of the radix nodes they replace, which the
// store never uses (changes reach watchers through its own events) and
// which cost a map entry per node written and a channel close per node at
// commit.
func mustNewDB() *memdb.MemDB {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		// The schema is static; an error is a programming mistake.
		panic(fmt.Sprintf("store: invalid schema: %v", err))
	}
	return db.Snapshot()
}

// AppliedIndex is the index of the last command applied.
func (s *Store) AppliedIndex() uint64 { return s.applied.Load() }

// View runs fn with a consistent read-only view of the store.
func (s *Store) View(fn func(tx ReadTx)) {
	txn := s.db.Load().Txn(false)
	defer txn.Abort()
	fn(readTx{txn: txn})
}

// ReadTx reads a consistent view of the store.
type ReadTx interface {
	Node(id string) *shoalpb.Node
	Nodes() []*shoalpb.Node
	// FindNode resolves an ID, a unique ID prefix or a unique hostname.
	FindNode(ref string) (*shoalpb.Node, error)
	Cluster() *shoalpb.Cluster

	Service(id string) *shoalpb.Service
	Services() []*shoalpb.Service
	ServiceByName(name string) *shoalpb.Service
	// FindService resolves an ID, a unique ID prefix or a name.
	FindService(ref string) (*shoalpb.Service, error)

	Task(id string) *shoalpb.Task
	Tasks() []*shoalpb.Task
	TasksByService(serviceID string) []*shoalpb.Task
	TasksByNode(nodeID string) []*shoalpb.Task

	Network(id string) *shoalpb.Network
	Networks() []*shoalpb.Network
	NetworkByName(name string) *shoalpb.Network
	// FindNetwork resolves an ID, a name or a unique ID prefix.
	FindNetwork(ref string) (*shoalpb.Network, error)

	Stack(id string) *shoalpb.Stack
	Stacks() []*shoalpb.Stack
	StackByName(name string) *shoalpb.Stack
}

type readTx struct{ txn *memdb.Txn }

func (tx readTx) Node(id string) *shoalpb.Node {
	o, err := tx.txn.First(tableNode, indexID, id)
	if err != nil || o == nil {
		return nil
	}
	return o.(*shoalpb.Node)
}

func (tx readTx) Nodes() []*shoalpb.Node {
	it, err := tx.txn.Get(tableNode, indexID)
	if err != nil {
		return nil
	}
	var out []*shoalpb.Node
	for o := it.Next(); o != nil; o = it.Next() {
		out = append(out, o.(*shoalpb.Node))
	}
	return out
}

func (tx readTx) Cluster() *shoalpb.Cluster {
	it, err := tx.txn.Get(tableCluster, indexID)
	if err != nil {
		return nil
	}
	if o := it.Next(); o != nil {
		return o.(*shoalpb.Cluster)
	}
	return nil
}

func clone[T proto.Message](m T) T { return proto.Clone(m).(T) }
