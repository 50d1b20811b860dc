package store

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// ApplyCommand applies one replicated command at index. All of its actions
// apply, or none do and the first error is returned.
func (s *Store) ApplyCommand(index uint64, data []byte) error {
	var cmd shoalpb.Command
	if err := proto.Unmarshal(data, &cmd); err != nil {
		s.setApplied(index)
		return fmt.Errorf("decode command at index %d: %w: %v", index, ErrInvalidCommand, err)
	}
	return s.apply(index, &cmd, true)
}

// Apply applies a decoded command at index. The command is not kept: the
// store copies what it stores from it.
func (s *Store) Apply(index uint64, cmd *shoalpb.Command) error {
	return s.apply(index, cmd, false)
}

// apply applies cmd; owned says that nothing else holds cmd (it was just
// decoded), so its messages may be stored as they are instead of copied.
func (s *Store) apply(index uint64, cmd *shoalpb.Command, owned bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The index advances even when the command fails: the entry is consumed.
	defer s.setApplied(index)

	txn := s.db.Load().Txn(true)
	defer txn.Abort()
	var events []Event
	for i, a := range cmd.Actions {
		ev, err := applyAction(txn, index, a, owned)
		if err != nil {
			if len(cmd.Actions) > 1 {
				return fmt.Errorf("action %d of %d: %w", i+1, len(cmd.Actions), err)
			}
			return err
		}
		if ev != nil {
			events = append(events, *ev)
		}
	}
	txn.Commit()
	s.events.publish(index, events)
	return nil
}

func (s *Store) setApplied(index uint64) {
	if index > s.applied.Load() {
		s.applied.Store(index)
	}
}

// keep returns m to be stored: m itself when the command is owned, else
// a copy.
func keep[T proto.Message](owned bool, m T) T {
	if owned {
		return m
	}
	return clone(m)
}

func touched(m *shoalpb.Meta, index uint64, at int64) *shoalpb.Meta {
	out := &shoalpb.Meta{Version: index, UpdatedAt: at}
	if m != nil {
		out.CreatedAt = m.CreatedAt
	}
	if out.CreatedAt == 0 {
		out.CreatedAt = at
	}
	return out
}

func applyAction(txn *memdb.Txn, index uint64, a *shoalpb.StoreAction, owned bool) (*Event, error) {
	switch t := a.Target.(type) {
	case *shoalpb.StoreAction_Node:
		return applyObject(txn, index, a.Kind, tableNode, t.Node, t.Node.GetId(), t.Node.GetMeta(),
			func(m *shoalpb.Meta) proto.Message { n := keep(owned, t.Node); n.Meta = m; return n })
	case *shoalpb.StoreAction_Cluster:
		return applyObject(txn, index, a.Kind, tableCluster, t.Cluster, t.Cluster.GetId(), t.Cluster.GetMeta(),
			func(m *shoalpb.Meta) proto.Message { c := keep(owned, t.Cluster); c.Meta = m; return c })
	case *shoalpb.StoreAction_Service:
		if a.Kind != shoalpb.ActionKind_ACTION_KIND_REMOVE {
			if o := (readTx{txn: txn}).ServiceByName(t.Service.GetSpec().GetName()); o != nil && o.Id != t.Service.GetId() {
				return nil, fmt.Errorf("service name %s is already in use by service %s: %w", t.Service.GetSpec().GetName(), o.Id, ErrExist)
			}
		}
		return applyObject(txn, index, a.Kind, tableService, t.Service, t.Service.GetId(), t.Service.GetMeta(),
			func(m *shoalpb.Meta) proto.Message { c := keep(owned, t.Service); c.Meta = m; return c })
	case *shoalpb.StoreAction_Network:
		if a.Kind != shoalpb.ActionKind_ACTION_KIND_REMOVE {
			if o := (readTx{txn: txn}).NetworkByName(t.Network.GetSpec().GetName()); o != nil && o.Id != t.Network.GetId() {
				return nil, fmt.Errorf("network name %s is already in use by network %s: %w", t.Network.GetSpec().GetName(), o.Id, ErrExist)
			}
		}
		return applyObject(txn, index, a.Kind, tableNetwork, t.Network, t.Network.GetId(), t.Network.GetMeta(),
			func(m *shoalpb.Meta) proto.Message { c := keep(owned, t.Network); c.Meta = m; return c })
	case *shoalpb.StoreAction_Stack:
		if a.Kind != shoalpb.ActionKind_ACTION_KIND_REMOVE {
			if o := (readTx{txn: txn}).StackByName(t.Stack.GetName()); o != nil && o.Id != t.Stack.GetId() {
				return nil, fmt.Errorf("stack name %s is already in use by stack %s: %w", t.Stack.GetName(), o.Id, ErrExist)
			}
		}
		return applyObject(txn, index, a.Kind, tableStack, t.Stack, t.Stack.GetId(), t.Stack.GetMeta(),
			func(m *shoalpb.Meta) proto.Message { c := keep(owned, t.Stack); c.Meta = m; return c })
	case *shoalpb.StoreAction_Task:
		return applyObject(txn, index, a.Kind, tableTask, t.Task, t.Task.GetId(), t.Task.GetMeta(),
			func(m *shoalpb.Meta) proto.Message { c := keep(owned, t.Task); c.Meta = m; return c })
	case *shoalpb.StoreAction_TaskStatusPatch:
		old, n, err := applyTaskStatus(txn, index, owned, t.TaskStatusPatch)
		if err != nil || n == nil {
			return nil, err
		}
		return &Event{Kind: EventUpdate, Object: n, Old: old}, nil
	case *shoalpb.StoreAction_TaskDesiredStatePatch:
		old, n, err := applyTaskDesiredState(txn, index, t.TaskDesiredStatePatch)
		if err != nil || n == nil {
			return nil, err
		}
		return &Event{Kind: EventUpdate, Object: n, Old: old}, nil
	case *shoalpb.StoreAction_TaskAssignment:
		old, n, err := applyTaskAssignment(txn, index, owned, t.TaskAssignment)
		if err != nil || n == nil {
			return nil, err
		}
		return &Event{Kind: EventUpdate, Object: n, Old: old}, nil
	case *shoalpb.StoreAction_TaskAllocation:
		old, n, err := applyTaskAllocation(txn, index, owned, t.TaskAllocation)
		if err != nil || n == nil {
			return nil, err
		}
		return &Event{Kind: EventUpdate, Object: n, Old: old}, nil
	case *shoalpb.StoreAction_NodeAttachmentsPatch:
		old, n, err := applyNodeAttachmentsPatch(txn, index, t.NodeAttachmentsPatch)
		if err != nil || n == nil {
			return nil, err
		}
		return &Event{Kind: EventUpdate, Object: n, Old: old}, nil
	case *shoalpb.StoreAction_NodeSpecPatch:
		old, n, err := applyNodeSpecPatch(txn, index, t.NodeSpecPatch)
		if err != nil || n == nil {
			return nil, err
		}
		return &Event{Kind: EventUpdate, Object: n, Old: old}, nil
	case *shoalpb.StoreAction_NodeStatusPatch:
		old, n, err := applyNodeStatusPatch(txn, index, t.NodeStatusPatch)
		if err != nil || n == nil {
			return nil, err
		}
		return &Event{Kind: EventUpdate, Object: n, Old: old}, nil
	default:
		return nil, fmt.Errorf("action with no target: %w", ErrInvalidCommand)
	}
}

