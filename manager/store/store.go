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
	indexNode    = "node"
)

func schema() *memdb.DBSchema {
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		tableNode: {
			Name: tableNode,
			Indexes: map[string]*memdb.IndexSchema{
				indexID: {Name: indexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Id"}},
			},
		},
		tableCluster: {
			Name: tableCluster,
			Indexes: map[string]*memdb.IndexSchema{
				indexID: {Name: indexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Id"}},
			},
		},
		tableService: {
			Name: tableService,
			Indexes: map[string]*memdb.IndexSchema{
				indexID:   {Name: indexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Id"}},
				indexName: {Name: indexName, Unique: true, Indexer: serviceNameIndex},
			},
		},
		tableTask: {
			Name: tableTask,
			Indexes: map[string]*memdb.IndexSchema{
				indexID:      {Name: indexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Id"}},
				indexService: {Name: indexService, Indexer: &memdb.StringFieldIndex{Field: "ServiceId"}},
				indexNode:    {Name: indexNode, AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "NodeId"}},
			},
		},
		tableNetwork: {
			Name: tableNetwork,
			Indexes: map[string]*memdb.IndexSchema{
				indexID:   {Name: indexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Id"}},
				indexName: {Name: indexName, Unique: true, Indexer: networkNameIndex},
			},
		},
		tableStack: {
			Name: tableStack,
			Indexes: map[string]*memdb.IndexSchema{
				indexID:   {Name: indexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Id"}},
				indexName: {Name: indexName, Unique: true, Indexer: stackNameIndex},
			},
		},
	}}
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

func mustNewDB() *memdb.MemDB {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		// The schema is static; an error is a programming mistake.
		panic(fmt.Sprintf("store: invalid schema: %v", err))
	}
	return db
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
