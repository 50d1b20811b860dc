package store

import (
	"github.com/shoal-project/shoal/proto/shoalpb"
)

var stackNameIndex = nameIndex{what: "stack", get: func(obj any) (string, bool) {
	s, ok := obj.(*shoalpb.Stack)
	return s.GetName(), ok
}}

func (tx readTx) Stack(id string) *shoalpb.Stack {
	o, err := tx.txn.First(tableStack, indexID, id)
	if err != nil || o == nil {
		return nil
	}
	return o.(*shoalpb.Stack)
}

func (tx readTx) Stacks() []*shoalpb.Stack {
	it, err := tx.txn.Get(tableStack, indexID)
	if err != nil {
		return nil
	}
	var out []*shoalpb.Stack
	for o := it.Next(); o != nil; o = it.Next() {
		out = append(out, o.(*shoalpb.Stack))
	}
	return out
}

func (tx readTx) StackByName(name string) *shoalpb.Stack {
	o, err := tx.txn.First(tableStack, indexName, name)
	if err != nil || o == nil {
		return nil
	}
	return o.(*shoalpb.Stack)
}