// applyObject creates, replaces or removes a whole object.
func applyObject(txn *memdb.Txn, index uint64, kind shoalpb.ActionKind, table string, obj proto.Message, id string, meta *shoalpb.Meta, withMeta func(*shoalpb.Meta) proto.Message) (*Event, error) {
	if id == "" {
		return nil, fmt.Errorf("%s with an empty ID: %w", table, ErrInvalidCommand)
	}
	cur, err := txn.First(table, indexID, id)
	if err != nil {
		return nil, err
	}
	var old proto.Message
	if cur != nil {
		old = cur.(proto.Message)
	}
	switch kind {
	case shoalpb.ActionKind_ACTION_KIND_CREATE:
		if old != nil {
			return nil, fmt.Errorf("%s %s: %w", table, id, ErrExist)
		}
		at := meta.GetCreatedAt()
		n := withMeta(&shoalpb.Meta{Version: index, CreatedAt: at, UpdatedAt: max(at, meta.GetUpdatedAt())})
		if err := insertObject(txn, table, nil, n); err != nil {
			return nil, err
		}
		return &Event{Kind: EventCreate, Object: n}, nil
	case shoalpb.ActionKind_ACTION_KIND_UPDATE:
		if old == nil {
			return nil, fmt.Errorf("%s %s: %w", table, id, ErrNotExist)
		}
		oldMeta := metaOf(old)
		if meta.GetVersion() != oldMeta.GetVersion() {
			return nil, fmt.Errorf("%s %s: version %d, stored %d: %w", table, id, meta.GetVersion(), oldMeta.GetVersion(), ErrSequenceConflict)
		}
		n := withMeta(&shoalpb.Meta{Version: index, CreatedAt: oldMeta.GetCreatedAt(), UpdatedAt: meta.GetUpdatedAt()})
		if err := insertObject(txn, table, old, n); err != nil {
			return nil, err
		}
		return &Event{Kind: EventUpdate, Object: n, Old: old}, nil
	case shoalpb.ActionKind_ACTION_KIND_REMOVE:
		if old == nil {
			return nil, fmt.Errorf("%s %s: %w", table, id, ErrNotExist)
		}
		if err := deleteObject(txn, table, old); err != nil {
			return nil, err
		}
		return &Event{Kind: EventRemove, Object: old, Old: old}, nil
	default:
		return nil, fmt.Errorf("%s %s: action kind %v: %w", table, id, kind, ErrInvalidCommand)
	}
}

// insertObject stores obj in table in place of old (nil if new).
func insertObject(txn *memdb.Txn, table string, old, obj proto.Message) error {
	if table == tableTask {
		o, _ := old.(*shoalpb.Task)
		return putTask(txn, o, obj.(*shoalpb.Task))
	}
	return txn.Insert(table, obj)
}

// deleteObject removes a stored object from table.
func deleteObject(txn *memdb.Txn, table string, old proto.Message) error {
	if table == tableTask {
		return deleteTask(txn, old.(*shoalpb.Task))
	}
	return txn.Delete(table, old)
}

type hasMeta interface{ GetMeta() *shoalpb.Meta }

func metaOf(m proto.Message) *shoalpb.Meta {
	if h, ok := m.(hasMeta); ok {
		return h.GetMeta()
	}
	return nil
}
